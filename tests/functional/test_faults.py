"""Nothing lost: crashes, store outages and broker restarts mid-stream.

Each test prints one FIGURES line (run with -s to see them); doc/
reliability.rst records them with the command that produced them.
"""

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time

import pytest

from osprof_collector import storage
from tests.functional.conftest import finish_producers
from tests.functional.conftest import produce
from tests.functional.conftest import rabbitmqctl
from tests.functional.conftest import start_producer
from tests.functional.conftest import wait_until_stored
from tests.functional.test_collector import assert_stored_exactly


def figures(test, **values):
    pairs = ", ".join(f"{k}={v}" for k, v in values.items())
    print(f"\nFIGURES {test}: {pairs}")


def stored_spans(store_url):
    store = storage.get_driver(store_url)
    try:
        return store.stats()["spans"]
    finally:
        store.close()


def worker_counts(log):
    """Sum the counters of the final 'Worker N stopped' lines."""
    totals = {}
    for line in re.findall(r"Worker \d+ stopped: (.*)", log):
        for key, value in re.findall(r"(\w+)=(\d+)", line):
            totals[key] = totals.get(key, 0) + int(value)
    return totals


def span_total(traces):
    return sum(len(t["spans"]) for t in traces)


# -- 1. crash ----------------------------------------------------------------

def test_sigkill_three_times_mid_stream_loses_and_duplicates_nothing(
        rabbit_url, postgres_url, collector_factory, tmp_path):
    # The producers go on until every kill is done: each one lands while
    # events are flowing, however fast this machine drains them.
    stop_file = tmp_path / "stop-producers"
    producers = [start_producer(rabbit_url, exchange, service, "siblings",
                                12, 0.2, stop_file)
                 for exchange, service in [("nova", "api"),
                                           ("nova", "conductor"),
                                           ("cinder", "volume"),
                                           ("glance", "api")]]
    collector = collector_factory(rabbit_url, postgres_url, workers=2,
                                  batch_size=100)
    kills = 0
    started = time.monotonic()
    for _ in range(3):
        collector.start()
        before = stored_spans(postgres_url)
        deadline = time.monotonic() + 60
        while stored_spans(postgres_url) == before:  # it is writing
            assert time.monotonic() < deadline, collector.log()
            time.sleep(0.2)
        time.sleep(0.5)
        collector.kill_hard()
        kills += 1
    stop_file.touch()
    collector.start()
    traces = finish_producers(producers)
    wait_until_stored(postgres_url, traces, timeout=300)
    assert_stored_exactly(postgres_url, traces)
    assert collector.stop() == 0
    spans = span_total(traces)
    assert spans >= 4 * 12 * 201
    figures("crash", producers=4, events=2 * spans, spans=spans,
            sigkills=kills, seconds=round(time.monotonic() - started, 1),
            lost=0, duplicated=stored_spans(postgres_url) - spans)


