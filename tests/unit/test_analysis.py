import datetime
import json

import pytest

from osprof_collector import analysis
from osprof_collector import events
from osprof_collector import query
from osprof_collector import spans
from osprof_collector.render import analysis as render
from tests import payloads
from tests import traced_cloud
from tests.unit.test_query import assert_not_quadratic
from tests.unit.test_query import loop_trace
from tests.unit.test_query import many_spans
from tests.unit.test_query import parsed
from tests.unit.test_query import ten_thousand_spans


class Trace:
    """A hand-built trace: calls at known milliseconds after EPOCH."""

    def __init__(self):
        self.base_id = payloads.new_id()
        self.raw = []

    def call(self, name, start, stop, parent=None, info=None,
             stop_info=None, **labels):
        trace_id = payloads.new_id()
        parent = parent or self.base_id
        if start is not None:
            self.raw.append(payloads.event(name, "start", self.base_id,
                                           trace_id, parent, start,
                                           info=info, **labels))
        if stop is not None:
            self.raw.append(payloads.event(name, "stop", self.base_id,
                                           trace_id, parent, stop,
                                           info=stop_info, **labels))
        return trace_id

    def spans(self):
        return spans.pair(events.parse(p) for p in self.raw)

    def analyze(self, **options):
        return analysis.analyze(self.base_id, self.spans(), **options)


def path_of(result):
    return [(e["name"], e["self_ms"], e["percent"])
            for e in result["critical_path"]["spans"]]


def test_critical_path_follows_the_last_finishing_child():
    t = Trace()
    root = t.call("wsgi", 0, 100)
    t.call("a", 0, 30, root)
    b = t.call("b", 10, 60, root)  # overlaps a
    t.call("c", 20, 50, root)  # runs in parallel with b, ends first
    t.call("b1", 15, 55, b)
    t.call("d", 70, 90, root)
    result = t.analyze()
    # wsgi: 0-10 (nothing ends before b starts), 60-70 and 90-100
    assert path_of(result) == [("wsgi", 30.0, 30.0), ("b", 10.0, 10.0),
                               ("b1", 40.0, 40.0), ("d", 20.0, 20.0)]
    assert result["critical_path"]["duration_ms"] == 100.0
    assert result["critical_path"]["uncovered_ms"] == 0.0
    assert [e["depth"] for e in result["critical_path"]["spans"]] == \
        [0, 1, 2, 1]


def test_critical_path_clips_children_and_counts_gaps_between_roots():
    t = Trace()
    first = t.call("wsgi", 0, 40)
    t.call("late", 30, 60, first)  # ends after its parent: clipped at 40
    second = t.call("wsgi", 50, 80)
    for _ in range(3):  # zero-length children do not stall the walk
        t.call("noop", 80, 80, second)
    result = t.analyze()
    assert path_of(result) == [("wsgi", 30.0, 37.5), ("late", 10.0, 12.5),
                               ("wsgi", 30.0, 37.5), ("noop", 0.0, 0.0),
                               ("noop", 0.0, 0.0), ("noop", 0.0, 0.0)]
    assert result["critical_path"]["uncovered_ms"] == 10.0
    assert result["duration_ms"] == 80.0


def test_self_time_subtracts_the_union_of_children_inside_the_span():
    t = Trace()
    parent = t.call("rpc", 0, 100)
    t.call("db", 10, 40, parent)
    t.call("db", 30, 60, parent)  # overlaps the first
    t.call("db", 80, 120, parent)  # past the parent's end: clipped
    t.call("db", 150, 160, parent)  # wholly outside: covers nothing
    other = t.call("rpc", 200, 210)
    t.call("db", 200, 210, other)  # covers all of its parent
    result = t.analyze()
    by_id = {s["trace_id"]: s for s in result["self_time"]["spans"]}
    assert by_id[parent]["self_ms"] == 30.0  # 100 - (10..60) - (80..100)
    assert by_id[other]["self_ms"] == 0.0
    groups = [(g["name"], g["count"], g["total_ms"], g["self_ms"])
              for g in result["self_time"]["groups"]]
    assert groups == [("db", 5, 120.0, 120.0), ("rpc", 2, 110.0, 30.0)]
    selfs = [s["self_ms"] for s in result["self_time"]["spans"]]
    assert selfs == sorted(selfs, reverse=True)


