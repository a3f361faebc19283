"""osprof-trace analyze and compare through the installed entry point."""

import json

from osprof_collector import storage
from tests import payloads
from tests import traced_cloud
from tests.functional import test_trace_cli as trace_cli
from tests.unit.test_analysis import Trace
from tests.unit.test_analysis import two_requests
from tests.unit.test_query import loop_trace
from tests.unit.test_query import many_spans
from tests.unit.test_query import ten_thousand_spans

cli = trace_cli.cli  # the show tests' fixture: SQLite, PostgreSQL, mongomock
Runner = trace_cli.Runner
write = trace_cli.write


def known_trace(store):
    """A request of known timings; node-2's clock is 20 ms behind."""
    t = Trace()
    root = t.call("wsgi", 0, 100, info={"request": {"path": "/servers"}})
    for n in range(5):
        t.call("db", 10 + 2 * n, 11 + 2 * n, root, info={"db": {
            "statement": f"SELECT * FROM volumes WHERE id = {n}",
            "params": {}}})
    http = t.call("http", 30, 60, root, info={"requests": {
        "method": "GET", "hostname": "volume.example", "port": 8776}})
    t.call("wsgi", 31 - 20, 59 - 20, http, info={"request": {"path": "/v3"}},
           service="volume", host="node-2")
    t.call("rpc", 70, 95, root)
    write(store, t.raw)
    return t


def test_analyze_text(cli):
    run, store = cli
    t = known_trace(store)
    code, out, err = run("analyze", t.base_id)
    assert (code, err) == (0, "")
    sections = out.split("\n\n")
    assert sections[0] == (f"trace {t.base_id}: 9 spans, 100.000 ms, "
                           f"9 timed, 0 untimed, 0 orphans")
    # The volume span, 20 ms early by node-1's clock, is clipped to the
    # part that overlaps its client.
    assert sections[1].splitlines() == [
        "Critical path: 9 spans, 100.000 ms",
        "  self ms     %  span                     start ms  duration ms",
        "   40.000  40.0  wsgi  api@node-1           +0.000      100.000",
        "    1.000   1.0    db  api@node-1          +10.000        1.000",
        "    1.000   1.0    db  api@node-1          +12.000        1.000",
        "    1.000   1.0    db  api@node-1          +14.000        1.000",
        "    1.000   1.0    db  api@node-1          +16.000        1.000",
        "    1.000   1.0    db  api@node-1          +18.000        1.000",
        "   21.000  21.0    http  api@node-1        +30.000       30.000",
        "    9.000   9.0      wsgi  volume@node-2   +11.000       28.000",
        "   25.000  25.0    rpc  api@node-1         +70.000       25.000"]
    assert ("      5     5.000  wsgi  api@node-1  "
            "SELECT * FROM volumes WHERE id = ?") in out
    assert "      2  wsgi  api@node-1  volume@node-2 x1, rpc x1" in out
    assert "  node-1       node-2          1        1    +19.000" in out
    assert "estimated clock offsets: node-2 +19.000 ms" in out
    code, out, _ = run("analyze", t.base_id, "--limit", "2")
    assert "  (7 more spans on the path, 35.000 ms)" in out


def test_analyze_json_and_adjusted_skew(cli):
    run, store = cli
    t = known_trace(store)
    code, out, err = run("analyze", t.base_id, "-f", "json",
                         "--n-plus-one", "6")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["base_id"] == t.base_id and result["span_count"] == 9
    assert result["sql"]["n_plus_one"] == []  # 5 < 6
    assert result["sql"]["statements"][0]["count"] == 5
    assert result["clock_skew"]["host_offsets_ms"] == {"node-2": 19.0}
    assert "applied_offsets_ms" not in result
    code, out, _ = run("analyze", t.base_id, "--format", "json",
                       "--adjust-skew")
    adjusted = json.loads(out)
    assert adjusted["applied_offsets_ms"] == {"node-2": 19.0}
    assert adjusted["clock_skew"]["outside"] == []
    volume = [e for e in adjusted["critical_path"]["spans"]
              if e["service"] == "volume"]
    assert [(e["started_ms"], e["self_ms"]) for e in volume] == \
        [(30.0, 28.0)]
    code, out, _ = run("analyze", t.base_id, "--adjust-skew")
    assert out.endswith("(clock skew adjusted: node-2 +19.000 ms)\n")


def test_show_tree_with_adjusted_skew(cli):
    run, store = cli
    t = known_trace(store)
    code, out, _ = run("show", t.base_id)
    assert "   │  └─ wsgi  volume@node-2  +11 ms  28 ms" in out
    code, out, err = run("show", t.base_id, "--adjust-skew")
    assert (code, err) == (0, "")
    assert "   │  └─ wsgi  volume@node-2  +30 ms  28 ms" in out
    assert out.endswith("(clock skew adjusted: node-2 +19.000 ms)\n")
    code, out, _ = run("show", t.base_id, "--adjust-skew", "--format",
                       "json")
    report = json.loads(out)
    [http] = [c for c in report["children"][0]["children"]
              if c["info"]["name"] == "http"]
    assert http["children"][0]["info"]["started"] == 30


