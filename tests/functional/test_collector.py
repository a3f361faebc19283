"""osprof-collector end to end: osprofiler → RabbitMQ → collector → store."""

import datetime
import json
import os
import signal
import socket
import subprocess
import time

from oslo_config import cfg
import oslo_messaging

from osprof_collector import events
from osprof_collector import spans
from osprof_collector import storage
from tests import payloads
from tests.functional.conftest import BIN_DIR
from tests.functional.conftest import finish_producers
from tests.functional.conftest import produce
from tests.functional.conftest import start_producer
from tests.functional.conftest import wait_until_stored

SCENARIOS = [("nova", "api", "nested", 3), ("nova", "api", "siblings", 1),
             ("cinder", "volume", "dashes", 2),
             ("cinder", "volume", "raises", 2),
             ("nova", "conductor", "unfinished", 2)]


def assert_stored_exactly(store_url, traces):
    """Every emitted span is stored once, complete, under the right parent,
    and nothing else is stored for those traces."""
    store = storage.get_driver(store_url)
    try:
        for trace in traces:
            base_id = trace["base_id"]
            found = store.get_spans(base_id)
            by_id = {s.trace_id: s for s in found}
            expected = {s["trace_id"]: s for s in trace["spans"]}
            assert len(found) == len(by_id) == len(expected)
            assert set(by_id) == set(expected)
            for trace_id, want in expected.items():
                span = by_id[trace_id]
                assert span.base_id == base_id
                assert span.name == want["name"]
                assert span.parent_id == want["parent_id"]
                assert (span.service, span.project) == (trace["service"],
                                                        trace["project"])
                assert span.host == socket.gethostname()  # osprofiler's
                assert span.started_at == events.parse_timestamp(
                    span.start_payload["timestamp"])
                if want["closed"]:
                    assert span.finished_at == events.parse_timestamp(
                        span.stop_payload["timestamp"])
                    assert span.started_at <= span.finished_at
                else:
                    assert span.is_open and span.stop_payload is None
                parent = by_id.get(span.parent_id)
                if parent is not None:
                    assert parent.started_at <= span.started_at
                if "error" in want:
                    assert span.error["etype"] == want["error"]
                    assert span.error["message"] == "no valid host was found"
                else:
                    assert span.error is None
            summary = store.get_trace(base_id)
            assert summary.span_count == len(expected)
            assert summary.error == any("error" in s for s in trace["spans"])
    finally:
        store.close()


def test_every_scenario_from_two_exchanges(rabbit_url, store_url,
                                           collector_factory):
    collector = collector_factory(rabbit_url, store_url).start()
    traces = produce(rabbit_url, *SCENARIOS)
    assert len(traces) == 10
    wait_until_stored(store_url, traces)
    assert_stored_exactly(store_url, traces)
    assert collector.stop() == 0
    assert "invalid=0" in collector.log()


def test_two_workers_and_concurrent_producers(rabbit_url, store_url,
                                              collector_factory):
    collector = collector_factory(rabbit_url, store_url, workers=2,
                                  batch_size=50).start()
    traces = produce(rabbit_url, *[(exchange, service, "nested", 25)
                                   for exchange, service in
                                   [("nova", "api"), ("nova", "scheduler"),
                                    ("cinder", "volume"), ("glance", "api")]])
    traces += produce(rabbit_url, *SCENARIOS)
    wait_until_stored(store_url, traces)
    assert_stored_exactly(store_url, traces)
    assert collector.stop() == 0
    log = collector.log()
    assert "Worker 0 stopped" in log and "Worker 1 stopped" in log


def test_sigterm_mid_stream_exits_0_and_loses_nothing(rabbit_url, store_url,
                                                      collector_factory):
    collector = collector_factory(rabbit_url, store_url, workers=2,
                                  batch_size=20).start()
    producer = start_producer(rabbit_url, "nova", "api", "nested", 150,
                              0.01)
    collector.wait_for_log("last_write=0s ago")  # it is mid-stream
    assert collector.stop() == 0
    traces = finish_producers([producer])
    restarted = collector_factory(rabbit_url, store_url).start()
    wait_until_stored(store_url, traces)
    assert_stored_exactly(store_url, traces)
    assert restarted.stop() == 0