@pytest.mark.parametrize("statement, normal", [
    ("SELECT * FROM t WHERE a = 'x''y' AND b = 42",
     "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("SELECT  *\n  FROM t\tWHERE id IN (1, 2,3)",
     "SELECT * FROM t WHERE id IN (?...)"),
    ("SELECT id FROM t WHERE id IN (%(id_1_1)s, %(id_1_2)s)",
     "SELECT id FROM t WHERE id IN (?...)"),
    ("select id from t where id in ( ? )",
     "select id from t where id IN (?...)"),
    ("SELECT uuid FROM instances WHERE uuid = %(uuid_1)s LIMIT %(param_1)s",
     "SELECT uuid FROM instances WHERE uuid = ? LIMIT ?"),
    ("UPDATE t SET x = :x, y = %s WHERE id = $1 AND z = ?",
     "UPDATE t SET x = ?, y = ? WHERE id = ? AND z = ?"),
    ("SELECT '12'::int, x::text FROM t", "SELECT ?::int, x::text FROM t"),
    ("SELECT col1, t2.c3 FROM table2 t2", "SELECT col1, t2.c3 FROM table2 t2"),
    ("SELECT * FROM t WHERE x > 1.5e3 AND y < -7",
     "SELECT * FROM t WHERE x > ? AND y < -?"),
])
def test_sql_normalisation(statement, normal):
    assert analysis.normalise_sql(statement) == normal


def test_repeated_sql_and_n_plus_one_under_one_parent():
    t = Trace()
    loop = t.call("wsgi", 0, 100)
    other = t.call("rpc", 100, 200)
    for n in range(6):
        t.call("db", 10 + n, 11 + n, loop, info={"db": {
            "statement": f"SELECT * FROM volumes WHERE id = {n}",
            "params": {}}})
    for n in range(4):
        t.call("db", 110 + n, 112 + n, other, info={"db": {
            "statement": "SELECT * FROM volumes WHERE id = %(id)s",
            "params": {"id": n % 2}}})
    t.call("db", 50, 53, loop, info={"db": {"statement": "SELECT 1"}})
    t.call("db", 60, 61, loop)  # no statement recorded: not SQL
    result = t.analyze()
    statements = result["sql"]["statements"]
    assert [(s["statement"], s["count"], s["total_ms"], s["parents"],
             s["distinct_params"]) for s in statements] == [
        ("SELECT * FROM volumes WHERE id = ?", 10, 14.0, 2, 3),
        ("SELECT ?", 1, 3.0, 1, 1)]
    assert statements[0]["example"] == "SELECT * FROM volumes WHERE id = 0"
    [suspect] = result["sql"]["n_plus_one"]
    assert (suspect["count"], suspect["total_ms"]) == (6, 6.0)
    assert (suspect["parent"]["trace_id"], suspect["parent"]["name"]) == \
        (loop, "wsgi")
    lower = t.analyze(n_plus_one=4)["sql"]["n_plus_one"]
    assert [(s["parent"]["name"], s["count"]) for s in lower] == \
        [("wsgi", 6), ("rpc", 4)]


