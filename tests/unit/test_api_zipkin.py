"""One parentless root per Zipkin trace; annotationQuery terms."""

import pytest

from osprof_collector.api import params
from osprof_collector.api import zipkin
from osprof_collector import events
from osprof_collector.render import exports
from osprof_collector import spans
from tests import payloads
from tests.unit.test_query import loop_trace


def parsed(raw):
    return spans.merge_by_trace_id(
        [spans.from_event(events.parse(p)) for p in raw])


def test_a_single_top_level_span_is_the_root_as_exported():
    base_id = payloads.new_id()
    root = payloads.call("wsgi", base_id, base_id, 0, 10)
    child = payloads.call("db", base_id, root[0]["trace_id"], 2, 5)
    found = parsed([*root, *child])
    assert zipkin.trace_spans(base_id, found) == exports.zipkin_spans(
        base_id, found)


def test_several_top_level_spans_get_one_root_over_them():
    base_id = payloads.new_id()
    first = payloads.call("wsgi", base_id, base_id, 10, 20)
    second = payloads.call("rpc", base_id, base_id, 15, 40)
    lost_start = payloads.call("db", base_id, base_id, 0, 50)[1]  # stop
    found = parsed([*first, *second, lost_start])
    shown = zipkin.trace_spans(base_id, found)
    [root] = [span for span in shown if "parentId" not in span]
    assert root["id"] == exports.span_hex(base_id)
    assert root["traceId"] == exports.trace_hex(base_id)
    assert root["name"] == "wsgi"  # the first top-level span's
    start = exports.epoch_us(found[0].started_at)  # wsgi, 10 ms
    assert root["timestamp"] == start
    assert root["duration"] == 40_000  # to db's stop annotation, at 50 ms
    assert root["tags"] == {"osprofiler.base_id": base_id,
                            "osprofiler.synthetic_root": "true"}
    assert {span["parentId"] for span in shown if span is not root} == {
        root["id"]}
    assert len(shown) == 4


def test_a_trace_of_orphans_and_loops_gets_a_root_too():
    base_id, raw, ids = loop_trace()
    found = parsed(raw)
    shown = zipkin.trace_spans(base_id, found)
    assert len([s for s in shown if "parentId" not in s]) == 1
    by_id = {span["id"]: span for span in shown}
    # the orphan keeps its unknown parent; every other span reaches the root
    assert by_id[exports.span_hex(ids["c"])]["parentId"] == \
        exports.span_hex(ids["b"])


def test_annotation_terms():
    assert zipkin.annotation_terms(None) == []
    assert zipkin.annotation_terms("error") == [("error", None)]
    assert zipkin.annotation_terms(
        "http.method=GET and error and db.statement=a=b") == [
        ("http.method", "GET"), ("error", None), ("db.statement", "a=b")]
    for bad in ("=GET", "http.method=", "error and "):
        with pytest.raises(params.BadRequest):
            zipkin.annotation_terms(bad)


def test_trace_ids():
    assert params.base_id("4C9A3D6E2F4B4A449C4E0F3E3A1C2B7D") == \
        "4c9a3d6e-2f4b-4a44-9c4e-0f3e3a1c2b7d"
    assert params.base_id("9c4e0f3e3a1c2b7d") is None
    for bad in ("4c9a3d6e-2f4b-4a44-9c4e-0f3e3a1c2b7d", "x" * 32, "",
                "0" * 31, "0" * 33):
        with pytest.raises(params.BadRequest):
            params.base_id(bad)