def test_malformed_notifications_are_counted_and_acked(rabbit_url, sqlite_url,
                                                       collector_factory):
    collector = collector_factory(rabbit_url, sqlite_url).start()
    conf = cfg.ConfigOpts()
    transport = oslo_messaging.get_notification_transport(conf,
                                                          url=rabbit_url)
    notifier = oslo_messaging.Notifier(transport, publisher_id="fuzz",
                                       driver="messaging",
                                       topics=["profiler"])
    bad = ["not a dict", {"name": "db-start"},
           {"name": "db-start", "base_id": {"$ne": None},
            "trace_id": "x", "parent_id": "y", "timestamp": "z"}]
    for payload in bad:
        notifier.info({}, "profiler.fuzz", payload)
    traces = produce(rabbit_url, ("openstack", "api", "nested", 1))
    wait_until_stored(sqlite_url, traces)
    assert_stored_exactly(sqlite_url, traces)
    collector.wait_for_log("invalid=3")
    assert "Dropped invalid notification" in collector.log()
    transport.cleanup()
    assert collector.stop() == 0


def test_unknown_storage_scheme_is_one_clear_error(tmp_path):
    config = tmp_path / "bad.conf"
    config.write_text("[storage]\nconnection = redis://u:secret@h/0\n")
    result = subprocess.run(
        [os.path.join(BIN_DIR, "osprof-collector"), "--config-file",
         str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no storage driver for scheme 'redis'" in result.stderr
    assert "installed drivers: mongodb" in result.stderr
    assert "secret" not in result.stderr


def test_store_unreachable_at_start_is_retried(rabbit_url, postgres_url,
                                               collector_factory):
    unreachable = postgres_url.replace("5432", "5433").replace(
        "osprof:osprof@", "osprof:hunter2@")
    collector = collector_factory(rabbit_url, unreachable).start(wait=False)
    collector.wait_for_log("unreachable", 2)
    assert "hunter2" not in collector.log()
    assert "osprof:***@" in collector.log()
    started = time.monotonic()
    assert collector.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 30


def write_trace_at(store, hours_ago):
    base_id = payloads.new_id()
    moment = datetime.datetime.utcnow() - datetime.timedelta(hours=hours_ago)
    offset = (moment - payloads.EPOCH) / datetime.timedelta(milliseconds=1)
    store.write_spans(spans.pair(events.parse(p) for p in payloads.call(
        "wsgi", base_id, base_id, offset, offset + 5)))
    return base_id


def test_ttl_purges_expired_traces_in_sql_stores(rabbit_url, sqlite_url,
                                                 collector_factory):
    store = storage.get_driver(sqlite_url)
    expired = write_trace_at(store, hours_ago=5)
    recent = write_trace_at(store, hours_ago=0)
    collector = collector_factory(rabbit_url, sqlite_url, workers=2,
                                  storage_options={"ttl": 3600}).start()
    collector.wait_for_log("Purged 1 traces older than the 3600 s ttl")
    assert store.get_trace(expired) is None
    assert store.get_trace(recent).span_count == 1
    assert collector.log().count("Purged") == 1  # worker 0 only
    assert collector.stop() == 0
    store.close()


def status(store_url, *args):
    """osprof-trace status: (exit status, rows as JSON, stderr)."""
    result = subprocess.run(
        [os.path.join(BIN_DIR, "osprof-trace"), "--connection", store_url,
         "status", "-f", "json", *args],
        capture_output=True, text=True, timeout=60)
    rows = json.loads(result.stdout) if result.stdout else []
    return result.returncode, rows, result.stderr


def test_status_shows_the_counters_of_every_worker(rabbit_url, sqlite_url,
                                                   collector_factory):
    collector = collector_factory(rabbit_url, sqlite_url, workers=2,
                                  heartbeat_interval=1).start()
    traces = produce(rabbit_url, ("nova", "api", "nested", 2),
                     ("cinder", "volume", "nested", 2))
    wait_until_stored(sqlite_url, traces)
    sent = sum(len(t["spans"]) for t in traces)  # all closed: 2 events each

    def total(rows, field):
        return sum(row[field] for row in rows)

    deadline = time.monotonic() + 30
    while True:
        code, rows, err = status(sqlite_url)
        if (len(rows) == 2 and total(rows, "received") == 2 * sent
                and all(row["received"] and row["spans_written"]
                        for row in rows)):
            break
        assert time.monotonic() < deadline, (code, rows, err)
        time.sleep(0.5)
    assert (code, err) == (0, "")
    host = socket.gethostname()
    assert [row["worker"] for row in rows] == [f"{host}/0", f"{host}/1"]
    assert {row["state"] for row in rows} == {"ok"}
    # a start and its stop merged in one batch make one write
    assert sent <= total(rows, "spans_written") <= 2 * sent
    for field in ("invalid", "requeued", "store_errors"):
        assert total(rows, field) == 0
    assert all(row["last_write"] for row in rows)
    assert collector.stop() == 0
    time.sleep(2)
    code, rows, err = status(sqlite_url, "--stale-after", "1")
    assert code == 1 and err.count("\n") == 1, (rows, err)
    assert {row["state"] for row in rows} == {"stale"}
    assert total(rows, "received") == 2 * sent
