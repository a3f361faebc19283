"""A real osprof-api process, and a store the real collector filled."""

import os
import socket
import subprocess
import time
import uuid

from oslo_config import cfg
import oslo_messaging
import pytest
import requests

from osprof_collector import storage
from tests import conftest as top
from tests import traced_cloud
from tests.functional import conftest

SCENARIOS = [("nova", "api", "nested", 3), ("cinder", "volume", "dashes", 2),
             ("cinder", "volume", "raises", 1),
             ("nova", "conductor", "unfinished", 1)]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiServer:
    """osprof-api run from its installed entry point."""

    def __init__(self, workdir, store_url, sections=None, **api_options):
        """With a SQLite file that does not exist, the store is made
        there first, empty, as the collector would make it (osprof-api
        itself creates none)."""
        if store_url.startswith("sqlite:///") and not os.path.exists(
                store_url.removeprefix("sqlite:///")):
            storage.get_driver(store_url).close()
        self.workdir = workdir
        name = f"api-{uuid.uuid4().hex[:6]}"
        self.log_path = workdir / f"{name}.log"
        self.config_path = workdir / f"{name}.conf"
        options = {"host": "127.0.0.1", "port": free_port(), **api_options}
        self.url = f"http://{options['host']}:{options['port']}"
        lines = ["[DEFAULT]", f"log_file = {self.log_path}", "[storage]",
                 f"connection = {store_url}", "[api]"]
        lines += [f"{k} = {v}" for k, v in options.items()]
        for section, values in (sections or {}).items():
            lines += [f"[{section}]", *(f"{k} = {v}"
                                        for k, v in values.items())]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.process = None

    def start(self, wait=True):
        self.process = subprocess.Popen(
            [os.path.join(conftest.BIN_DIR, "osprof-api"), "--config-file",
             str(self.config_path)], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        if wait:
            deadline = time.monotonic() + 30
            while "Serving" not in self.log():
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"osprof-api exited: {self.process.stderr.read()}")
                assert time.monotonic() < deadline, self.log()
                time.sleep(0.1)
        return self

    def log(self):
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def get(self, path, **params):
        return requests.get(self.url + path, params=params, timeout=60)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(30)


def send_payloads(transport_url, payloads):
    """Send osprofiler payloads as its messaging driver does: an info
    notification "profiler.<service>" on the topic profiler."""
    conf = cfg.ConfigOpts()
    transport = oslo_messaging.get_notification_transport(
        conf, url=transport_url)
    try:
        notifier = oslo_messaging.Notifier(
            transport, publisher_id="osprofiler", driver="messaging",
            topics=["profiler"])
        for payload in payloads:
            notifier.info({}, f"profiler.{payload['service']}", payload)
    finally:
        transport.cleanup()


def cross_service_trace(transport_url):
    """A request of traced_cloud (api → volume over HTTP, api → compute
    over RPC), sent through RabbitMQ; described as the producers do."""
    base_id, sent = traced_cloud.capture(instances=3)
    send_payloads(transport_url, sent)
    spans = {}
    for payload in sent:
        span = spans.setdefault(payload["trace_id"], {
            "trace_id": payload["trace_id"],
            "parent_id": payload["parent_id"],
            "name": payload["name"].rsplit("-", 1)[0], "closed": False})
        span["closed"] |= payload["name"].endswith("-stop")
    return {"base_id": base_id, "cross_service": True,
            "spans": list(spans.values())}


class FilledStore:
    """A RabbitMQ vhost and a store of their own, filled by the real
    collector from real osprofiler senders; removed by close()."""

    def __init__(self, kind, workdir):
        self.vhost = f"osprof_test_{uuid.uuid4().hex[:12]}"
        conftest.rabbitmqctl("add_vhost", self.vhost)
        conftest.rabbitmqctl("set_permissions", "-p", self.vhost, "guest",
                             ".*", ".*", ".*")
        self.rabbit_url = f"rabbit://{conftest.RABBIT_HOST}/{self.vhost}"
        self.database = None
        if kind == "sqlite":
            self.url = f"sqlite:///{workdir}/osprof.db"
        else:
            self.database = f"osprof_test_{uuid.uuid4().hex[:12]}"
            top._postgres_admin(f"CREATE DATABASE {self.database}")
            self.url = top.POSTGRES_URL.format(dbname=self.database)
        self.collector = conftest.Collector(workdir, self.rabbit_url,
                                            self.url)

    def fill(self, *more_scenarios):
        self.collector.start()
        self.traces = conftest.produce(self.rabbit_url, *SCENARIOS,
                                       *more_scenarios)
        self.traces.append(cross_service_trace(self.rabbit_url))
        conftest.wait_until_stored(self.url, self.traces)
        assert self.collector.stop() == 0
        return self

    def close(self):
        self.collector.kill_if_running()
        conftest.rabbitmqctl("delete_vhost", self.vhost)
        if self.database:
            top._postgres_admin(
                f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    """(ApiServer, FilledStore, {base_id: stored spans}) for the tests of
    one module, on SQLite and on PostgreSQL."""
    workdir = tmp_path_factory.mktemp(request.param)
    filled = FilledStore(request.param, workdir)
    api = None
    try:
        filled.fill()
        store = storage.get_driver(filled.url)
        stored = {t["base_id"]: store.get_spans(t["base_id"])
                  for t in filled.traces}
        store.close()
        api = ApiServer(workdir, filled.url).start()
        yield api, filled, stored
    finally:
        if api is not None:
            api.stop()
        filled.close()
