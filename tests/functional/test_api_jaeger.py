"""osprof-api's Jaeger query API (legacy /api and /api/v3) over a store
the real collector filled, called the way Grafana's Jaeger data source
calls it."""

import datetime
import json
import time

from osprof_collector.render import exports
from tests.functional import api_server
from tests.functional import test_api_zipkin as zipkin_tests

served = api_server.served  # SQLite and PostgreSQL, filled and served
service_of = zipkin_tests.service_of
with_span = zipkin_tests.with_span
ENVELOPE = {"data", "total", "limit", "offset", "errors"}


def data(response, status=200):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert set(document) == ENVELOPE
    if status == 200:
        assert document["errors"] is None
        if isinstance(document["data"], list):
            assert document["total"] == len(document["data"])
    return document["data"]


def error(response, status):
    document = response.json()
    assert response.status_code == status, response.text
    assert set(document) == ENVELOPE and document["data"] is None
    [found] = document["errors"]
    assert found["code"] == status
    return found["msg"]


def now_us():
    return int(time.time() * 10**6)


def hour_window():
    return {"start": str(now_us() - 3600 * 10**6), "end": str(now_us())}


def jaeger_ids(traces):
    return {trace["traceID"] for trace in traces}


def check_trace(trace, base_id, stored):
    """A Jaeger trace as Grafana reads it, the same as osprof-trace show
    --format jaeger."""
    assert set(trace) == {"traceID", "spans", "processes", "warnings"}
    expected = exports.jaeger_trace(base_id, stored[base_id])
    assert {k: trace[k] for k in ("traceID", "spans", "processes")} == \
        expected
    for span in trace["spans"]:
        assert span["processID"] in trace["processes"]


def test_services_and_operations(served):
    api, _, stored = served
    expected = sorted({service_of(s) for spans in stored.values()
                       for s in spans})
    assert data(api.get("/api/services")) == expected
    assert api.get("/api/v3/services").json() == {"services": expected}
    for service in expected:
        names = sorted({s.name for spans in stored.values() for s in spans
                        if service_of(s) == service})
        assert data(api.get(f"/api/services/{service}/operations")) == \
            names
        assert data(api.get("/api/operations", service=service)) == [
            {"name": name, "spanKind": ""} for name in names]
        assert api.get("/api/v3/operations", service=service).json() == {
            "operations": [{"name": name, "spanKind": ""}
                           for name in names]}
    assert data(api.get("/api/services/glance-api/operations")) == []


def test_search_as_grafana_does(served):
    api, _, stored = served
    for service in data(api.get("/api/services")):
        found = data(api.get("/api/traces", service=service, limit="20",
                             **hour_window()))
        assert jaeger_ids(found) == with_span(stored, service)
        for trace in found:
            base_id = next(b for b in stored
                           if exports.trace_hex(b) == trace["traceID"])
            check_trace(trace, base_id, stored)
        for name in data(api.get(f"/api/services/{service}/operations")):
            found = data(api.get("/api/traces", service=service,
                                 operation=name, **hour_window()))
            assert jaeger_ids(found) == with_span(stored, service, name)


def test_search_durations_tags_limit_and_time(served):
    api, filled, stored = served
    durations = sorted(
        (s.finished_at - s.started_at) // datetime.timedelta(microseconds=1)
        for spans in stored.values() for s in spans
        if service_of(s) == "nova-api" and s.name == "wsgi")
    longest = durations[-1]
    found = data(api.get("/api/traces", service="nova-api",
                         operation="wsgi", minDuration=f"{longest}us",
                         **hour_window()))
    assert jaeger_ids(found) == with_span(stored, "nova-api", "wsgi",
                                          longest)
    found = data(api.get("/api/traces", service="nova-api",
                         operation="wsgi", minDuration="0s",
                         maxDuration=f"{durations[0] / 1000}ms",
                         **hour_window()))
    assert jaeger_ids(found) == with_span(stored, "nova-api", "wsgi", 0,
                                          durations[0])
    assert data(api.get("/api/traces", service="nova-api",
                        minDuration="1h", **hour_window())) == []

    [failed] = [exports.trace_hex(t["base_id"]) for t in filled.traces
                if any("error" in s for s in t["spans"])]
    found = data(api.get("/api/traces", service="cinder-volume",
                         tags=json.dumps({"error": "true"}),
                         **hour_window()))
    assert jaeger_ids(found) == {failed}
    found = data(api.get("/api/traces", service="cinder-volume",
                         tags=json.dumps({"error": True,
                                          "error.kind": "ValueError"}),
                         **hour_window()))
    assert jaeger_ids(found) == {failed}

    assert len(data(api.get("/api/traces", service="nova-api", limit="1",
                            **hour_window()))) == 1
    assert data(api.get("/api/traces", service="nova-api",
                        start=str(now_us() - 7200 * 10**6),
                        end=str(now_us() - 3600 * 10**6))) == []
    # without start and end: the last [api] query_lookback seconds
    assert jaeger_ids(data(api.get("/api/traces", service="nova-api"))) \
        == with_span(stored, "nova-api")