def test_fan_out_per_parent_and_per_remote():
    t = Trace()
    root = t.call("wsgi", 0, 100, info={"request": {"path": "/"}})
    volume = t.call("http", 1, 10, root, info={"requests": {
        "method": "GET", "hostname": "volume.example", "port": 8776}})
    t.call("wsgi", 2, 9, volume, info={"request": {"path": "/v3"}},
           service="volume", host="node-2")
    for n in range(2):
        t.call("https", 10 + n, 11 + n, root, info={"requests": {
            "method": "GET", "hostname": "image.example", "port": 443}})
    rpc = t.call("rpc", 20, 40, root)
    server = t.call("rpc", 21, 39, rpc, service="compute", host="node-3")
    t.call("http", 22, 30, server, info={"requests": {
        "hostname": "network.example", "port": 9696}},
        service="compute", host="node-3")
    t.call("conductor-cast", 41, 42, root, info={"function": {
        "name": "nova.conductor.rpcapi.ComputeTaskAPI.build_instances"}})
    placement = t.call("wsgi", 50, 60, root, info={"request": {
        "path": "/p"}}, service="placement", host="node-4")
    # called by placement through a client that is not traced
    t.call("wsgi", 51, 52, placement, info={"request": {"path": "/k"}},
           service="identity", host="node-5")
    t.call("wsgi", 61, 62, root, info={"request": {"path": "/"}})  # local
    t.call("db", 63, 64, root, info={"db": {"statement": "SELECT 1"}})
    fan_out = t.analyze()["fan_out"]
    assert fan_out["calls"] == 8
    top, *others = fan_out["per_parent"]
    assert (top["trace_id"], top["calls"]) == (root, 6)
    # most called first, then in the order of the trace
    assert [(r["remote"], r["calls"]) for r in top["remotes"]] == [
        ("image.example:443", 2), ("volume@node-2", 1), ("compute@node-3", 1),
        ("nova.conductor.rpcapi.ComputeTaskAPI", 1), ("placement@node-4", 1)]
    assert sorted((o["name"], o["calls"], o["remotes"][0]["remote"])
                  for o in others) == [
        ("rpc", 1, "network.example:9696"), ("wsgi", 1, "identity@node-5")]
    assert {o["trace_id"] for o in others} == {server, placement}
    per_remote = {r["remote"]: (r["calls"], r["total_ms"])
                  for r in fan_out["per_remote"]}
    assert per_remote == {
        "image.example:443": (2, 2.0), "volume@node-2": (1, 9.0),
        "compute@node-3": (1, 20.0), "network.example:9696": (1, 8.0),
        "nova.conductor.rpcapi.ComputeTaskAPI": (1, 1.0),
        "placement@node-4": (1, 10.0), "identity@node-5": (1, 1.0)}


def test_json_keeps_the_order_of_remotes():
    t = Trace()
    root = t.call("wsgi", 0, 100)
    t.call("http", 1, 2, root, info={"requests": {"hostname": "z.example"}})
    for n in range(2):
        t.call("http", 3 + n, 4 + n, root, info={"requests": {
            "hostname": "a.example"}})
    result = t.analyze()
    text = render.to_json(result)
    [row] = json.loads(text)["fan_out"]["per_parent"]
    assert row["remotes"] == [{"remote": "a.example", "calls": 2},
                              {"remote": "z.example", "calls": 1}]
    assert render.to_json(t.analyze()) == text  # stable
    assert "3  wsgi  api@node-1  a.example x2, z.example x1" in \
        render.analysis_text(result)


def test_calls_and_queries_of_unknown_parents_keep_their_ids():
    t = Trace()
    lost = payloads.new_id()
    t.call("http", 0, 5, lost, info={"requests": {"hostname": "x.example"}})
    t.call("http", 6, 7, info={"requests": {"hostname": "y.example"}})
    for n in range(5):
        t.call("db", 10 + n, 11 + n, lost, info={"db": {
            "statement": "SELECT 1"}})
    result = t.analyze()
    rows = {r["remotes"][0]["remote"]: r
            for r in result["fan_out"]["per_parent"]}
    assert (rows["x.example"]["trace_id"], rows["x.example"]["name"]) == \
        (lost, None)
    assert rows["y.example"]["trace_id"] == t.base_id
    [suspect] = result["sql"]["n_plus_one"]
    assert (suspect["parent"]["trace_id"], suspect["parent"]["name"]) == \
        (lost, None)
    text = render.analysis_text(result)
    assert f"1  (unknown parent {lost})  x.example x1" in text
    assert "1  (top level)" in text and "y.example x1" in text
    assert f"(unknown parent {lost})  SELECT ?" in text


