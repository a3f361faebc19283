"""osprof-api's web UI in real headless Chromium (selenium and Debian's
chromedriver), over a store the real collector filled from real
osprofiler senders, and over a 10,000-span trace; its JSON API and
security headers over HTTP."""

import datetime
import json
import threading
from wsgiref import simple_server

import fixtures
from keystonemiddleware import fixture as keystone_fixture
import pytest
import requests
from selenium.common import exceptions
from selenium.webdriver.common.by import By
from selenium.webdriver.common import keys
from selenium.webdriver.support import select
import webob

from osprof_collector.api import app
from osprof_collector import analysis
from osprof_collector import events
from osprof_collector import query
from osprof_collector.render import exports
from osprof_collector import spans as spans_module
from osprof_collector import storage
from tests.functional import api_server
from tests.functional import browser
from tests.functional import producer
from tests import payloads

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(ApiServer, {base_id: stored spans}, FilledStore) over a SQLite
    store the collector filled, hostile payloads included."""
    workdir = tmp_path_factory.mktemp("ui")
    filled = api_server.FilledStore("sqlite", workdir)
    api = None
    try:
        filled.fill(("nova", "api", "hostile", 1))
        store = storage.get_driver(filled.url)
        stored = {t["base_id"]: store.get_spans(t["base_id"])
                  for t in filled.traces}
        store.close()
        api = api_server.ApiServer(workdir, filled.url).start()
        yield api, stored, filled
    finally:
        if api is not None:
            api.stop()
        filled.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    driver = browser.chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def nested_traces(filled):
    """base_ids of the traces of the producers' nested scenario."""
    return [t["base_id"] for t in filled.traces
            if [s["name"] for s in t["spans"]] == [
                "wsgi", "db", "rpc", "db", "db", "db"]]


def hostile_trace(filled):
    [base_id] = [t["base_id"] for t in filled.traces
                 if any(s["name"].startswith("db0-") for s in t["spans"])]
    return base_id


def service_of(span):
    return exports.service_name(span.project, span.service)


def tree_order(base_id, spans):
    return [node["trace_id"] for node, _ in
            query.walk(query.build_report(base_id, spans))]


# -- HTTP ---------------------------------------------------------------------

