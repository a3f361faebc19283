"""osprof-api as operators start it: its errors, warnings and stop, and
the WSGI application that uwsgi or mod_wsgi load."""

import gc
import os
import signal
import socket
import subprocess

import pytest
import webob

from osprof_collector.api import app
from osprof_collector import storage
from tests.functional import api_server
from tests.functional.conftest import BIN_DIR


def run(*args, timeout=30):
    result = subprocess.run([os.path.join(BIN_DIR, "osprof-api"), *args],
                            capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout, result.stderr


def config(tmp_path, text):
    path = tmp_path / "api.conf"
    path.write_text(text)
    return str(path)


def one_line(text):
    assert text.count("\n") == 1 and "Traceback" not in text, text
    return text


def collector_made(url):
    """An empty store, made as the collector makes it."""
    storage.get_driver(url).close()
    return url


def test_bad_flag_and_missing_config_file_exit_2(tmp_path):
    code, out, err = run("--bogus")
    assert code == 2 and out == ""
    assert "unrecognized arguments: --bogus" in one_line(err)
    code, out, err = run("--config-file", str(tmp_path / "none.conf"))
    assert code == 2 and out == ""
    assert "none.conf" in one_line(err)


def test_unreadable_option_values_exit_2(tmp_path):
    for section in ("[api]\nport = http\n", "[api]\nport = 70000\n",
                    "[api]\nauth_strategy = open\n",
                    "[api]\nhost = not a host!\n"):
        code, out, err = run("--config-file", config(tmp_path, section))
        assert code == 2, section
        assert one_line(err).startswith("osprof-api: "), err


def test_unknown_store_scheme_exits_2(tmp_path):
    code, _, err = run("--config-file", config(
        tmp_path, "[storage]\nconnection = redis://u:secret@h/0\n"))
    assert code == 2
    assert "no storage driver for scheme 'redis'" in one_line(err)
    assert "secret" not in err


def test_unreachable_or_missing_store_is_one_line(tmp_path):
    for url in ("postgresql+psycopg2://osprof:secret@127.0.0.1:1/osprof",
                f"sqlite:///{tmp_path}/no/such/dir/osprof.db",
                f"sqlite:///{tmp_path}/typo.db"):
        code, out, err = run("--config-file", config(
            tmp_path, f"[storage]\nconnection = {url}\n"))
        assert code == 1, err
        assert one_line(err).startswith("osprof-api: ") and out == ""
        assert "secret" not in err
    assert "no osprof-collector store at sqlite:///" in err
    assert not (tmp_path / "typo.db").exists()  # osprof-api made none


def test_api_connection_overrides_the_storage_one(tmp_path):
    good = collector_made(f"sqlite:///{tmp_path}/osprof.db")
    server = api_server.ApiServer(tmp_path, "redis://nowhere/0",
                                  connection=good).start()
    try:
        assert server.get("/api/v2/services").json() == []
        assert "redis" not in server.log()
    finally:
        assert server.stop() == 0


def test_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        collector_made(f"sqlite:///{tmp_path}/o.db")
        code, _, err = run("--config-file", config(
            tmp_path, f"[storage]\nconnection = sqlite:///{tmp_path}/o.db\n"
                      f"[api]\nport = {port}\n"))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in one_line(err)


def test_noauth_beyond_the_loopback_warns(tmp_path):
    url = f"sqlite:///{tmp_path}/osprof.db"
    local = api_server.ApiServer(tmp_path, url).start()
    assert local.stop() == 0
    assert "WARNING" not in local.log()
    wide = api_server.ApiServer(tmp_path, url, host="0.0.0.0").start()
    try:
        assert "WARNING" in wide.log()
        assert "Listening on 0.0.0.0 with auth_strategy = noauth" in \
            wide.log()
    finally:
        wide.process.send_signal(signal.SIGTERM)
        assert wide.stop() == 0


@pytest.fixture
def own_gc():
    """The application settles this process's cycle collector as it
    would a server's: put back afterwards."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_wsgi_application_reads_its_config_file(tmp_path, monkeypatch,
                                                own_gc):
    collector_made(f"sqlite:///{tmp_path}/o.db")
    path = config(tmp_path,
                  f"[storage]\nconnection = sqlite:///{tmp_path}/o.db\n")
    monkeypatch.setenv(app.CONFIG_ENV, path)
    application = app._FromConfigFile()
    gc.unfreeze()
    response = webob.Request.blank("/api/v2/services").get_response(
        application)
    assert (response.status_int, response.json) == (200, [])
    # as under the osprof-api command: start-up objects frozen, rarer
    # collections
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == 25_000
    response = webob.Request.blank("/api/v2/traces?limit=-1").get_response(
        application)
    assert response.status_int == 400
    assert "limit" in response.json["error"]


def test_wsgi_application_takes_the_config_file_from_the_request(
        tmp_path, own_gc):
    collector_made(f"sqlite:///{tmp_path}/o.db")
    path = config(tmp_path,
                  f"[storage]\nconnection = sqlite:///{tmp_path}/o.db\n")
    application = app._FromConfigFile()  # as mod_wsgi's SetEnv passes it
    request = webob.Request.blank("/api/services",
                                  environ={app.CONFIG_ENV: path})
    response = request.get_response(application)
    assert (response.status_int, response.json["data"]) == (200, [])