def test_spans_whose_parents_loop_are_timed_as_orphans():
    base_id, raw, ids = loop_trace()
    partial = spans.pair(events.parse(p) for p in raw)
    result = analysis.analyze(base_id, partial)
    report = query.build_report(base_id, partial)
    assert result["span_count"] == 5
    assert (result["timed_spans"], result["untimed_spans"]) == (5, 0)
    assert result["orphans"] == report["orphans"] == 2
    # a (0-10, detached from the loop) holds b (1-9) which holds c (2-3)
    assert [(e["name"], e["depth"]) for e in
            result["critical_path"]["spans"]] == [
        ("a", 0), ("b", 1), ("c", 2), ("root", 0)]
    assert {s["name"]: s["self_ms"] for s in result["self_time"]["spans"]} \
        == {"a": 2.0, "b": 7.0, "c": 1.0, "root": 10.0, "d": 1.0}
    assert "2 orphans, whose parent is unknown or loops back" in \
        render.analysis_text(result)


def test_info_entries_that_are_not_mappings_are_ignored():
    t = Trace()
    root = t.call("wsgi", 0, 100, info={"request": "GET /servers"})
    t.call("call", 1, 2, root, info={"function": "nova.compute.rpcapi.x"})
    t.call("http", 3, 4, root, info={"requests": ["GET", "x.example"]})
    t.call("db", 5, 6, root, info={"db": "SELECT 1"})
    t.call("db", 7, 8, root, info={"db": {"statement": ["SELECT 1"]}})
    t.call("f", 9, 10, root, info={"function": {"name": 42}})
    t.call("rpc", 11, 12, root, info={"function": ["nova.rpcapi.x"]},
           stop_info={"function": "done"})
    result = t.analyze()
    assert result["timed_spans"] == 7
    assert result["sql"]["statements"] == []
    # only the span named rpc is a remote call, to an unknown API
    assert result["fan_out"]["calls"] == 1
    assert result["fan_out"]["per_remote"][0]["remote"] == "rpc"
    assert "Fan-out: 1 remote call " in render.analysis_text(result)


def skewed_trace():
    """node-2's clock is 40 ms behind node-1's, node-3's 100 ms ahead."""
    t = Trace()
    root = t.call("wsgi", 0, 100)
    client = t.call("rpc", 10, 50, root)
    server = t.call("rpc", 11 - 40, 49 - 40, client, host="node-2")
    t.call("spawn", 12 - 40, 48 - 40, server, host="node-2")
    t.call("plug", 20 + 100, 30 + 100, server, host="node-3")
    t.call("late", 90, 110, root)  # same host: not a clock matter
    return t, server


def test_clock_skew_estimates_the_offsets_of_the_hosts():
    t, server = skewed_trace()
    skew = t.analyze()["clock_skew"]
    pairs = [(p["parent_host"], p["child_host"], p["edges"], p["outside"],
              p["offset_ms"], p["consistent"]) for p in skew["pairs"]]
    # node-2: shift by 39..41 ms puts the server inside the client; node-3
    # relative to node-2's clock: -129..-121 ms
    assert pairs == [("node-1", "node-2", 1, 1, 39.0, True),
                     ("node-2", "node-3", 1, 1, -121.0, True)]
    assert skew["host_offsets_ms"] == {"node-2": 39.0, "node-3": -82.0}
    assert [(o["child"]["trace_id"], o["shift_ms"])
            for o in skew["outside"]][1] == (server, 39.0)
    adjusted, offsets = analysis.adjust_skew(t.base_id, t.spans())
    assert offsets == skew["host_offsets_ms"]
    after = analysis.analyze(t.base_id, adjusted)
    assert after["clock_skew"]["outside"] == []
    assert after["clock_skew"]["host_offsets_ms"] == {}
    moved = {s.trace_id: s for s in adjusted}[server]
    assert moved.started_at == payloads.EPOCH + \
        datetime.timedelta(milliseconds=10)


