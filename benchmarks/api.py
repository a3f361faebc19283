"""osprof-api speed: trace searches with 1,000,000 spans stored, and a
trace of 10,000 spans by id.

    python benchmarks/api.py [--spans 1000000] [--trace-spans 10000]
                             [--stores sqlite,postgresql]

For SQLite and PostgreSQL (the test role of tools/run-tests.sh) it fills a
fresh store through the storage driver (traces of 10 spans: a wsgi root of
one of four services and nine db calls, one of them in another service),
starts the real osprof-api process on it and times HTTP requests as
Grafana sends them (best of 5, the client in this process). The baseline
of a trace by id is json.dumps of the Zipkin spans the API answers; the
trace is read and exported at every request by a second osprof-api that
keeps no answers (trace_cache_size = 0), and the first osprof-api's
figure is that of an answer it kept. It then prints the database's plans
for the searches' queries, which must read indexes.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import uuid

import requests

from osprof_collector.api import zipkin
from osprof_collector import events
from osprof_collector.render import exports
from osprof_collector import spans
from osprof_collector import storage
from osprof_collector.storage import base
from osprof_collector.storage import sql
from stores import Stores

BIN_DIR = os.path.dirname(sys.executable)
LABELS = [("nova", "api"), ("cinder", "volume"), ("glance", "api"),
          ("neutron", "server")]


def event(name, phase, base_id, trace_id, parent_id, at, label):
    return {"name": f"{name}-{phase}", "base_id": base_id,
            "trace_id": trace_id, "parent_id": parent_id,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "project": label[0], "service": label[1],
            "info": {"host": "node-1", "db": {
                "statement": "SELECT * FROM instances WHERE uuid = %s",
                "params": {"uuid": trace_id}}}}


def trace(span_count, start, label, other):
    """A wsgi root of label with span_count - 1 db calls below it, the
    first of them in the other label."""
    base_id, root_id = str(uuid.uuid4()), str(uuid.uuid4())
    raw = [event("wsgi", "start", base_id, root_id, base_id, start, label)]
    for n in range(span_count - 1):
        trace_id = str(uuid.uuid4())
        at = start + datetime.timedelta(microseconds=100 * n)
        where = other if n == 0 else label
        raw.append(event("db", "start", base_id, trace_id, root_id, at,
                         where))
        raw.append(event("db", "stop", base_id, trace_id, root_id,
                         at + datetime.timedelta(microseconds=50), where))
    raw.append(event("wsgi", "stop", base_id, root_id, base_id,
                     start + datetime.timedelta(seconds=2), label))
    return base_id, raw


def write(store, raw, batch=2000):
    for first in range(0, len(raw), batch):
        store.write_spans(spans.pair(
            events.parse(p) for p in raw[first:first + batch]))


def fill(store, span_count, end):
    """span_count spans in traces of 10, one a second up to end."""
    count = span_count // 10
    raw = []
    for n in range(count):
        label, other = LABELS[n % 4], LABELS[(n + 1) % 4]
        raw.extend(trace(10, end - datetime.timedelta(seconds=count - n),
                         label, other)[1])
        if len(raw) >= 20000:
            write(store, raw)
            raw = []
    write(store, raw)


def best_of(runs, function):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


class Api:
    def __init__(self, workdir, url, port_offset=0, **api_options):
        self.port = 19500 + os.getpid() % 400 + port_offset
        config = os.path.join(workdir, f"api-{self.port}.conf")
        options = "".join(f"{k} = {v}\n" for k, v in api_options.items())
        with open(config, "w") as out:
            out.write(f"[storage]\nconnection = {url}\n"
                      f"[api]\nport = {self.port}\n{options}")
        self.process = subprocess.Popen(
            [os.path.join(BIN_DIR, "osprof-api"), "--config-file", config],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = requests.Session()
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/api/v2/services")
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def get(self, path, **params):
        response = self.session.get(f"http://127.0.0.1:{self.port}{path}",
                                    params=params, timeout=600)
        response.raise_for_status()
        return response

    def close(self):
        self.process.terminate()
        self.process.wait(30)


def bench(kind, url, workdir, span_count, trace_spans):
    store = storage.get_driver(url, ttl=0)  # as the collector: its indexes
    end = datetime.datetime.utcnow().replace(microsecond=0)
    started = time.perf_counter()
    fill(store, span_count, end)
    # the oldest trace: no search of the newest ones meets it
    base_id, raw = trace(trace_spans, end - datetime.timedelta(
        seconds=span_count // 10 + 10), LABELS[0], LABELS[1])
    write(store, raw)
    fill_s = time.perf_counter() - started
    totals = store.stats()
    print(f"{kind}: {totals['spans']:,} spans in {totals['traces']:,} "
          f"traces (written in {fill_s:.0f} s)", flush=True)
    api = Api(workdir, url)
    unkept = Api(workdir, url, port_offset=400, trace_cache_size=0)
    end_ms = int((end - datetime.datetime(1970, 1, 1)).total_seconds()
                 * 1000) + 10_000
    us = end_ms * 1000
    searches = [
        ("/api/v2/traces", {"limit": "20"}),
        ("/api/v2/traces", {"serviceName": "nova-api", "limit": "20"}),
        ("/api/v2/traces", {"serviceName": "nova-api", "spanName": "wsgi",
                            "limit": "10"}),
        ("/api/v2/traces", {"serviceName": "nova-api", "spanName": "db",
                            "minDuration": "1000000", "limit": "10"}),
        ("/api/traces", {"service": "nova-api", "limit": "20",
                         "start": str(us - 3600 * 10**6), "end": str(us)}),
        ("/api/traces", {"service": "cinder-volume", "operation": "db",
                         "limit": "20", "start": str(us - 3600 * 10**6),
                         "end": str(us)}),
        ("/api/v2/services", {}),
        ("/api/v2/spans", {"serviceName": "nova-api"}),
        ("/api/v2/dependencies", {"endTs": str(end_ms),
                                  "lookback": "60000"}),
    ]
    try:
        for path, params in searches:
            seconds = best_of(5, lambda: api.get(path, **params))
            found = api.get(path, **params).json()
            count = len(found["data"] if isinstance(found, dict) else found)
            query = "&".join(f"{k}={v}" for k, v in params.items())
            print(f"    {path}?{query}: {seconds * 1000:.1f} ms "
                  f"({count} found)", flush=True)
        path = f"/api/v2/trace/{exports.trace_hex(base_id)}"
        kept_s = best_of(5, lambda: api.get(path))
        made_s = best_of(5, lambda: unkept.get(path))
        document = zipkin.trace_spans(base_id, store.get_spans(base_id))
        dumps_s = best_of(5, lambda: json.dumps(document))
        print(f"    /api/v2/trace/{{id}} of {trace_spans} spans: "
              f"json.dumps of its spans {dumps_s * 1000:.0f} ms; "
              f"read and exported {made_s * 1000:.0f} ms, ratio "
              f"{made_s / dumps_s:.2f}; kept {kept_s * 1000:.1f} ms, "
              f"ratio {kept_s / dumps_s:.2f}", flush=True)
    finally:
        api.close()
        unkept.close()
    explain(kind, store)
    store.close()


def explain(kind, store):
    """The plans of the searches' queries on the store just measured, with
    the planner settings the driver gives them."""
    window = (datetime.datetime.utcnow() - datetime.timedelta(minutes=1),
              datetime.datetime.utcnow())
    for title, statement, settings in [
            ("newest spans of a service and name",
             sql.newest_spans_query(base.SpanSearch(
                 label=("nova", "api"), name="db"), store.dialect),
             sql.POSTGRESQL_SEARCH_SETTINGS),
            ("newest spans of a service",
             sql.newest_spans_query(base.SpanSearch(
                 label=("nova", "api")), store.dialect),
             sql.POSTGRESQL_SEARCH_SETTINGS),
            ("newest spans of a service and name lasting 1 s or more",
             sql.newest_spans_query(base.SpanSearch(
                 label=("nova", "api"), name="db", min_duration_us=10**6),
                 store.dialect),
             sql.POSTGRESQL_SEARCH_SETTINGS),
            ("service links of the last minute's traces",
             sql.service_links_query(*window),
             sql.POSTGRESQL_BY_TRACE_SETTINGS)]:
        print(f"    plan, {title}:")
        text = str(statement.compile(
            store.engine, compile_kwargs={"literal_binds": True}))
        prefix = "EXPLAIN QUERY PLAN " if kind == "sqlite" else "EXPLAIN "
        with store.engine.begin() as conn:
            if kind == "postgresql":
                for setting in settings:
                    conn.exec_driver_sql(setting)
            for row in conn.exec_driver_sql(prefix + text):
                print(f"        {row[-1]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1000000)
    parser.add_argument("--trace-spans", type=int, default=10000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    stores = Stores()
    try:
        for kind in args.stores.split(","):
            bench(kind, stores.fresh(kind), stores.workdir, args.spans,
                  args.trace_spans)
    finally:
        stores.cleanup()


if __name__ == "__main__":
    main()