# -- 2. store outages -------------------------------------------------------

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """A PostgreSQL server of the test's own, so that stopping it harms
    nothing else on the machine."""

    def __init__(self):
        versions = sorted(os.listdir("/usr/lib/postgresql"),
                          key=lambda v: [int(p) for p in v.split(".")])
        self.bin = f"/usr/lib/postgresql/{versions[-1]}/bin"
        self.dir = tempfile.mkdtemp(prefix="osprof-pg-")
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = _free_port()
        self.data = os.path.join(self.dir, "data")
        self._as_postgres(f"{self.bin}/initdb", "-D", self.data,
                          "-A", "trust", "-U", "postgres")
        self.start()
        self.url = (f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}"
                    f"/postgres")

    def _as_postgres(self, *command):
        subprocess.run(["runuser", "-u", "postgres", "--", *command],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd="/")

    def start(self):
        self._as_postgres(f"{self.bin}/pg_ctl", "-D", self.data, "-w",
                          "-l", os.path.join(self.dir, "log"), "-o",
                          f"-p {self.port} -k {self.dir} -h 127.0.0.1",
                          "start")

    def stop(self):
        self._as_postgres(f"{self.bin}/pg_ctl", "-D", self.data, "-w",
                          "-m", "fast", "stop")

    def destroy(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    yield server
    server.destroy()


OUTAGE_SECONDS = 20


def test_postgresql_down_for_20s_requeues_with_backoff_then_stores_all(
        rabbit_url, private_postgres, collector_factory):
    collector = collector_factory(rabbit_url, private_postgres.url,
                                  workers=2, batch_size=50,
                                  requeue_backoff_max=8).start()
    producer = start_producer(rabbit_url, "nova", "api", "nested", 400,
                              0.1)
    deadline = time.monotonic() + 60
    while stored_spans(private_postgres.url) == 0:
        assert time.monotonic() < deadline, collector.log()
        time.sleep(0.2)
    private_postgres.stop()
    down_at = time.monotonic()
    time.sleep(OUTAGE_SECONDS)
    assert collector.process.poll() is None  # still up
    private_postgres.start()
    outage = time.monotonic() - down_at
    traces = finish_producers([producer])
    wait_until_stored(private_postgres.url, traces, timeout=300)
    assert_stored_exactly(private_postgres.url, traces)
    assert collector.stop() == 0
    counts = worker_counts(collector.log())
    assert counts["store_errors"] > 0  # the outage was seen...
    # ...and retried one batch at a time per worker, 0.5, 1, 2, 4, 8, 8 s
    # apart: about 7 attempts per worker in 20 s, never a redelivery loop
    assert counts["store_errors"] <= 2 * 10
    assert "Store write failed" in collector.log()
    figures("postgresql-outage", events=2 * span_total(traces),
            outage_seconds=round(outage, 1),
            failed_writes=counts["store_errors"],
            requeued_notifications=counts["requeued"], lost=0,
            duplicated=stored_spans(private_postgres.url)
            - span_total(traces))


def test_sqlite_locked_for_20s_requeues_with_backoff_then_stores_all(
        rabbit_url, sqlite_url, collector_factory):
    # Writers give up on the lock after 2 s instead of the default 60 s,
    # so that the lock makes writes fail and requeue.
    collector = collector_factory(rabbit_url, f"{sqlite_url}?timeout=2",
                                  workers=2, batch_size=50,
                                  requeue_backoff_max=8).start()
    producer = start_producer(rabbit_url, "nova", "api", "nested", 300,
                              0.1)
    deadline = time.monotonic() + 60
    while stored_spans(sqlite_url) == 0:
        assert time.monotonic() < deadline, collector.log()
        time.sleep(0.2)
    path = sqlite_url[len("sqlite:///"):]
    locker = sqlite3.connect(path, timeout=60, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # every writer now waits
    locked_at = time.monotonic()
    time.sleep(OUTAGE_SECONDS)
    assert collector.process.poll() is None
    locker.execute("COMMIT")
    locker.close()
    outage = time.monotonic() - locked_at
    traces = finish_producers([producer])
    wait_until_stored(sqlite_url, traces, timeout=300)
    assert_stored_exactly(sqlite_url, traces)
    assert collector.stop() == 0
    counts = worker_counts(collector.log())
    assert counts["store_errors"] > 0  # the lock was seen...
    assert counts["store_errors"] <= 2 * 10  # ...and retried with backoff
    assert "database is locked" in collector.log()
    figures("sqlite-locked", events=2 * span_total(traces),
            outage_seconds=round(outage, 1),
            failed_writes=counts["store_errors"],
            requeued_notifications=counts["requeued"], lost=0,
            duplicated=stored_spans(sqlite_url) - span_total(traces))


# -- 3. broker restart ------------------------------------------------------

def test_rabbitmq_restart_reconnects_and_stores_what_is_sent_after(
        rabbit_url, sqlite_url, collector_factory):
    collector = collector_factory(rabbit_url, sqlite_url, workers=2).start()
    before = produce(rabbit_url, ("nova", "api", "nested", 20))
    wait_until_stored(sqlite_url, before)
    rabbitmqctl("stop_app")
    stopped_at = time.monotonic()
    try:
        time.sleep(5)
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")
    outage = time.monotonic() - stopped_at
    # Both workers reconnect and declare their queue again by themselves.
    collector.wait_for_log("Reconnected to AMQP server", 2, timeout=120)
    after = produce(rabbit_url, ("nova", "api", "nested", 20),
                    ("cinder", "volume", "raises", 10))
    wait_until_stored(sqlite_url, after)
    assert_stored_exactly(sqlite_url, before + after)
    assert collector.process.poll() is None
    assert collector.stop() == 0
    figures("rabbitmq-restart", events_after=2 * span_total(after),
            outage_seconds=round(outage, 1), lost_after_restart=0)
