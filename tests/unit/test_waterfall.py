from osprof_collector import events
from osprof_collector import query
from osprof_collector.render import waterfall
from osprof_collector import spans
from tests import payloads


def stored(raw):
    return list(spans.pair(events.parse(p) for p in raw))


def a_trace():
    """wsgi [0, 50] > (db [1, 4] failing, rpc [5, 40] > db [6, 9]),
    an open span, a span whose start was lost, an orphan."""
    base_id = payloads.new_id()
    root = payloads.call("wsgi", base_id, base_id, 0, 50)
    root_id = root[0]["trace_id"]
    failing = payloads.call("db", base_id, root_id, 1, 4,
                            stop_info={"etype": "OperationalError",
                                       "message": "gone"})
    failing[0]["info"]["db"] = {"statement": "SELECT 1", "params": {}}
    rpc = payloads.call("rpc", base_id, root_id, 5, 40)
    inner = payloads.call("db", base_id, rpc[0]["trace_id"], 6, 9)
    unfinished = payloads.call("open", base_id, root_id, 41, 0)[0]
    lost = payloads.call("lost", base_id, root_id, 0, 45)[1]
    orphan = payloads.call("orphan", base_id, payloads.new_id(), 46, 48)
    raw = [*root, *failing, *rpc, *inner, unfinished, lost, *orphan]
    return base_id, stored(raw)


def test_rows_follow_the_report_and_say_what_each_span_is():
    base_id, found = a_trace()
    document = waterfall.trace(base_id, found)
    rows = document["rows"]
    assert [r["trace_id"] for r in rows] == [
        node["trace_id"] for node, _ in
        query.walk(query.build_report(base_id, found))]
    by_name = {r["name"]: r for r in rows if r["name"] != "db"}
    assert [(r["name"], r["depth"], r["size"]) for r in rows] == [
        ("wsgi", 0, 6), ("db", 1, 1), ("rpc", 1, 2), ("db", 2, 1),
        ("open", 1, 1), ("lost", 1, 1), ("orphan", 0, 1)]
    assert rows[1]["error"] == ["OperationalError", "gone"]
    assert rows[1]["sql"] and not rows[3]["sql"]
    assert (rows[2]["start_ms"], rows[2]["duration_ms"]) == (5.0, 35.0)
    assert by_name["open"]["open"] and by_name["open"]["duration_ms"] is None
    assert by_name["lost"]["start_missing"]
    assert by_name["lost"]["start_ms"] == 45.0
    assert by_name["orphan"]["orphan"]
    assert (document["span_count"], document["errors"],
            document["open_spans"], document["start_missing"],
            document["orphans"], document["total_ms"]) == (7, 1, 1, 1, 1, 50.0)


def test_analysis_names_each_span_of_the_critical_path():
    base_id, found = a_trace()
    result = waterfall.trace_analysis(base_id, found)
    by_name = {s.name: s.trace_id for s in found if s.name != "db"}
    assert set(result["critical_ms"]) >= {by_name["wsgi"], by_name["rpc"]}
    assert by_name["open"] not in result["self_ms"]  # untimed
    assert result["sql"]["statements"][0]["statement"] == "SELECT ?"


def test_a_span_in_detail():
    _, found = a_trace()
    failing = next(s for s in found if s.error)
    shown = waterfall.span_details(failing)
    assert shown["trace_id"] == failing.trace_id
    assert shown["statement"] == "SELECT 1"
    assert shown["error"] == {"etype": "OperationalError", "message": "gone"}
    assert set(shown["payloads"]) == {"db-start", "db-stop"}
