import datetime

from prometheus_client import parser

from osprof_collector import operations
from osprof_collector.render import prometheus
from osprof_collector.storage import base

NOW = datetime.datetime(2026, 12, 1, 12, 0, 30)


def heartbeat(worker, received, last_write_s_ago, rows):
    counts = dict.fromkeys(base.COUNTERS, 0) | {"received": received}
    return base.Heartbeat(
        worker=worker, host=worker.split("/")[0], pid=1,
        started_at=NOW - datetime.timedelta(hours=1),
        updated_at=NOW - datetime.timedelta(seconds=10), counts=counts,
        last_write=None if last_write_s_ago is None
        else NOW - datetime.timedelta(seconds=last_write_s_ago),
        operations=rows)


def samples(heartbeats):
    text = prometheus.render(heartbeats, NOW).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parser.text_string_to_metric_families(text)
            for s in family.samples}


def test_every_worker_of_every_host_is_its_own_series():
    counted = operations.Operations()
    for ms in (3, 7, 40):
        counted.observe("api", "db", ms == 40, ms)
    counted.observe("api", "db", False, None)
    found = samples([heartbeat("node-1/0", 120, 2, counted.snapshot()),
                     heartbeat("node-1/1", 80, None, []),
                     heartbeat("node-2/0", 5, 1.5, None)])
    w = {n: (("host", n.split("/")[0]), ("worker", n))
         for n in ("node-1/0", "node-1/1", "node-2/0")}
    assert found["osprof_collector_received_total", w["node-1/0"]] == 120
    assert found["osprof_collector_received_total", w["node-1/1"]] == 80
    assert found["osprof_collector_received_total", w["node-2/0"]] == 5
    assert found["osprof_collector_store_errors_total", w["node-2/0"]] == 0
    assert found["osprof_collector_heartbeat_age_seconds",
                 w["node-1/1"]] == 10
    assert found["osprof_collector_last_write_age_seconds",
                 w["node-2/0"]] == 1.5
    # a worker that never wrote has no last-write age
    assert ("osprof_collector_last_write_age_seconds",
            w["node-1/1"]) not in found
    op = (("name", "db"), ("service", "api"), ("worker", "node-1/0"))
    assert found["osprof_operation_calls_total", op] == 4
    assert found["osprof_operation_errors_total", op] == 1
    assert found["osprof_operation_untimed_calls_total", op] == 1
    assert found["osprof_operation_duration_seconds_count", op] == 3
    assert found["osprof_operation_duration_seconds_sum", op] == 0.05
    buckets = {dict(labels)["le"]: value for (name, labels), value
               in found.items()
               if name == "osprof_operation_duration_seconds_bucket"}
    assert buckets["0.005"] == 1 and buckets["0.01"] == 2
    assert buckets["0.025"] == 2 and buckets["0.05"] == 3
    assert buckets["+Inf"] == 3
    assert list(buckets) == prometheus.BOUNDS


def test_no_heartbeat_is_no_series():
    assert samples([]) == {}