def test_contradicting_clock_bounds_are_marked_inconsistent():
    t = Trace()
    first = t.call("rpc", 0, 10)
    t.call("rpc", 20, 25, first, host="node-2")  # needs -20..-15
    second = t.call("rpc", 100, 110)
    t.call("rpc", 95, 100, second, host="node-2")  # needs +5..+10
    [pair] = t.analyze()["clock_skew"]["pairs"]
    assert (pair["outside"], pair["consistent"], pair["offset_ms"]) == \
        (2, False, -5.0)


def test_open_spans_and_orphans_are_left_out_of_timing_not_fatal():
    t = Trace()
    root = t.call("wsgi", 0, 100)
    never_stopped = t.call("rpc", 10, None, root)
    t.call("db", 20, 30, never_stopped, info={"db": {"statement": "SELECT 1"}})
    t.call("db", None, 50, root)  # only its stop arrived
    t.call("orphan", 120, 130, payloads.new_id())
    result = t.analyze()
    assert (result["untimed_spans"], result["orphans"],
            result["timed_spans"]) == (2, 1, 3)
    # The grandchild is timed under the root, its nearest timed ancestor.
    assert path_of(result) == [("wsgi", 90.0, 69.2), ("db", 10.0, 7.7),
                               ("orphan", 10.0, 7.7)]
    assert result["critical_path"]["uncovered_ms"] == 20.0
    groups = {g["name"]: (g["count"], g["timed"])
              for g in result["self_time"]["groups"]}
    assert groups == {"wsgi": (1, 1), "db": (2, 1), "rpc": (1, 0),
                      "orphan": (1, 1)}
    text = render.analysis_text(result)
    assert "2 spans open or without a start" in text
    assert "1 orphan, whose parent is unknown or loops back to it, is " \
        "timed as a top-level span" in text

    lonely = Trace()
    lonely.call("wsgi", 0, None)
    empty = lonely.analyze()
    assert empty["duration_ms"] == 0.0
    assert empty["critical_path"]["spans"] == []
    assert "none (no timed span)" in render.analysis_text(empty)


def two_requests():
    """The same request twice: 3 then 5 db calls, an rpc then an http
    call; returns the two traces and the root span of the second."""
    a, b = Trace(), Trace()
    root = a.call("wsgi", 0, 100)
    for n in range(3):
        a.call("db", 10 * n, 10 * n + 10, root)
    a.call("rpc", 50, 80, root)
    root = b.call("wsgi", 0, 150)
    for n in range(5):
        b.call("db", 10 * n, 10 * n + 10, root)
    b.call("http", 60, 80, root)
    return a, b, root


def test_compare_per_service_and_name():
    a, b, b_root = two_requests()
    b.call("db", 90, None, b_root)  # open: counted, not timed
    result = analysis.compare(a.base_id, a.spans(), b.base_id, b.spans())
    assert result["delta_ms"] == 50.0
    rows = [(g["name"], g["count_a"], g["count_b"], g["total_ms_a"],
             g["total_ms_b"], g["mean_ms_a"], g["mean_ms_b"], g["delta_ms"],
             g["ratio"], g["only_in"]) for g in result["groups"]]
    assert rows == [
        ("wsgi", 1, 1, 100.0, 150.0, 100.0, 150.0, 50.0, 1.5, None),
        ("rpc", 1, 0, 30.0, 0.0, 30.0, None, -30.0, 0.0, "a"),
        ("db", 3, 6, 30.0, 50.0, 10.0, 10.0, 20.0, 1.667, None),
        ("http", 0, 1, 0.0, 20.0, None, 20.0, 20.0, None, "b")]
    text = render.comparison_text(result)
    assert "only in A" in text and "only in B" in text
    assert "B - A: +50.000 ms" in text


