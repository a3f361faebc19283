"""/metrics, scraped by Debian's real Prometheus server, over the
heartbeats of a two-worker collector that stored real osprofiler traces."""

import shutil
import subprocess
import time

from prometheus_client import parser
import pytest
import requests

from tests.functional import api_server
from tests.functional.conftest import produce
from tests.functional.conftest import wait_until_stored


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus scraping the given target every second; returns
    a function querying its HTTP API."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is needed " \
                   "(tools/run-tests.sh installs it)"
    started = []

    def start(target):
        port = api_server.free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: osprof\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        log = open(tmp_path / "prometheus.log", "w")
        started.append(subprocess.Popen(
            [binary, f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT))

        def query(expression):
            answer = requests.get(f"http://127.0.0.1:{port}/api/v1/query",
                                  params={"query": expression},
                                  timeout=10).json()
            assert answer["status"] == "success", answer
            return answer["data"]["result"]
        return query

    yield start
    for process in started:
        process.terminate()
        process.wait(30)


def eventually(query, expression, timeout=60):
    """The first non-empty answer to expression."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(expression)
        except requests.ConnectionError:  # still starting
            result = []
        if result:
            return result
        assert time.monotonic() < deadline, f"no {expression!r}"
        time.sleep(0.5)


def test_prometheus_scrapes_every_worker_and_each_operation(
        rabbit_url, sqlite_url, collector_factory, tmp_path, prometheus):
    collector = collector_factory(rabbit_url, sqlite_url, workers=2,
                                  heartbeat_interval=1).start()
    traces = produce(rabbit_url, ("nova", "api", "nested", 6),
                     ("cinder", "volume", "raises", 4))
    wait_until_stored(sqlite_url, traces)
    assert collector.stop() == 0  # the last heartbeats have the counts
    spans = [s for t in traces for s in t["spans"]]
    by_name = {}
    for trace in traces:
        for span in trace["spans"]:
            key = (trace["service"], span["name"])
            by_name[key] = by_name.get(key, 0) + span["closed"]
    failed = sum(1 for s in spans if "error" in s)
    events = sum(1 + s["closed"] for s in spans)

    api = api_server.ApiServer(tmp_path, sqlite_url).start()
    try:
        direct = api.get("/metrics")
        assert direct.status_code == 200
        assert direct.headers["Content-Type"].startswith("text/plain")
        families = {f.name for f in parser.text_string_to_metric_families(
            direct.text)}
        assert {"osprof_collector_received", "osprof_operation_calls",
                "osprof_operation_duration_seconds"} <= families
        query = prometheus(api.url.removeprefix("http://"))
        # Both workers are there, and together they received everything.
        per_worker = eventually(query, "osprof_collector_received_total")
        assert len(per_worker) == 2
        total = eventually(query, "sum(osprof_collector_received_total)")
        assert float(total[0]["value"][1]) == events
        for (service, name), calls in by_name.items():
            found = eventually(query, f'sum(osprof_operation_calls_total{{'
                                      f'service="{service}",name="{name}"}})')
            assert float(found[0]["value"][1]) == calls, (service, name)
        errors = eventually(query, "sum(osprof_operation_errors_total)")
        assert float(errors[0]["value"][1]) == failed > 0
        # Grafana's p95 per operation, from the histogram.
        p95 = eventually(query, 'histogram_quantile(0.95, sum by (le) ('
                                'osprof_operation_duration_seconds_bucket{'
                                'service="api",name="wsgi"}))')
        assert 0 < float(p95[0]["value"][1]) <= 10
        age = eventually(query, "max(osprof_collector_last_write_age_"
                                "seconds)")
        assert float(age[0]["value"][1]) >= 0
    finally:
        assert api.stop() == 0