def test_compare_text_and_json(cli):
    run, store = cli
    a, b, _ = two_requests()
    write(store, a.raw + b.raw)
    code, out, err = run("compare", a.base_id, b.base_id)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"A: trace {a.base_id}: 5 spans, 100.000 ms",
        f"B: trace {b.base_id}: 7 spans, 150.000 ms",
        "B - A: +50.000 ms",
        "",
        "service  name  count A  count B  total A ms  total B ms  "
        "mean A ms  mean B ms  delta ms  ratio",
        "api      wsgi        1        1     100.000     150.000    "
        "100.000    150.000   +50.000   1.50",
        "api      rpc         1        0      30.000       0.000     "
        "30.000          -   -30.000   0.00  only in A",
        "api      db          3        5      30.000      50.000     "
        "10.000     10.000   +20.000   1.67",
        "api      http        0        1       0.000      20.000          "
        "-     20.000   +20.000      -  only in B"]
    code, out, err = run("compare", a.base_id, b.base_id, "-f", "json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert [(g["name"], g["delta_ms"], g["only_in"])
            for g in result["groups"]] == [
        ("wsgi", 50.0, None), ("rpc", -30.0, "a"), ("db", 20.0, None),
        ("http", 20.0, "b")]
    assert (result["a"]["base_id"], result["b"]["base_id"]) == \
        (a.base_id, b.base_id)


def test_errors_are_one_line(cli):
    run, store = cli
    t = known_trace(store)
    unknown = payloads.new_id()
    for args in (["analyze", unknown], ["compare", unknown, t.base_id],
                 ["compare", t.base_id, unknown]):
        assert run(*args) == (1, "", f"trace {unknown} not found\n")
    for args in (["analyze", "nope"], ["compare", "nope", t.base_id],
                 ["compare", unknown, "' OR 1=1 --"]):
        code, out, err = run(*args)
        bad = args[1] if args[1] != unknown else args[2]
        assert (code, out) == (1, "")
        # refused before any query: not "not found" for the unknown id
        assert err.startswith(f"invalid trace id {bad!r}")
        assert err.count("\n") == 1
    for args in (["analyze", t.base_id, "-f", "table"],
                 ["analyze", t.base_id, "--n-plus-one", "0"],
                 ["analyze", t.base_id, "--limit", "many"],
                 ["compare", t.base_id], ["compare", t.base_id, t.base_id,
                                          "-f", "yaml"]):
        code, out, err = run(*args)
        assert code == 2 and out == "" and err.count("\n") == 1, args


def test_real_osprofiler_trace(cli):
    run, store = cli
    base_id, raw = traced_cloud.capture(instances=7, compute_skew_ms=-30)
    write(store, raw)
    code, out, err = run("analyze", base_id, "-f", "json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    [suspect] = result["sql"]["n_plus_one"]
    assert suspect["count"] == 7
    assert suspect["statement"] == \
        "SELECT id FROM volumes WHERE instance_id = ?"
    assert result["fan_out"]["per_parent"][0]["remotes"] == [
        {"remote": "volume@node-2", "calls": 2},
        {"remote": "compute@node-3", "calls": 1}]
    assert [p["child_host"] for p in result["clock_skew"]["pairs"]
            if p["outside"]] == ["node-3"]
    code, out, _ = run("analyze", base_id)
    assert code == 0
    assert "N+1 suspects" in out and "volume@node-2 x2" in out


def test_loop_spans_and_odd_info_are_analysed(cli):
    run, store = cli
    base_id, raw, _ids = loop_trace()
    raw[0]["info"].update(function="nova.rpcapi.x", db="SELECT 1",
                          request=["GET"], requests="x.example")
    write(store, raw)
    code, out, err = run("analyze", base_id)
    assert (code, err) == (0, "")
    assert out.startswith(f"trace {base_id}: 5 spans, 30.000 ms, 5 timed, "
                          f"0 untimed, 2 orphans\n")
    code, out, err = run("show", base_id)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].endswith("0 open, 0 start missing, 2 orphans")


def test_ten_thousand_span_trace(sqlite_url):
    store = storage.get_driver(sqlite_url)
    base_id, raw = ten_thousand_spans()
    # the same shape, ten times smaller, every db call 1 ms longer
    small_id, small = many_spans(1000, db_ms=2.5)
    write(store, raw + small)
    store.close()
    run = Runner(url=sqlite_url)
    code, out, err = run("analyze", base_id)
    assert (code, err) == (0, "")
    assert out.startswith(f"trace {base_id}: 10000 spans, 20000.000 ms")
    code, out, _ = run("compare", base_id, small_id, "-f", "json")
    assert code == 0
    result = json.loads(out)
    assert result["delta_ms"] == 2000.0 - 20000.0
    # db: 6666 calls of 1.5 ms, then 666 of 2.5 ms
    assert [(g["name"], g["count_a"], g["count_b"], g["delta_ms"])
            for g in result["groups"]] == [
        ("wsgi", 1, 1, -18000.0), ("db", 6666, 666, -8334.0),
        ("rpc-call", 3333, 333, -4500.0)]