def test_trace_by_id(served):
    api, filled, stored = served
    for trace in filled.traces:
        base_id = trace["base_id"]
        [found] = data(api.get(f"/api/traces/{exports.trace_hex(base_id)}"))
        check_trace(found, base_id, stored)
        document = api.get(
            f"/api/v3/traces/{exports.trace_hex(base_id)}").json()
        assert document == {"result": {"resourceSpans": json.loads(
            exports.otlp(base_id, stored[base_id]))["resourceSpans"]}}
    assert error(api.get("/api/traces/" + "0" * 32), 404) == \
        "trace not found"
    assert error(api.get("/api/traces/abc"), 404) == "trace not found"
    assert "invalid trace id" in error(api.get("/api/traces/xyz"), 400)
    missing = api.get("/api/v3/traces/" + "0" * 32)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"httpCode": 404,
                                        "message": "trace not found"}}


def test_v3_search(served):
    api, _, stored = served
    now = datetime.datetime.now(datetime.timezone.utc)
    window = {"query.start_time_min": (
        now - datetime.timedelta(hours=1)).isoformat(),
        "query.start_time_max": now.isoformat()}
    document = api.get("/api/v3/traces", **{
        "query.service_name": "nova-api", **window}).json()
    trace_ids = {span["traceId"] for resource in document["result"][
        "resourceSpans"] for scope in resource["scopeSpans"]
        for span in scope["spans"]}
    assert trace_ids == with_span(stored, "nova-api")
    document = api.get("/api/v3/traces", **{
        "query.service_name": "nova-api", "query.operation_name": "wsgi",
        "query.num_traces": "1", **window}).json()
    assert len({span["traceId"] for resource in document["result"][
        "resourceSpans"] for scope in resource["scopeSpans"]
        for span in scope["spans"]}) == 1


def test_dependencies(served):
    api, _, _ = served
    zipkin = api.get("/api/v2/dependencies", endTs=str(now_us() // 1000),
                     lookback="3600000").json()
    links = data(api.get("/api/dependencies", endTs=str(now_us() // 1000),
                         lookback="3600000"))
    assert links == [{"parent": link["parent"], "child": link["child"],
                      "callCount": link["callCount"]} for link in zipkin]
    assert links  # the cross-service request's


BAD_REQUESTS = [
    ("/api/operations", {}, "service"),
    ("/api/traces", {}, "service"),
    ("/api/traces", {"service": "nova-api", "limit": "-1"}, "limit"),
    ("/api/traces", {"service": "nova-api", "minDuration": "10"},
     "minDuration"),
    ("/api/traces", {"service": "nova-api", "maxDuration": "1 s"},
     "maxDuration"),
    ("/api/traces", {"service": "nova-api", "minDuration": "2s",
                     "maxDuration": "1s"}, "maxDuration"),
    ("/api/traces", {"service": "nova-api", "start": "now"}, "start"),
    ("/api/traces", {"service": "nova-api", "start": "20", "end": "10"},
     "ends before"),
    ("/api/traces", {"service": "nova-api", "tags": "error=true"}, "tags"),
    ("/api/traces", {"service": "nova-api", "tags": '{"a": [1]}'}, "tags"),
    ("/api/dependencies", {"endTs": "x"}, "endTs"),
]
V3_BAD_REQUESTS = [
    ("/api/v3/operations", {}, "service"),
    ("/api/v3/traces", {"query.service_name": "nova-api"},
     "query.start_time_min"),
    ("/api/v3/traces", {"query.service_name": "nova-api",
                        "query.start_time_min": "yesterday",
                        "query.start_time_max": "2026-12-03T12:00:00Z"},
     "RFC 3339"),
    ("/api/v3/traces", {"query.service_name": "nova-api",
                        "query.start_time_min": "2026-12-03T11:00:00",
                        "query.start_time_max": "2026-12-03T12:00:00Z"},
     "offset"),
    ("/api/v3/traces", {"query.start_time_min": "2026-12-03T11:00:00Z",
                        "query.start_time_max": "2026-12-03T12:00:00Z"},
     "query.service_name"),
    ("/api/v3/traces", {"query.service_name": "nova-api",
                        "query.start_time_min": "2026-12-03T11:00:00Z",
                        "query.start_time_max": "2026-12-03T12:00:00Z",
                        "query.num_traces": "0"}, "query.num_traces"),
]


def test_bad_parameters_get_400_with_a_json_error(served):
    api, _, _ = served
    for path, query, named in BAD_REQUESTS:
        assert named in error(api.get(path, **query), 400), (path, query)
    for path, query, named in V3_BAD_REQUESTS:
        response = api.get(path, **query)
        assert response.status_code == 400, (path, query, response.text)
        assert response.json()["error"]["httpCode"] == 400
        assert named in response.json()["error"]["message"], (path, query)
    assert "Traceback" not in api.log()
