"""The HTML report in real headless Chromium (Debian's chromium package)."""

import shutil
import subprocess

from osprof_collector import events
from osprof_collector import query
from osprof_collector import spans
from osprof_collector.render import FORMATS
from tests import payloads

HOSTILE = ["<script>document.body.setAttribute('data-pwned','yes')"
           "</script>",
           "<img src=x onerror=\"document.body.setAttribute('data-pwned',"
           "'yes')\">",
           "</script><script>document.body.setAttribute('data-pwned','yes')"
           "</script>",
           "\u2028'\"-->]]><!--"]


def chromium_dom(path, fragment=""):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian's chromium package is needed (tools/run-tests.sh " \
                   "installs it)"
    result = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         f"--user-data-dir={path.parent / 'chromium-profile'}",
         "--virtual-time-budget=5000", "--dump-dom",
         f"file://{path}{fragment}"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def hostile_trace():
    base_id = payloads.new_id()
    root = payloads.call("wsgi", base_id, base_id, 0, 50)
    raw = list(root)
    for n, text in enumerate(HOSTILE):
        start, stop = payloads.call(f"db{n}-{text}", base_id,
                                    root[0]["trace_id"], n + 1, n + 2,
                                    stop_info={"etype": "Error",
                                               "message": text})
        start["info"]["db"] = {"statement": f"SELECT '{text}'"}
        start["info"][text] = text  # as a key, too
        raw += [start, stop]
    partial = spans.pair(events.parse(p) for p in raw)
    return base_id, query.build_report(base_id, partial), root[0]


def test_page_renders_every_span_and_runs_nothing_from_payloads(tmp_path):
    base_id, report, root_start = hostile_trace()
    page = tmp_path / "trace.html"
    page.write_text(FORMATS["html"](report))
    dom = chromium_dom(page)
    assert f'data-rendered="{len(HOSTILE) + 1}"' in dom
    assert dom.count('class="row"') == len(HOSTILE) + 1
    assert 'data-pwned="yes"' not in dom
    assert "<img src" not in dom.split('id="trace-data"')[0]
    # names are shown as text
    assert "db1-&lt;img src=x onerror=" in dom
    assert f"trace {base_id}: {len(HOSTILE) + 1} spans" in dom


def test_linked_span_shows_its_raw_payload_as_text(tmp_path):
    base_id, report, _root = hostile_trace()
    target = report["children"][0]["children"][0]
    page = tmp_path / "trace.html"
    page.write_text(FORMATS["html"](report))
    dom = chromium_dom(page, f"#span={target['trace_id']}")
    assert 'data-pwned="yes"' not in dom
    payload = dom.split('id="payload">')[1].split("</pre>")[0]
    assert target["trace_id"] in payload
    assert "SELECT '&lt;script&gt;document.body.setAttribute" in payload
    assert '"message": "&lt;script&gt;' in payload


def test_spans_without_a_start_or_a_stop_are_marked(tmp_path):
    base_id = payloads.new_id()
    root = payloads.call("wsgi", base_id, base_id, 0, 50)
    lost_start = payloads.call("db", base_id, root[0]["trace_id"], 10, 20)
    still_open = payloads.call("rpc", base_id, root[0]["trace_id"], 30, 40)
    raw = [*root, lost_start[1], still_open[0]]
    partial = spans.pair(events.parse(p) for p in raw)
    page = tmp_path / "trace.html"
    page.write_text(FORMATS["html"](query.build_report(base_id, partial)))
    dom = chromium_dom(page)
    assert (f"trace {base_id}: 3 spans, 50 ms, service api, 0 errors, "
            f"1 open, 1 start missing, 0 orphans") in dom
    assert dom.count('<span class="mark">START MISSING</span>') == 1
    assert dom.count('<span class="mark">OPEN</span>') == 1
    assert dom.count('class="bar start-missing"') == 1
    assert dom.count('class="bar open"') == 1
