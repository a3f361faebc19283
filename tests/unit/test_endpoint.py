import logging
import threading
import time

import oslo_messaging

from osprof_collector import endpoint
from osprof_collector import storage
from osprof_collector.storage import base
from tests import payloads

HANDLED = oslo_messaging.NotificationResult.HANDLED
REQUEUE = oslo_messaging.NotificationResult.REQUEUE


def notifications(*raw):
    return [{"ctxt": {}, "publisher_id": "api.node-1",
             "event_type": "profiler.api", "payload": p,
             "metadata": {}} for p in raw]


def in_parallel(count, function, *args):
    """Run function(*args) in count threads at once; wait for them all."""
    threads = [threading.Thread(target=function, args=args)
               for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class UnavailableStore:
    """A store that is down: every write fails the way drivers fail."""

    def __init__(self):
        self.attempts = 0

    def write_spans(self, partial_spans):
        self.attempts += 1
        raise base.StorageError("sqlite:///x: write failed: locked")


def test_batch_is_stored_and_acked(sqlite_url):
    store = storage.get_driver(sqlite_url)
    stats = endpoint.Stats()
    base_id = payloads.new_id()
    raw = payloads.call("db", base_id, base_id, 0, 5)
    assert endpoint.ProfilerEndpoint(store, stats).info(
        notifications(*raw)) == HANDLED
    [span] = store.get_spans(base_id)
    assert not span.is_open
    assert stats.counts == {"received": 2, "spans_written": 1, "invalid": 0,
                            "requeued": 0, "store_errors": 0}
    assert "last_write=0s ago" in stats.line()


def test_invalid_notifications_are_counted_acked_and_logged_rarely(
        sqlite_url, caplog):
    store = storage.get_driver(sqlite_url)
    stats = endpoint.Stats()
    ep = endpoint.ProfilerEndpoint(store, stats)
    base_id = payloads.new_id()
    good = payloads.call("db", base_id, base_id, 0, 5)
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            assert ep.info(notifications({"name": 1}, *good, "junk")) \
                == HANDLED
    assert stats.counts["invalid"] == 100
    assert stats.counts["received"] == 200
    assert len(store.get_spans(base_id)) == 1
    assert len(caplog.records) == ep.invalid_log.burst


def test_store_failure_requeues_and_paces_the_next_attempts():
    store = UnavailableStore()
    stats = endpoint.Stats()
    backoff = endpoint.Backoff(initial=0.1, maximum=0.4)
    ep = endpoint.ProfilerEndpoint(store, stats, backoff=backoff)
    base_id = payloads.new_id()
    batch = notifications(*payloads.call("db", base_id, base_id, 0, 5))
    pauses = []
    for _ in range(5):
        started = time.monotonic()
        assert ep.info(batch) == REQUEUE
        pauses.append(time.monotonic() - started)
    # the first failure is immediate; each later attempt waits its turn
    for pause, expected in zip(pauses, [0.0, 0.1, 0.2, 0.4, 0.4]):
        assert expected - 0.01 <= pause < expected + 0.09
    assert store.attempts == 5
    assert stats.counts["store_errors"] == 5
    assert stats.counts["requeued"] == 10
    assert stats.counts["spans_written"] == 0


def test_a_failing_store_gets_one_attempt_at_a_time():
    store = UnavailableStore()
    backoff = endpoint.Backoff(initial=0.1, maximum=0.1)
    ep = endpoint.ProfilerEndpoint(store, endpoint.Stats(), backoff=backoff)
    base_id = payloads.new_id()
    batch = notifications(*payloads.call("db", base_id, base_id, 0, 5))
    assert ep.info(batch) == REQUEUE
    started = time.monotonic()
    in_parallel(8, ep.info, batch)
    # 8 batches in flight on a failing store: 8 attempts spaced 0.1 s apart
    assert store.attempts == 9
    assert time.monotonic() - started >= 0.75


def test_stopping_cuts_the_wait_short():
    stopping = threading.Event()
    backoff = endpoint.Backoff(initial=30, stopping=stopping)
    store = UnavailableStore()
    ep = endpoint.ProfilerEndpoint(store, endpoint.Stats(), backoff=backoff)
    base_id = payloads.new_id()
    batch = notifications(*payloads.call("db", base_id, base_id, 0, 5))
    assert ep.info(batch) == REQUEUE  # the store is now known to fail
    stopping.set()
    started = time.monotonic()
    assert ep.info(batch) == REQUEUE
    assert time.monotonic() - started < 1
    assert store.attempts == 1  # no attempt while stopping


def test_backoff_resets_after_success():
    backoff = endpoint.Backoff(initial=1, maximum=8)
    assert [backoff.failed() for _ in range(5)] == [1, 2, 4, 8, 8]
    backoff.succeeded()
    assert backoff.failed() == 1


class SlowStore:
    """A working store that notes how many writes overlap."""

    def __init__(self):
        self.active = self.most_active = self.writes = 0
        self.lock = threading.Lock()

    def write_spans(self, partial_spans):
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(0.02)
        with self.lock:
            self.active -= 1
            self.writes += 1


def test_a_worker_writes_one_batch_at_a_time():
    # Batches that hit a store going down then fail one by one, with a
    # pause between them, instead of all at once.
    store = SlowStore()
    ep = endpoint.ProfilerEndpoint(store, endpoint.Stats())
    base_id = payloads.new_id()
    batch = notifications(*payloads.call("db", base_id, base_id, 0, 5))
    in_parallel(8, ep.info, batch)
    assert store.writes == 8
    assert store.most_active == 1