def analyse_and_compare(base_id, found):
    analysis.analyze(base_id, found)
    analysis.compare(base_id, found, base_id, found)


def test_ten_thousand_spans_analyse_without_quadratic_steps():
    base_id, partial = parsed(ten_thousand_spans())
    assert_not_quadratic(analyse_and_compare, parsed(many_spans(1000)),
                         (base_id, partial))
    result = analysis.analyze(base_id, partial)
    assert len(result["self_time"]["spans"]) == 10000
    path = result["critical_path"]
    assert sum(e["self_ms"] for e in path["spans"]) + \
        path["uncovered_ms"] == pytest.approx(path["duration_ms"])
    # the same shape with every db call 1 ms longer: 6666 db calls
    slower = parsed(ten_thousand_spans(db_ms=2.5))
    compared = analysis.compare(base_id, partial, *slower)
    assert compared["delta_ms"] == 0.0  # the root bounds both
    assert [(g["name"], g["count_a"], g["count_b"], g["delta_ms"],
             g["mean_ms_a"], g["mean_ms_b"]) for g in compared["groups"]] \
        == [("db", 6666, 6666, 6666.0, 1.5, 2.5),
            ("rpc-call", 3333, 3333, 0.0, 1.5, 1.5),
            ("wsgi", 1, 1, 0.0, 20000.0, 20000.0)]


def test_real_osprofiler_trace():
    base_id, raw = traced_cloud.capture(instances=6, compute_skew_ms=-40)
    partial = spans.pair(events.parse(p) for p in raw)
    result = analysis.analyze(base_id, partial)
    assert result["span_count"] == 17 and result["untimed_spans"] == 0

    statements = {s["statement"]: s for s in result["sql"]["statements"]}
    loop = statements["SELECT id FROM volumes WHERE instance_id = ?"]
    assert (loop["count"], loop["distinct_params"], loop["parents"]) == \
        (6, 6, 1)
    [suspect] = result["sql"]["n_plus_one"]
    assert (suspect["parent"]["name"], suspect["parent"]["service"],
            suspect["count"]) == ("wsgi", "api", 6)

    [caller] = result["fan_out"]["per_parent"]
    assert (caller["name"], caller["service"]) == ("wsgi", "api")
    assert caller["remotes"] == [{"remote": "volume@node-2", "calls": 2},
                                 {"remote": "compute@node-3", "calls": 1}]

    [pair] = [p for p in result["clock_skew"]["pairs"] if p["outside"]]
    assert (pair["parent_host"], pair["child_host"]) == ("node-1", "node-3")
    # the server started after its client, so less than 40 ms puts it in
    assert 0 < pair["offset_ms"] <= 40

    path = result["critical_path"]
    assert sum(e["self_ms"] for e in path["spans"]) + \
        path["uncovered_ms"] == pytest.approx(path["duration_ms"], abs=0.01)
    assert all(s["self_ms"] >= 0 for s in result["self_time"]["spans"])

    adjusted, offsets = analysis.adjust_skew(base_id, partial)
    assert offsets == {"node-3": pair["offset_ms"]}
    after = analysis.analyze(base_id, adjusted)
    assert after["clock_skew"]["outside"] == []
    on_path = {(e["service"], e["name"]) for e in after["critical_path"][
        "spans"]}
    assert ("compute", "hypervisor-spawn") in on_path


def test_real_osprofiler_traces_compared():
    few = traced_cloud.capture(instances=3)
    many = traced_cloud.capture(instances=8)
    traces = [(base_id, spans.pair(events.parse(p) for p in raw))
              for base_id, raw in (few, many)]
    result = analysis.compare(*traces[0], *traces[1])
    groups = {(g["service"], g["name"]): g for g in result["groups"]}
    assert (groups[("api", "db")]["count_a"],
            groups[("api", "db")]["count_b"]) == (4, 9)
    assert groups[("volume", "wsgi")]["count_a"] == 2
    assert all(g["only_in"] is None for g in result["groups"])
