"""Real RabbitMQ vhosts, real collector processes, real osprofiler senders."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from osprof_collector import storage

RABBIT_HOST = os.environ.get("OSPROF_COLLECTOR_TEST_RABBIT",
                             "guest:guest@127.0.0.1:5672")
BIN_DIR = os.path.dirname(sys.executable)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def rabbit_url():
    """A RabbitMQ vhost of this test's own, deleted afterwards."""
    vhost = f"osprof_test_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"rabbit://{RABBIT_HOST}/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request):
    return request.getfixturevalue(
        {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param])


class Collector:
    """An osprof-collector process run from its installed entry point."""

    def __init__(self, workdir, transport_url, store_url,
                 storage_options=None, default_options=None, **options):
        self.workdir = workdir
        name = f"collector-{uuid.uuid4().hex[:6]}"
        self.log_path = workdir / f"{name}.log"
        self.stderr_path = workdir / f"{name}.stderr"
        self.config_path = workdir / "osprof-collector.conf"
        collector = {"batch_timeout": 0.2, "stats_interval": 1,
                     "requeue_backoff_max": 2}
        collector.update(options)
        lines = ["[DEFAULT]", f"transport_url = {transport_url}",
                 f"log_file = {self.log_path}"]
        lines += [f"{k} = {v}" for k, v in (default_options or {}).items()]
        lines += ["[collector]"]
        lines += [f"{k} = {v}" for k, v in collector.items()]
        lines += ["[storage]", f"connection = {store_url}"]
        lines += [f"{k} = {v}" for k, v in (storage_options or {}).items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.workers = int(collector.get("workers", 1))
        self.process = None

    def start(self, wait=True):
        """Start (or restart) the daemon; wait until it consumes."""
        ready = self.log().count("consuming topics") + self.workers
        # A session of its own, so that kill_hard() reaches every worker.
        with open(self.stderr_path, "a") as stderr:
            self.process = subprocess.Popen(
                [os.path.join(BIN_DIR, "osprof-collector"), "--config-file",
                 str(self.config_path)],
                stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True)
        if wait:
            self.wait_for_log("consuming topics", ready)
        return self

    def stderr(self):
        return self.stderr_path.read_text()

    def log(self):
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text, count=1, timeout=60):
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if self.process.poll() is not None:
                raise AssertionError(f"collector exited: {self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in log: {self.log()}")
            time.sleep(0.1)

    def wait_exit(self, timeout=60):
        """The exit status of a daemon expected to stop by itself."""
        return self.process.wait(timeout)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill_hard(self):
        """SIGKILL the master and its workers at once, as a crash would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def kill_if_running(self):
        if self.process and self.process.poll() is None:
            self.kill_hard()


@pytest.fixture
def collector_factory(tmp_path):
    started = []

    def make(transport_url, store_url, storage_options=None,
             default_options=None, **options):
        collector = Collector(tmp_path, transport_url, store_url,
                              storage_options, default_options, **options)
        started.append(collector)
        return collector

    yield make
    for collector in started:
        collector.kill_if_running()


def start_producer(transport_url, exchange, service, scenario, count,
                   pause=0.0, stop_file=None):
    """A producer process; with stop_file it sends count traces, then
    goes on until that file exists."""
    extra = [str(stop_file)] if stop_file else []
    # Its report goes to a file: a pipe nobody reads until the end fills
    # after a few traces and would block the producer mid-stream.
    output = tempfile.TemporaryFile("w+")
    producer = subprocess.Popen(
        [sys.executable, "-m", "tests.functional.producer", transport_url,
         exchange, service, scenario, str(count), str(pause), *extra],
        cwd=ROOT, stdout=output, text=True)
    producer.output = output
    return producer


def finish_producers(producers, timeout=300):
    """Wait for producer processes; return every trace they reported."""
    traces = []
    for producer in producers:
        assert producer.wait(timeout=timeout) == 0
        with producer.output as output:
            output.seek(0)
            traces.extend(json.loads(line) for line in output)
    return traces


def produce(transport_url, *specs):
    """Run producers (exchange, service, scenario, count) concurrently."""
    return finish_producers([start_producer(transport_url, *spec)
                             for spec in specs])


def stored_spans(store, trace):
    return store.get_spans(trace["base_id"])


def wait_until_stored(store_url, traces, timeout=120):
    """Poll the store until every expected span has all its events."""
    store = storage.get_driver(store_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            missing = [t for t in traces if not _complete(store, t)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(missing)} of {len(traces)} traces incomplete, "
                    f"e.g. {missing[0]['base_id']}")
            time.sleep(0.3)
    finally:
        store.close()


def _complete(store, trace):
    by_id = {s.trace_id: s for s in store.get_spans(trace["base_id"])}
    for expected in trace["spans"]:
        span = by_id.get(expected["trace_id"])
        if span is None or span.started_at is None:
            return False
        if expected["closed"] and span.finished_at is None:
            return False
    return True


# -- one fixture per storage driver, for the contract suite --------------

MONGODB_URL = os.environ.get("OSPROF_COLLECTOR_TEST_MONGODB_URL")
# "postgresql" runs the test URL (psycopg2), "postgresql+psycopg" the same
# server through psycopg 3, which a plain postgresql:// URL picks.
DRIVERS = ["sqlite", "postgresql", "postgresql+psycopg", "mysql", "mongomock",
           "mongodb"]


def _opener(url):
    """Open url as the collector does, or with create=False as readers."""
    def open_driver(ttl=None, create=True):
        if create:
            return storage.get_driver(url, ttl)
        return storage.open_existing(url)
    return open_driver


@pytest.fixture(params=DRIVERS)
def store_url_factory(request, tmp_path):
    """Return a callable opening a new driver on this test's own store:
    factory(ttl=None, create=True), create=False opening it as
    storage.open_existing() does."""
    name = request.param
    opened = []
    if name == "sqlite":
        factory = _opener(f"sqlite:///{tmp_path}/osprof.db")
    elif name.startswith("postgresql"):
        url = request.getfixturevalue("postgres_url")
        if name == "postgresql+psycopg":
            url = name + url[url.index("://"):]
        factory = _opener(url)
    elif name == "mysql":
        factory = _opener(request.getfixturevalue("mysql_url"))
    elif name == "mongomock":
        from tests import mongomock_adapter
        factory = mongomock_adapter.driver_factory()
    else:
        if not MONGODB_URL:
            pytest.skip("real MongoDB: set OSPROF_COLLECTOR_TEST_MONGODB_URL")
        url = MONGODB_URL.rstrip("/") + f"/osprof_test_{uuid.uuid4().hex[:8]}"
        factory = _opener(url)

    def open_driver(ttl=None, create=True):
        driver = factory(ttl=ttl, create=create)
        opened.append(driver)
        return driver

    yield open_driver
    if name == "mongodb" and opened:
        opened[0].client.drop_database(opened[0].database.name)
    for driver in opened:
        driver.close()


@pytest.fixture
def store(store_url_factory):
    return store_url_factory()