def test_page_assets_and_json_carry_the_security_headers(served):
    api, stored, _ = served
    base_id = next(iter(stored))
    for path, content_type in (
            ("/", "text/html"), ("/ui/app.js", "text/javascript"),
            ("/ui/app.css", "text/css"),
            ("/api/osprof/traces", "application/json"),
            (f"/api/osprof/traces/{base_id}", "application/json"),
            (f"/api/osprof/traces/{base_id}/analysis", "application/json"),
            ("/api/osprof/traces/nope", "application/json")):
        response = api.get(path)
        assert response.headers["Content-Type"].split(";")[0] == \
            content_type, path
        policy = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["connect-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in policy
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
    page = api.get("/").text
    assert "<script>" not in page and "<style>" not in page  # none inline
    assert '<script src="ui/app.js" defer></script>' in page
    assert "://" not in page  # nothing from elsewhere


def test_json_api_errors(served):
    api, stored, _ = served
    base_id, unknown = next(iter(stored)), payloads.new_id()
    other_base_id, other_spans = list(stored.items())[1]
    elsewhere = other_spans[0].trace_id  # a span of another trace
    for path, given, status, message in [
            ("/api/osprof/traces/not-a-uuid", {}, 400, "invalid trace id"),
            (f"/api/osprof/traces/{unknown}", {}, 404,
             f"trace {unknown} not found"),
            (f"/api/osprof/traces/{unknown}/analysis", {}, 404,
             f"trace {unknown} not found"),
            ("/api/osprof/traces/1234/analysis", {}, 400,
             "invalid trace id '1234'"),
            (f"/api/osprof/traces/{base_id}/spans/x", {}, 400,
             "invalid span id 'x'"),
            (f"/api/osprof/traces/{base_id}/spans/{unknown}", {}, 404,
             f"trace {base_id} has no span {unknown}"),
            (f"/api/osprof/traces/{base_id}/spans/{elsewhere}", {}, 404,
             f"trace {base_id} has no span {elsewhere}"),
            (f"/api/osprof/traces/{unknown}/spans/{elsewhere}", {}, 404,
             f"trace {unknown} not found"),
            ("/api/osprof/compare", {"a": base_id}, 400, "b is required"),
            ("/api/osprof/compare", {"a": base_id, "b": unknown}, 404,
             f"trace {unknown} not found"),
            ("/api/osprof/traces", {"since": "yesterday"}, 400,
             "since: invalid time 'yesterday'"),
            ("/api/osprof/traces", {"since": "1h", "until": "2h"}, 400,
             "until is before since"),
            ("/api/osprof/traces", {"min_duration_ms": "-1"}, 400,
             "min_duration_ms must be a number of milliseconds"),
            ("/api/osprof/traces", {"min_duration_ms": "nan"}, 400,
             "min_duration_ms must be a number of milliseconds"),
            ("/api/osprof/traces", {"errors": "yes"}, 400,
             "errors must be 1 or 0"),
            ("/api/osprof/traces", {"limit": "0"}, 400,
             "limit must be from 1 to 1000"),
            ("/api/osprof/traces", {"service": "x" * 300}, 400,
             "service is longer than 255 characters")]:
        response = api.get(path, **given)
        assert response.status_code == status, (path, given, response.text)
        assert response.headers["Content-Type"] == "application/json"
        assert message in response.json()["error"], response.text
    for path in ("/", "/api/osprof/traces"):
        refused = requests.post(api.url + path, timeout=60)
        assert refused.status_code == 405
        assert refused.json()["error"] == "POST is not allowed here"


def test_json_api_answers_as_the_query_modules(served):
    api, stored, _ = served
    for base_id, spans in stored.items():
        document = api.get(f"/api/osprof/traces/{base_id}").json()
        assert [r["trace_id"] for r in document["rows"]] == \
            tree_order(base_id, spans)
        by_id = {s.trace_id: s for s in spans}
        for row in document["rows"]:
            span = by_id[row["trace_id"]]
            assert row["open"] == (span.finished_at is None)
            assert row["start_missing"] == (span.started_at is None)
            assert (row["error"] is None) == (span.error is None)
            assert row["sql"] == ("db" in (span.start_payload or {}).get(
                "info", {}))
        expected = analysis.analyze(base_id, spans)
        found = api.get(f"/api/osprof/traces/{base_id}/analysis").json()
        assert found["critical_ms"] == {
            e["trace_id"]: e["self_ms"]
            for e in expected["critical_path"]["spans"]}
        assert found["self_ms"] == {e["trace_id"]: e["self_ms"]
                                    for e in expected["self_time"]["spans"]}
        assert found["sql"]["statements"] == \
            expected["sql"]["statements"][:20]
    a, b = list(stored)[:2]
    assert api.get("/api/osprof/compare", a=a, b=b).json() == json.loads(
        json.dumps(analysis.compare(a, stored[a], b, stored[b])))

    # time range and minimum duration
    found = api.get("/api/osprof/traces", since="1h").json()
    assert {t["base_id"] for t in found} == set(stored)
    first = min(datetime.datetime.fromisoformat(t["started_at"])
                for t in found)
    before = (first - datetime.timedelta(seconds=1)).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")
    assert api.get("/api/osprof/traces", until=before).json() == []
    durations = {t["base_id"]: t["duration_ms"] for t in found}
    threshold = sorted(durations.values())[len(durations) // 2] - 0.001
    longer = api.get("/api/osprof/traces",
                     min_duration_ms=str(threshold)).json()
    assert {t["base_id"] for t in longer} == {
        base_id for base_id, ms in durations.items() if ms >= threshold}
    assert 0 < len(longer) < len(found)


def test_with_keystone_the_page_is_public_its_json_is_not(served, tmp_path):
    api, stored, filled = served
    base_id = next(iter(stored))
    with fixtures.Fixture() as stack:
        application = keystone_app(stack, filled.url, tmp_path)

        def call(path, token=None):
            request = webob.Request.blank(path)
            if token:
                request.headers["X-Auth-Token"] = token
            return request.get_response(application)

        for asset in ("/", "/ui/app.js", "/ui/app.css"):
            assert call(asset).status_int == 200
        for path in ("/api/osprof/services", "/api/osprof/traces",
                     f"/api/osprof/traces/{base_id}",
                     f"/api/osprof/traces/{base_id}/analysis",
                     f"/api/osprof/compare?a={base_id}&b={base_id}"):
            assert call(path).status_int == 401
            refused = call(path, "member-token")
            assert refused.status_int == 403
            assert base_id not in refused.text
            assert call(path, "admin-token").status_int == 200


def keystone_app(stack, store_url, tmp_path):
    """make_app() with auth_strategy = keystone, its tokens faked by
    keystonemiddleware's AuthTokenFixture (for this process only): an
    admin-token and a member-token."""
    path = tmp_path / "api.conf"
    path.write_text(f"[storage]\nconnection = {store_url}\n"
                    "[api]\nauth_strategy = keystone\n"
                    "[keystone_authtoken]\n"
                    "www_authenticate_uri = http://keystone.example/v3\n"
                    "delay_auth_decision = false\n")
    tokens = stack.useFixture(keystone_fixture.AuthTokenFixture())
    tokens.add_token_data(token_id="admin-token", project_id="p1",
                          role_list=["admin"])
    tokens.add_token_data(token_id="member-token", project_id="p2",
                          role_list=["member", "reader"])
    conf = app.prepare(["--config-file", str(path)])
    store = storage.get_driver(store_url)
    stack.addCleanup(store.close)
    return app.make_app(conf, store)


# -- the browser ------------------------------------------------------------

def open_page(driver, api, fragment):
    driver.get(f"{api.url}/{fragment}")


def wait_data(driver, name, value):
    browser.wait(driver, lambda d: browser.body_data(d, name) == value)


def search_in_form(driver, service="", name="", errors=False):
    form = driver.find_element(By.ID, "search-form")
    select.Select(form.find_element(By.ID, "f-service")).select_by_value(
        service)
    field = form.find_element(By.ID, "f-name")
    field.clear()
    field.send_keys(name)
    box = form.find_element(By.ID, "f-errors")
    if box.is_selected() != errors:
        box.click()
    form.find_element(By.ID, "f-submit").click()
    expected = "&".join(part for part in (
        f"service={service}" if service else "",
        f"name={name}" if name else "",
        "errors=1" if errors else "", "limit=20") if part)
    wait_data(driver, "query", expected)
    return {row.get_attribute("data-base-id") for row in
            driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")}


def rows_shown(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#waterfall-rows .row")


def row_of(driver, trace_id):
    return driver.find_element(
        By.CSS_SELECTOR, f'#waterfall-rows .row[data-trace-id="{trace_id}"]')


def open_span(driver, trace_id):
    row_of(driver, trace_id).find_element(By.CSS_SELECTOR, ".name").click()
    wait_data(driver, "details", trace_id)
    return driver.find_element(By.ID, "details")


def assert_nothing_ran(driver):
    assert browser.body_data(driver, "pwned") is None
    with pytest.raises(exceptions.NoAlertPresentException):
        driver.switch_to.alert
    counts = driver.execute_script(
        "return [document.scripts.length, document.images.length, "
        "Array.from(document.querySelectorAll('a[href]'), "
        "a => a.getAttribute('href'))];")
    assert counts[:2] == [1, 0]  # ui/app.js only, and no <img> made
    assert all(href.startswith("#/") for href in counts[2]), counts[2]
    # nothing even tried to run inline script (CSP would report it)
    assert not [m for m in browser.console(driver)
                if "Content Security Policy" in m]


def test_search_form_finds_what_the_store_holds(served, chromium):
    api, stored, filled = served
    open_page(chromium, api, "")
    wait_data(chromium, "view", "search")
    browser.wait(chromium, lambda d: browser.body_data(d, "query") is not None)
    services = [option.get_attribute("value") for option in
                chromium.find_elements(By.CSS_SELECTOR, "#f-service option")]
    assert services == ["", *sorted({service_of(s) for spans in
                                     stored.values() for s in spans})]

    def having(test):
        return {base_id for base_id, spans in stored.items()
                if any(test(span) for span in spans)}

    assert search_in_form(chromium) == set(stored)
    assert search_in_form(chromium, service="nova-api") == having(
        lambda s: service_of(s) == "nova-api")
    assert search_in_form(chromium, name="rpc") == having(
        lambda s: s.name == "rpc")
    assert search_in_form(chromium, errors=True) == having(
        lambda s: s.error is not None)
    assert search_in_form(chromium, service="nova-api", errors=True) == {
        hostile_trace(filled)}
    assert search_in_form(chromium, service="cinder-volume",
                          name="rpc") == set()
    assert_nothing_ran(chromium)


def test_open_a_trace_collapse_and_expand_a_span(served, chromium):
    api, stored, filled = served
    base_id = nested_traces(filled)[0]
    open_page(chromium, api, "#/search")
    link = browser.wait(chromium, lambda d: d.find_element(
        By.CSS_SELECTOR, f'#results tr[data-base-id="{base_id}"] '
                         f'a.open-trace'))
    link.click()
    wait_data(chromium, "analysed", base_id)
    order = tree_order(base_id, stored[base_id])
    assert [row.get_attribute("data-trace-id")
            for row in rows_shown(chromium)] == order
    root = row_of(chromium, order[0])
    assert "on-path" in root.get_attribute("class")

    # collapse the root: only it stays; expand it: every span is back
    root.find_element(By.CSS_SELECTOR, ".toggle").click()
    wait_data(chromium, "visibleRows", "1")
    assert len(rows_shown(chromium)) == 1
    row_of(chromium, order[0]).find_element(By.CSS_SELECTOR,
                                            ".toggle").click()
    wait_data(chromium, "visibleRows", str(len(order)))

    # open a db span: its SQL statement and payloads are shown
    by_id = {s.trace_id: s for s in stored[base_id]}
    db = next(t for t in order if by_id[t].name == "db")
    details = open_span(chromium, db)
    assert details.find_element(By.ID, "details-statement").text == \
        by_id[db].start_payload["info"]["db"]["statement"]
    assert '"db-start"' in details.find_element(By.ID,
                                                "details-payloads").text
    assert db in details.find_element(By.ID, "details-fields").text


def test_errors_and_open_spans_are_marked(served, chromium):
    api, stored, filled = served
    for scenario, name, mark, bar in (
            ("raises", "compute-fail",
             "ERROR ValueError: no valid host was found", "error"),
            ("unfinished", "never-stops", "OPEN", "open")):
        [base_id] = [t["base_id"] for t in filled.traces
                     if any(s["name"] == name for s in t["spans"])]
        open_page(chromium, api, f"#/trace/{base_id}")
        wait_data(chromium, "analysed", base_id)
        [span] = [s for s in stored[base_id] if s.name == name]
        row = row_of(chromium, span.trace_id)
        assert mark in [m.text for m in
                        row.find_elements(By.CSS_SELECTOR, ".mark")]
        assert bar in row.find_element(By.CSS_SELECTOR, ".bar") \
            .get_attribute("class").split()
        summary = chromium.find_element(By.ID, "trace-summary").text
        assert ("1 with an error" if bar == "error" else "1 open") in summary


def test_hostile_payload_text_is_shown_and_never_runs(served, chromium):
    api, stored, filled = served
    base_id = hostile_trace(filled)
    open_page(chromium, api, f"#/trace/{base_id}")
    wait_data(chromium, "analysed", base_id)
    by_name = {s.name: s for s in stored[base_id]}
    for n, text in enumerate(producer.HOSTILE):
        span = by_name[f"db{n}-{text}"]
        row = row_of(chromium, span.trace_id)
        assert row.find_element(By.CSS_SELECTOR, ".name").text == \
            f"db{n}-{text}"
        details = open_span(chromium, span.trace_id)
        assert details.find_element(By.ID, "details-title").text == \
            f"db{n}-{text}"
        assert details.find_element(By.ID, "details-statement").text == \
            f"SELECT '{text}'"
        assert details.find_element(By.ID, "details-error").text == \
            f"ValueError: {text}"
        assert json.loads(details.find_element(
            By.ID, "details-params").text) == {text: text}
        shown = json.loads(details.find_element(
            By.ID, "details-payloads").text)
        assert shown[f"db{n}-{text}-start"]["info"][text] == text
    sql = chromium.find_element(By.ID, "analysis").text
    assert "SELECT ?" in sql
    assert_nothing_ran(chromium)


class QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_with_keystone_the_page_asks_for_a_token(served, chromium, tmp_path):
    api, stored, filled = served
    with fixtures.Fixture() as stack:
        server = simple_server.make_server(
            "127.0.0.1", 0, keystone_app(stack, filled.url, tmp_path),
            handler_class=QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stack.addCleanup(server.server_close)
        stack.addCleanup(server.shutdown)
        chromium.get(f"http://127.0.0.1:{server.server_port}/#/search")
        failed = browser.wait(chromium, lambda d: browser.body_data(
            d, "failed"))
        assert "needs a Keystone token" in failed
        assert chromium.find_element(By.ID, "token-box").is_displayed()
        token = chromium.find_element(By.ID, "token")
        token.send_keys("member-token", keys.Keys.TAB)  # a change event
        failed = browser.wait(chromium, lambda d: browser.body_data(
            d, "failed"))
        assert failed.startswith("403: reading traces needs a token")
        token.clear()
        token.send_keys("admin-token", keys.Keys.TAB)
        wait_data(chromium, "results", str(len(stored)))
        assert browser.body_data(chromium, "failed") is None


def test_compare_two_traces(served, chromium):
    api, stored, filled = served
    a, b = nested_traces(filled)[:2]
    open_page(chromium, api, "#/search?limit=20")
    browser.wait(chromium, lambda d: browser.body_data(d, "query") ==
                 "limit=20")
    button = chromium.find_element(By.ID, "compare-button")
    assert not button.is_enabled()
    for base_id in (a, b):
        chromium.find_element(
            By.CSS_SELECTOR, f'#results tr[data-base-id="{base_id}"] '
                             f'.pick').click()
    assert button.is_enabled()
    button.click()
    expected = analysis.compare(a, stored[a], b, stored[b])
    wait_data(chromium, "compared", str(len(expected["groups"])))
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in chromium.find_elements(
                 By.CSS_SELECTOR, "#compare-table tbody tr")]
    assert [row[:4] for row in cells] == [
        [g["service"], g["name"], str(g["count_a"]), str(g["count_b"])]
        for g in expected["groups"]]
    assert chromium.find_element(By.CSS_SELECTOR, "a.compare-a").text == a
    assert chromium.find_element(By.CSS_SELECTOR, "a.compare-b").text == b


# -- 10,000 spans -----------------------------------------------------------

def big_trace(groups=84, per_group=118):
    """(base_id, payloads, {what: trace_id}) of 10,000 spans: a wsgi root,
    rpc spans under it with db spans under them, and last under the root
    a span that failed, an open one and one whose start was lost."""
    base_id, root = payloads.new_id(), payloads.new_id()
    start = datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
    sent = _call("wsgi", base_id, root, base_id, start, 3000)
    for g in range(groups):
        group = payloads.new_id()
        at = start + datetime.timedelta(milliseconds=30 * g)
        sent += _call("rpc", base_id, group, root, at, 25)
        for n in range(per_group):
            sent += _call("db", base_id, payloads.new_id(), group,
                          at + datetime.timedelta(microseconds=200 * n), 0.1,
                          statement=f"SELECT {n} FROM t")
    last = start + datetime.timedelta(milliseconds=2990)
    failed = _call("db", base_id, payloads.new_id(), root, last, 1)
    failed[1]["info"].update(etype="OperationalError", message="gone")
    unfinished = _call("db", base_id, payloads.new_id(), root, last, 1)[0]
    lost = _call("db", base_id, payloads.new_id(), root, last, 2)[1]
    sent += [*failed, unfinished, lost]
    return base_id, sent, {"error": failed[0]["trace_id"],
                           "open": unfinished["trace_id"],
                           "start_missing": lost["trace_id"]}


def _call(name, base_id, trace_id, parent_id, at, duration_ms,
          statement=None):
    info = {"host": "node-1"}
    if statement:
        info["db"] = {"statement": statement, "params": {}}
    return [{"name": f"{name}-{phase}", "base_id": base_id,
             "trace_id": trace_id, "parent_id": parent_id,
             "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f"),
             "project": "nova", "service": "api", "info": dict(info)}
            for phase, moment in (
                ("start", at),
                ("stop", at + datetime.timedelta(milliseconds=duration_ms)))]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """(ApiServer, base_id, {what: trace_id}) over a SQLite store holding
    one 10,000-span trace, written through the storage driver."""
    workdir = tmp_path_factory.mktemp("big")
    url = f"sqlite:///{workdir}/osprof.db"
    base_id, sent, special = big_trace()
    store = storage.get_driver(url)
    for first in range(0, len(sent), 2000):
        store.write_spans(spans_module.pair(
            events.parse(p) for p in sent[first:first + 2000]))
    assert len(store.get_spans(base_id)) == 10000
    store.close()
    api = api_server.ApiServer(workdir, url).start()
    yield api, base_id, special
    api.stop()


def test_ten_thousand_spans_draw_only_the_rows_in_view(big, chromium):
    api, base_id, special = big
    open_page(chromium, api, f"#/trace/{base_id}")
    wait_data(chromium, "analysed", base_id)
    assert browser.body_data(chromium, "visibleRows") == "10000"
    drawn = len(rows_shown(chromium))
    assert 10 < drawn < 100
    assert "10000 spans" in chromium.find_element(By.ID,
                                                  "trace-summary").text

    # scrolled to the end: the last spans are drawn, with their marks
    chromium.execute_script(
        "const box = document.getElementById('waterfall');"
        "box.scrollTop = box.scrollHeight;")
    browser.wait(chromium, lambda d: d.find_elements(
        By.CSS_SELECTOR, f'.row[data-trace-id="{special["start_missing"]}"]'))
    assert len(rows_shown(chromium)) < 100
    for what, mark in (("error", "ERROR OperationalError: gone"),
                       ("open", "OPEN"), ("start_missing", "START MISSING")):
        row = row_of(chromium, special[what])
        assert mark in [m.text for m in
                        row.find_elements(By.CSS_SELECTOR, ".mark")]
    details = open_span(chromium, special["start_missing"])
    assert "unknown (start missing)" in details.find_element(
        By.ID, "details-fields").text

    # collapsing the root leaves one row; expanding it, 10,000 again
    chromium.execute_script(
        "document.getElementById('waterfall').scrollTop = 0;")
    toggle = browser.wait(chromium, lambda d: d.find_element(
        By.CSS_SELECTOR, '.row[data-index="0"] .toggle'))
    toggle.click()
    wait_data(chromium, "visibleRows", "1")
    row_of(chromium, rows_shown(chromium)[0].get_attribute(
        "data-trace-id")).find_element(By.CSS_SELECTOR, ".toggle").click()
    wait_data(chromium, "visibleRows", "10000")
