"""What an operator meets when the collector's configuration is wrong:
one line, a documented exit status, no respawn loop, and a quick stop."""

import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from osprof_collector import exits
from tests.functional.conftest import BIN_DIR


def closed_port():
    """A local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_collector(config_text, tmp_path):
    config = tmp_path / "osprof-collector.conf"
    config.write_text(config_text)
    return subprocess.run(
        [os.path.join(BIN_DIR, "osprof-collector"), "--config-file",
         str(config)], capture_output=True, text=True, timeout=60)


def assert_one_line_per_worker(collector, text, workers):
    """The fatal error is said once by each worker that met it (those the
    master stopped first may keep quiet), never with a traceback, and no
    worker is started again."""
    log = collector.log()
    assert "Traceback" not in log and "Traceback" not in collector.stderr()
    assert 1 <= log.count(text) <= workers, log
    assert log.count("storing in") <= workers, log
    assert "Forking too fast" not in log
    errors = [line for line in collector.stderr().splitlines() if line]
    assert 1 <= len(errors) <= workers
    assert all(line.startswith("osprof-collector: Worker ") and text in line
               for line in errors), errors


@pytest.mark.parametrize("mistake", ["password", "vhost"])
def test_a_broker_refusal_stops_the_daemon_with_status_78(
        mistake, rabbit_url, sqlite_url, collector_factory):
    if mistake == "password":
        url = rabbit_url.replace("guest:guest@", "guest:Wrong-Pw@")
        said = "ACCESS_REFUSED"
    else:
        url = rabbit_url + "-missing"
        said = "NOT_ALLOWED - vhost"
    collector = collector_factory(url, sqlite_url, workers=2)
    collector.start(wait=False)
    assert collector.wait_exit(60) == exits.CONFIG == 78
    assert_one_line_per_worker(collector, "refused the connection", 2)
    assert said in collector.log()
    assert "Wrong-Pw" not in collector.log() + collector.stderr()
    assert "Stopping the collector: worker" in collector.log()


def test_a_store_refusing_the_role_stops_the_daemon_with_status_78(
        rabbit_url, postgres_url, collector_factory):
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    url = postgres_url.replace("osprof:osprof@", f"{role}:Secret-Pw@")
    collector = collector_factory(rabbit_url, url).start(wait=False)
    assert collector.wait_exit(60) == 78
    assert_one_line_per_worker(collector, "store refused", 1)
    assert f'role "{role}" does not exist' in collector.log()
    assert "Secret-Pw" not in collector.log() + collector.stderr()


def test_a_store_unreachable_past_max_retries_exits_69(
        rabbit_url, postgres_url, collector_factory):
    port = closed_port()
    url = postgres_url.replace(":5432/", f":{port}/")
    collector = collector_factory(
        rabbit_url, url, storage_options={"max_retries": 3,
                                          "retry_interval_max": 0.5})
    collector.start(wait=False)
    assert collector.wait_exit(60) == exits.UNAVAILABLE == 69
    log = collector.log()
    # Three attempts: two retry lines, each naming the host and port.
    assert log.count(f"Storage at 127.0.0.1:{port} unreachable") == 2, log
    assert_one_line_per_worker(
        collector, f"store 127.0.0.1:{port} still unreachable after 3 "
                   f"attempts", 1)


def test_sigterm_while_the_broker_is_unreachable_stops_at_once(
        sqlite_url, collector_factory):
    port = closed_port()
    url = f"rabbit://guest:Hidden-Pw@127.0.0.1:{port}/"
    collector = collector_factory(url, sqlite_url).start(wait=False)
    # oslo.messaging's retry lines name the broker, password masked.
    collector.wait_for_log(f"Broker rabbit://guest:***@127.0.0.1:{port}/ "
                           f"unreachable", 2)
    started = time.monotonic()
    assert collector.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    assert "Worker 0 stopped: received=0" in collector.log()
    assert "Possible hang" not in collector.log()
    assert "Hidden-Pw" not in collector.log() + collector.stderr()


RABBIT = "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n"
SQLITE = "[storage]\nconnection = sqlite:///{tmp}/traces.db\n"


@pytest.mark.parametrize("config, error", [
    (RABBIT + "[collector]\nbatch_size = lots\n" + SQLITE,
     "osprof-collector: invalid value for [collector] batch_size: 'lots' is "
     "not a whole number"),
    (RABBIT + "[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = -\n"
     + SQLITE, "osprof-collector: invalid value for [oslo_messaging_rabbit] "
               "rabbit_qos_prefetch_count: '-' is not a whole number"),
    ("[DEFAULT]\ntransport_url = kafkaa://u:Secret-Pw@h:9092/\n" + SQLITE,
     "osprof-collector: no oslo.messaging driver for transport_url scheme "
     "'kafkaa'; installed: "),
    ("[DEFAULT]\ntransport_url = rabbit://u:Secret-Pw@h:port/\n" + SQLITE,
     "osprof-collector: invalid transport_url rabbit://u:***@h:port/: "
     "'port' is not a whole number"),
    (RABBIT + "[storage]\nconnection = sqlite:///{tmp}/missing/traces.db\n",
     "osprof-collector: sqlite:///{tmp}/missing/traces.db: directory "
     "{tmp}/missing does not exist"),
    (RABBIT + "debug = maybe\n" + SQLITE,
     "osprof-collector: argument --debug: Invalid Boolean value: maybe"),
    ("[collector\n", "osprof-collector: "),
], ids=["integer", "messaging-option", "transport-scheme", "transport-port",
        "sqlite-directory", "boolean", "unparsable"])
def test_a_bad_configuration_is_one_line_and_exit_2(config, error, tmp_path):
    result = run_collector(config.format(tmp=tmp_path), tmp_path)
    assert result.returncode == exits.USAGE == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(error.format(tmp=tmp_path)), lines
    assert "Secret-Pw" not in result.stderr
    assert not (tmp_path / "traces.db").exists()  # no worker ran


def test_a_missing_config_file_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [os.path.join(BIN_DIR, "osprof-collector"), "--config-file",
         str(tmp_path / "nowhere.conf")], capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 2
    assert result.stderr == (f"osprof-collector: configuration file not "
                             f"found: {tmp_path}/nowhere.conf\n")


def test_an_unknown_flag_is_one_line_and_exit_2():
    result = subprocess.run(
        [os.path.join(BIN_DIR, "osprof-collector"), "--no-such-flag"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("osprof-collector: error: unrecognized "
                             "arguments: --no-such-flag\n")
