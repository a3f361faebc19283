"""osprof-trace show --format jaeger|zipkin|otlp on every store."""

import json

from tests import payloads
from tests.functional import test_trace_cli as trace_cli
from tests.unit import test_exports as real
from tests.unit.test_query import loop_trace

EXPORT_FORMATS = ("jaeger", "zipkin", "otlp")
cli = trace_cli.cli  # the show tests' fixture: SQLite, PostgreSQL, mongomock
write = trace_cli.write


def exported_spans(fmt, document):
    """{span id: (parent id or None, start µs, end µs)}."""
    if fmt == "jaeger":
        [trace] = document["data"]
        return {s["spanID"]: (
            s["references"][0]["spanID"] if s["references"] else None,
            s["startTime"], s["startTime"] + s["duration"])
            for s in trace["spans"]}
    if fmt == "zipkin":
        return {s["id"]: (s.get("parentId"), s["timestamp"],
                          s["timestamp"] + s["duration"]) for s in document}
    return {s["spanId"]: (s.get("parentSpanId"),
                          int(s["startTimeUnixNano"]) // 1000,
                          int(s["endTimeUnixNano"]) // 1000)
            for r in document["resourceSpans"]
            for s in r["scopeSpans"][0]["spans"]}


def test_show_exports_a_real_trace_with_microseconds(cli, tmp_path):
    run, store = cli
    base_id, raw = real.cross_service_request()
    write(store, raw)
    expected = {span_id: (want["parent"], want["start"], want["stop"])
                for span_id, want in real.by_span(base_id, raw).items()}
    # Zipkin rounds 0 µs up to 1; none of these is that short
    assert all(end > start for _, start, end in expected.values())
    for fmt in EXPORT_FORMATS:
        code, shown, err = run("show", base_id, "--format", fmt)
        assert (code, err) == (0, "")
        document = json.loads(shown)
        assert exported_spans(fmt, document) == expected, fmt
        target = tmp_path / f"trace.{fmt}.json"
        code, out, err = run("show", base_id, "--format", fmt, "--out",
                             str(target))
        assert (code, out, err) == (0, "", "")
        assert target.read_text() == shown
    code, out, _ = run("show", base_id, "--format", "zipkin")
    assert {s["traceId"] for s in json.loads(out)} == {
        real.expected_trace_id(base_id)}


def test_show_exports_an_open_span(cli):
    run, store = cli
    base_id = payloads.new_id()
    start, _stop = payloads.call("wsgi", base_id, base_id, 0, 5)
    write(store, [start])
    code, out, _ = run("show", base_id, "--format", "jaeger")
    [span] = json.loads(out)["data"][0]["spans"]
    assert span["duration"] == 0
    assert {"key": "osprofiler.open", "type": "bool", "value": True} in \
        span["tags"]
    code, out, _ = run("show", base_id, "--format", "zipkin")
    [span] = json.loads(out)
    assert "duration" not in span and span["tags"]["osprofiler.open"] == \
        "true"
    code, out, _ = run("show", base_id, "--format", "otlp")
    [resource] = json.loads(out)["resourceSpans"]
    [span] = resource["scopeSpans"][0]["spans"]
    assert span["startTimeUnixNano"] == span["endTimeUnixNano"]


def test_show_exports_a_parent_loop_without_cycle(cli):
    run, store = cli
    base_id, raw, ids = loop_trace()
    write(store, raw)
    short = {name: real.expected_span_id(trace_id)
             for name, trace_id in ids.items()}
    for fmt in EXPORT_FORMATS:
        code, out, err = run("show", base_id, "--format", fmt)
        assert (code, err) == (0, "")
        parents = {span_id: parent for span_id, (parent, _, _)
                   in exported_spans(fmt, json.loads(out)).items()}
        assert (parents[short["a"]], parents[short["b"]],
                parents[short["c"]]) == (None, short["a"], short["b"]), fmt


def test_show_export_errors_are_one_line(cli):
    run, store = cli
    unknown = payloads.new_id()
    for fmt in EXPORT_FORMATS:
        assert run("show", unknown, "--format", fmt) == (
            1, "", f"trace {unknown} not found\n")
    code, out, err = run("show", "nope", "--format", "otlp")
    assert code == 1 and out == "" and err.count("\n") == 1
