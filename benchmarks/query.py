"""Query speed: osprof-trace show of a 10,000-span trace, and list with
1,000,000 spans stored.

    python benchmarks/query.py [--show-spans 10000] [--list-spans 1000000]

For SQLite and PostgreSQL (the test role of tools/run-tests.sh):

* show: times what `osprof-trace show --format json` does (read the spans,
  build the report, render it) against json.dumps of the same report, and
  the whole command as a process for reference;
* list: fills the store with --list-spans spans (traces of 10 spans), times
  `list --limit 20` (in the process and as a command), and prints the
  database's plan for its query, which must read an index.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import uuid


from osprof_collector import events
from osprof_collector import query
from osprof_collector import spans
from osprof_collector import storage
from osprof_collector.render import FORMATS
from stores import Stores

BIN_DIR = os.path.dirname(sys.executable)
EPOCH = datetime.datetime(2026, 11, 1)


def event(name, phase, base_id, trace_id, parent_id, at):
    return {"name": f"{name}-{phase}", "base_id": base_id,
            "trace_id": trace_id, "parent_id": parent_id,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "project": "nova", "service": "api",
            "info": {"host": "node-1", "db": {
                "statement": "SELECT * FROM instances WHERE uuid = %s",
                "params": {"uuid": trace_id}}}}


def trace(span_count, start):
    """The events of one trace: a root with span_count - 1 children."""
    base_id = str(uuid.uuid4())
    root_id = str(uuid.uuid4())
    raw = [event("wsgi", "start", base_id, root_id, base_id, start)]
    for n in range(span_count - 1):
        trace_id = str(uuid.uuid4())
        at = start + datetime.timedelta(microseconds=100 * n)
        raw.append(event("db", "start", base_id, trace_id, root_id, at))
        raw.append(event("db", "stop", base_id, trace_id, root_id,
                         at + datetime.timedelta(microseconds=50)))
    raw.append(event("wsgi", "stop", base_id, root_id, base_id,
                     start + datetime.timedelta(seconds=2)))
    return base_id, raw


def write(store, raw, batch=2000):
    for first in range(0, len(raw), batch):
        store.write_spans(spans.pair(
            events.parse(p) for p in raw[first:first + batch]))


def best_of(runs, function):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def command_seconds(url, *args):
    started = time.perf_counter()
    subprocess.run([os.path.join(BIN_DIR, "osprof-trace"), "--connection",
                    url, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def bench_show(kind, url, span_count):
    store = storage.get_driver(url)
    base_id, raw = trace(span_count, EPOCH)
    write(store, raw)

    def show():
        report = query.build_report(base_id, store.get_spans(base_id))
        return FORMATS["json"](report)

    report = query.build_report(base_id, store.get_spans(base_id))
    show_s = best_of(5, show)
    dumps_s = best_of(5, lambda: json.dumps(report, indent=2,
                                            sort_keys=True, default=str))
    whole = command_seconds(url, "show", base_id, "--format", "json")
    print(f"{kind}: show of {span_count} spans: {show_s * 1000:.0f} ms; "
          f"json.dumps of its report {dumps_s * 1000:.0f} ms; ratio "
          f"{show_s / dumps_s:.2f}; whole command {whole * 1000:.0f} ms",
          flush=True)
    store.close()


def bench_list(kind, url, span_count):
    store = storage.get_driver(url)
    per_trace = 10
    started = time.perf_counter()
    raw = []
    for n in range(span_count // per_trace):
        raw.extend(trace(per_trace, EPOCH + datetime.timedelta(seconds=n))[1])
        if len(raw) >= 20000:
            write(store, raw)
            raw = []
    write(store, raw)
    fill_s = time.perf_counter() - started
    totals = store.stats()
    list_s = best_of(5, lambda: store.list_traces(limit=20))
    whole = command_seconds(url, "list", "--limit", "20", "-f", "value")
    print(f"{kind}: {totals['spans']:,} spans in {totals['traces']:,} "
          f"traces (written in {fill_s:.0f} s); list --limit 20: "
          f"{list_s * 1000:.1f} ms; whole command {whole * 1000:.0f} ms",
          flush=True)
    statement = store.list_query(limit=20).compile(
        store.engine, compile_kwargs={"literal_binds": True})
    explain = ("EXPLAIN QUERY PLAN " if kind == "sqlite" else "EXPLAIN ")
    with store.engine.connect() as conn:
        for row in conn.exec_driver_sql(explain + str(statement)):
            print(f"    {row[-1]}")
    store.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-spans", type=int, default=10000)
    parser.add_argument("--list-spans", type=int, default=1000000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    stores = Stores()
    try:
        for kind in args.stores.split(","):
            bench_show(kind, stores.fresh(kind), args.show_spans)
            if args.list_spans:
                bench_list(kind, stores.fresh(kind), args.list_spans)
    finally:
        stores.cleanup()


if __name__ == "__main__":
    main()
