import pytest

from osprof_collector import endpoint
from osprof_collector import operations
from osprof_collector import storage
from tests import payloads
from tests.unit.test_endpoint import notifications


def test_calls_errors_and_durations_per_operation():
    counted = operations.Operations()
    for ms in (0.5, 5, 5.001, 10, 12000):
        counted.observe("api", "db", False, ms)
    counted.observe("api", "db", True, None)  # its start is unknown
    counted.observe(None, "wsgi", True, 250)
    assert counted.snapshot() == [
        {"service": "?", "name": "wsgi", "calls": 1, "errors": 1,
         "untimed": 0, "sum_ms": 250.0,
         "buckets": [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]},
        {"service": "api", "name": "db", "calls": 6, "errors": 1,
         "untimed": 1, "sum_ms": pytest.approx(12020.501),
         # a bound is inclusive (Prometheus' le): 5 ms is in the 5 bucket
         "buckets": [2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]}]


def test_made_up_names_past_the_bound_share_one_operation():
    counted = operations.Operations(max_operations=3)
    for n in range(10):
        counted.observe("api", f"name-{n}", False, 1)
    counted.observe("api", "name-0", False, 1)  # known ones keep counting
    rows = {row["name"]: row["calls"] for row in counted.snapshot()}
    assert rows == {"name-0": 2, "name-1": 1, "name-2": 1,
                    operations.OTHER: 7}


def test_the_endpoint_counts_a_stop_whose_start_came_before(sqlite_url):
    store = storage.get_driver(sqlite_url)
    stats = endpoint.Stats()
    base_id = payloads.new_id()
    start, stop = payloads.call("wsgi", base_id, base_id, 0, 40,
                                service="api")
    db = payloads.call("db", base_id, start["trace_id"], 10, 12.5,
                       stop_info={"etype": "OperationalError",
                                  "message": "gone"}, service="api")
    handler = endpoint.ProfilerEndpoint(store, stats)
    handler.info(notifications(start, *db))  # wsgi is still open
    handler.info(notifications(stop))  # its start is in the store
    orphan_stop = payloads.call("rpc", base_id, base_id, 50, 60,
                                service="api")[1]
    handler.info(notifications(orphan_stop))  # its start never came
    by_name = {row["name"]: row for row in stats.operations.snapshot()}
    assert by_name["db"]["calls"] == by_name["db"]["errors"] == 1
    assert by_name["db"]["sum_ms"] == pytest.approx(2.5)
    assert by_name["wsgi"]["calls"] == 1
    assert by_name["wsgi"]["sum_ms"] == pytest.approx(40)
    assert by_name["wsgi"]["errors"] == 0
    assert (by_name["rpc"]["calls"], by_name["rpc"]["untimed"]) == (1, 1)
    assert sum(by_name["rpc"]["buckets"]) == 0
    store.close()


class NoStartTimes:
    """A store whose start-time read fails: the batch is still acked."""

    def __init__(self, store):
        self.store = store

    def write_spans(self, spans):
        self.store.write_spans(spans)

    def get_start_times(self, trace_ids):
        raise storage.StorageError("sqlite:///x: read failed: locked")


def test_an_unreadable_start_time_never_fails_the_batch(sqlite_url, caplog):
    store = storage.get_driver(sqlite_url)
    stats = endpoint.Stats()
    base_id = payloads.new_id()
    stop = payloads.call("rpc", base_id, base_id, 0, 3, service="api")[1]
    result = endpoint.ProfilerEndpoint(NoStartTimes(store), stats).info(
        notifications(stop))
    assert result == endpoint.oslo_messaging.NotificationResult.HANDLED
    [row] = stats.operations.snapshot()
    assert (row["calls"], row["untimed"]) == (1, 1)
    assert "counted without a duration" in caplog.text
    store.close()
