"""auth_strategy = keystone: tokens checked by keystonemiddleware's
auth_token, faked by its own AuthTokenFixture; a store the real
collector filled behind it."""

import os
import subprocess

import fixtures
from keystonemiddleware import fixture as keystone_fixture
import pytest
import webob

from osprof_collector.api import app
from osprof_collector import storage
from tests.functional import conftest
from tests.functional import api_server


@pytest.fixture
def protected(tmp_path, rabbit_url, sqlite_url, collector_factory):
    collector = collector_factory(rabbit_url, sqlite_url).start()
    traces = conftest.produce(rabbit_url, ("nova", "api", "nested", 1))
    conftest.wait_until_stored(sqlite_url, traces)
    assert collector.stop() == 0
    path = tmp_path / "api.conf"
    path.write_text(f"[storage]\nconnection = {sqlite_url}\n"
                    "[api]\nauth_strategy = keystone\n"
                    "[keystone_authtoken]\n"
                    "www_authenticate_uri = http://keystone.example/v3\n"
                    "delay_auth_decision = false\n")
    tokens = keystone_fixture.AuthTokenFixture()
    with fixtures.Fixture() as holder:
        holder.useFixture(tokens)
        conf = app.prepare(["--config-file", str(path)])
        store = storage.get_driver(sqlite_url)
        yield app.make_app(conf, store), tokens, traces[0]["base_id"]
        store.close()


def call(application, path, token=None):
    request = webob.Request.blank(path)
    if token:
        request.headers["X-Auth-Token"] = token
    return request.get_response(application)


def test_admin_tokens_read_and_others_are_refused(protected):
    application, tokens, base_id = protected
    admin, member = "admin-token", "member-token"
    tokens.add_token_data(token_id=admin, project_id="p1",
                          role_list=["admin"])
    tokens.add_token_data(token_id=member, project_id="p2",
                          role_list=["member", "reader"])
    trace_hex = base_id.replace("-", "")

    response = call(application, f"/api/v2/trace/{trace_hex}", admin)
    assert response.status_int == 200
    assert {span["traceId"] for span in response.json} == {trace_hex}
    assert call(application, "/api/services", admin).json["data"] == [
        "nova-api"]

    for path in (f"/api/v2/trace/{trace_hex}", "/api/v2/services",
                 "/api/traces?service=nova-api"):
        refused = call(application, path, member)
        assert refused.status_int == 403
        assert "admin" in refused.json["error"]
        assert trace_hex not in refused.text
        for token in (None, "not-a-token"):
            unauthenticated = call(application, path, token)
            assert unauthenticated.status_int == 401
            assert trace_hex not in unauthenticated.text


def test_keystone_needs_no_loopback_warning(tmp_path):
    url = f"sqlite:///{tmp_path}/osprof.db"
    server = api_server.ApiServer(
        tmp_path, url, host="0.0.0.0", auth_strategy="keystone",
        sections={"keystone_authtoken": {
            "www_authenticate_uri": "http://keystone.example/v3"}}).start()
    try:
        assert "noauth" not in server.log()
        unauthenticated = server.get("/api/v2/services")
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["WWW-Authenticate"] == \
            'Keystone uri="http://keystone.example/v3"'
    finally:
        assert server.stop() == 0


def test_keystone_without_its_uri_exits_2(tmp_path):
    storage.get_driver(f"sqlite:///{tmp_path}/o.db").close()  # a store
    path = tmp_path / "api.conf"
    path.write_text(f"[storage]\nconnection = sqlite:///{tmp_path}/o.db\n"
                    "[api]\nauth_strategy = keystone\n")
    result = subprocess.run(
        [os.path.join(conftest.BIN_DIR, "osprof-api"), "--config-file",
         str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (
        "osprof-api: auth_strategy = keystone needs [keystone_authtoken] "
        "www_authenticate_uri\n")


def test_metrics_need_no_token_and_hold_no_payload(protected):
    application, _tokens, _base_id = protected
    assert call(application, "/api/v2/services").status_int == 401
    response = call(application, "/metrics")  # as Prometheus scrapes
    assert response.status_int == 200
    assert "osprof_collector_received_total" in response.text
    assert "SELECT" not in response.text  # statements stay in the spans
