"""What a worker says in its heartbeat, and that saying it never stops it."""

import datetime
import logging
import os
import socket

from osprof_collector import endpoint
from osprof_collector import service
from osprof_collector import storage


class FailingStore:
    def __init__(self, exc):
        self.exc = exc

    def write_heartbeat(self, heartbeat):
        raise self.exc


def test_snapshot_copies_the_counts_with_the_last_write_in_utc():
    stats = endpoint.Stats()
    assert stats.snapshot() == (dict.fromkeys(stats.FIELDS, 0), None)
    stats.add(received=2)
    stats.wrote(1)
    counts, last_write = stats.snapshot()
    counts["received"] = 99
    assert stats.counts["received"] == 2
    assert abs(datetime.datetime.utcnow() - last_write) < \
        datetime.timedelta(seconds=5)


def test_worker_heartbeat_carries_its_identity_and_counts(sqlite_url):
    worker = service.CollectorWorker(1, conf=None)
    worker.store = storage.get_driver(sqlite_url)
    worker.stats.add(received=6)
    worker.stats.wrote(3)
    worker._heartbeat()
    worker._heartbeat()
    [heartbeat] = worker.store.get_heartbeats()
    worker.store.close()
    host = socket.gethostname()
    assert (heartbeat.worker, heartbeat.host) == (f"{host}/1", host)
    assert heartbeat.pid == os.getpid()
    assert heartbeat.counts["received"] == 6
    assert heartbeat.counts["spans_written"] == 3
    assert heartbeat.started_at <= heartbeat.last_write <= \
        heartbeat.updated_at


def test_each_failed_heartbeat_is_logged_once_and_the_worker_goes_on(
        caplog):
    worker = service.CollectorWorker(0, conf=None)
    worker.store = FailingStore(storage.StorageError(
        "sqlite:///x: heartbeat write failed: locked"))
    with caplog.at_level(logging.ERROR):
        worker._heartbeat()
        worker._heartbeat()
        worker.store = FailingStore(KeyError("bug"))
        worker._heartbeat()
    assert [r.getMessage() for r in caplog.records] == [
        "Worker 0 heartbeat write failed: sqlite:///x: heartbeat write "
        "failed: locked"] * 2 + ["Worker 0 heartbeat write failed: 'bug'"]
    # an unexpected error comes with its traceback, a store error without
    assert [bool(r.exc_info) for r in caplog.records] == [False, False, True]
