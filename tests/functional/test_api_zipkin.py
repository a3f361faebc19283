"""osprof-api's Zipkin v2 API over a store the real collector filled,
called the way Grafana's Zipkin data source calls it, every answer checked
against zipkin2-api.yaml's schemas (zipkin2_api_schema.json)."""

import datetime
import json
import os
import time

import jsonschema
import requests

from osprof_collector.render import exports
from tests.functional import api_server

SCHEMA_FILE = os.path.join(os.path.dirname(__file__),
                           "zipkin2_api_schema.json")
with open(SCHEMA_FILE) as schema_file:
    SCHEMAS = json.load(schema_file)
# zipkin2-api.yaml gives /spans the schema of a span list, but Zipkin
# answers (and Grafana reads) span names, as /services answers names.
NAMES = SCHEMAS["responses"]["/services"]
SCHEMAS["responses"]["/spans"] = SCHEMAS["responses"]["/remoteServices"] = \
    NAMES


served = api_server.served  # SQLite and PostgreSQL, filled and served


def valid(endpoint, document):
    schema = {**SCHEMAS["responses"][endpoint],
              "definitions": SCHEMAS["definitions"]}
    jsonschema.Draft4Validator(schema).validate(document)
    return document


def service_of(span):
    return exports.service_name(span.project, span.service)


def ok(response, endpoint):
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return valid(endpoint, response.json())


def roots(trace):
    return [span for span in trace if "parentId" not in span]


def test_services_and_span_names(served):
    api, _, stored = served
    services = ok(api.get("/api/v2/services"), "/services")
    expected = {service_of(s) for spans in stored.values() for s in spans}
    assert {"nova-api", "cinder-volume", "nova-conductor",
            "nova-compute"} <= expected
    assert services == sorted(expected)
    for service in services:
        names = ok(api.get("/api/v2/spans", serviceName=service), "/spans")
        assert names == sorted({s.name for spans in stored.values()
                                for s in spans if service_of(s) == service})
    assert ok(api.get("/api/v2/spans", serviceName="glance-api"),
              "/spans") == []
    assert ok(api.get("/api/v2/remoteServices", serviceName="nova-api"),
              "/remoteServices") == []


def test_search_by_service_and_span_name_as_grafana_does(served):
    api, _, stored = served
    searched = 0
    for service in api.get("/api/v2/services").json():
        for name in api.get("/api/v2/spans", serviceName=service).json():
            found = ok(api.get("/api/v2/traces", serviceName=service,
                               spanName=name), "/traces")
            expected = {base_id for base_id, spans in stored.items()
                        if any(service_of(s) == service and s.name == name
                               for s in spans)}
            assert {exports.trace_hex(b) for b in expected} == {
                trace[0]["traceId"] for trace in found}
            for trace in found:
                [root] = roots(trace)  # what Grafana names the result by
                assert root["name"] and root["duration"] >= 1
            searched += 1
    assert searched >= 10


def test_every_trace_by_id(served):
    api, filled, stored = served
    for trace in filled.traces:
        base_id = trace["base_id"]
        found = ok(api.get(f"/api/v2/trace/{exports.trace_hex(base_id)}"),
                   "/trace/{traceId}")
        assert {exports.span_hex(s["trace_id"]) for s in trace["spans"]} \
            <= {span["id"] for span in found}
        # the spans of osprof-trace show --format zipkin, under one root
        shown = exports.zipkin_spans(base_id, stored[base_id])
        [root] = roots(found)
        if len(roots(shown)) == 1:
            assert found == shown
        else:
            assert found[0] is not None and found[0] == root
            assert root["tags"]["osprofiler.synthetic_root"] == "true"
            assert found[1:] == [
                span if "parentId" in span else {**span,
                                                 "parentId": root["id"]}
                for span in shown]


def test_unknown_and_malformed_trace_ids(served):
    api, _, _ = served
    unknown = api.get("/api/v2/trace/0123456789abcdef0123456789abcdef")
    assert unknown.status_code == 404
    assert unknown.headers["Content-Type"].startswith("text/plain")
    assert "0123456789abcdef0123456789abcdef" in unknown.text
    assert api.get("/api/v2/trace/0123456789abcdef").status_code == 404
    for bad in ("xyz", "0123456789abcdef0", "g" * 32):
        response = api.get(f"/api/v2/trace/{bad}")
        assert response.status_code == 400, bad
        assert "invalid trace id" in response.json()["error"]


def test_trace_many(served):
    api, filled, _ = served
    ids = [exports.trace_hex(t["base_id"]) for t in filled.traces[:3]]
    found = ok(api.get("/api/v2/traceMany",
                       traceIds=",".join([*ids, "f" * 32])), "/traceMany")
    assert sorted(trace[0]["traceId"] for trace in found) == sorted(ids)
    for bad in (ids[0], f"{ids[0]},{ids[0]}", f"{ids[0]},zz", ""):
        response = api.get("/api/v2/traceMany", traceIds=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]


def with_span(stored, service, name=None, lo=0, hi=None):
    """trace ids of the stored traces with such a span, lasting lo to hi
    µs when either is given."""
    def lasts(span):
        if (lo, hi) == (0, None):
            return True
        if span.started_at is None or span.finished_at is None:
            return False
        us = (span.finished_at - span.started_at) // datetime.timedelta(
            microseconds=1)
        return lo <= us and (hi is None or us <= hi)

    return {exports.trace_hex(base_id) for base_id, spans in stored.items()
            if any(service_of(s) == service and name in (None, s.name)
                   and lasts(s) for s in spans)}


def trace_ids(found):
    return {trace[0]["traceId"] for trace in found}


def test_search_limit_durations_time_and_tags(served):
    api, filled, stored = served
    assert len(ok(api.get("/api/v2/traces", serviceName="nova-api",
                          spanName="wsgi", limit="1"), "/traces")) == 1
    everything = ok(api.get("/api/v2/traces"), "/traces")
    assert len(everything) == len(filled.traces) <= 10  # default limit 10
    assert len(ok(api.get("/api/v2/traces", limit="3"), "/traces")) == 3

    # minDuration / maxDuration bound one span of the service, in µs
    durations = sorted(
        (s.finished_at - s.started_at) // datetime.timedelta(microseconds=1)
        for spans in stored.values() for s in spans
        if service_of(s) == "nova-api" and s.name == "wsgi")
    for lo, hi in ((durations[-1], None), (durations[0], durations[0]),
                   (0, durations[1] - 1), (durations[-1] + 1, None)):
        query = {"minDuration": str(lo)}
        if hi is not None:
            query["maxDuration"] = str(hi)
        found = ok(api.get("/api/v2/traces", serviceName="nova-api",
                           spanName="wsgi", **query), "/traces")
        assert trace_ids(found) == with_span(stored, "nova-api", "wsgi",
                                             lo, hi), (lo, hi)
    assert trace_ids(ok(api.get("/api/v2/traces", minDuration="1"),
                        "/traces")) == trace_ids(everything)

    # endTs and lookback, epoch milliseconds
    now_ms = int(time.time() * 1000)
    assert ok(api.get("/api/v2/traces", endTs=str(now_ms - 3_600_000),
                      lookback="60000"), "/traces") == []
    assert trace_ids(ok(api.get("/api/v2/traces", serviceName="nova-api",
                                endTs=str(now_ms), lookback="3600000"),
                        "/traces")) == with_span(stored, "nova-api")
    assert ok(api.get("/api/v2/traces", serviceName="nova-api",
                      endTs=str(now_ms - 3_600_000), lookback="60000"),
              "/traces") == []

    # annotationQuery: a tag's key alone, or key=value
    [failed] = [exports.trace_hex(t["base_id"]) for t in filled.traces
                if any("error" in s for s in t["spans"])]
    found = ok(api.get("/api/v2/traces", serviceName="cinder-volume",
                       annotationQuery="error"), "/traces")
    assert trace_ids(found) == {failed}
    found = ok(api.get("/api/v2/traces",
                       annotationQuery="osprofiler.info.note=raises and "
                                       "error.kind=ValueError"), "/traces")
    assert trace_ids(found) == {failed}
    assert ok(api.get("/api/v2/traces",
                      annotationQuery="error.kind=KeyError"), "/traces") == []


def test_dependencies(served):
    api, filled, stored = served
    [cloud] = [t["base_id"] for t in filled.traces if t.get("cross_service")]
    by_id = {s.trace_id: s for s in stored[cloud]}
    expected = {}
    for span in by_id.values():
        parent = by_id.get(span.parent_id)
        if parent is not None and service_of(parent) != service_of(span):
            pair = (service_of(parent), service_of(span))
            expected[pair] = expected.get(pair, 0) + 1
    assert ("nova-api", "cinder-volume") in expected
    now_ms = int(time.time() * 1000)
    links = ok(api.get("/api/v2/dependencies", endTs=str(now_ms),
                       lookback="3600000"), "/dependencies")
    assert {(link["parent"], link["child"]): link["callCount"]
            for link in links} == expected
    assert all(link["errorCount"] == 0 for link in links)
    assert ok(api.get("/api/v2/dependencies",
                      endTs=str(now_ms - 3_600_000), lookback="1000"),
              "/dependencies") == []


def test_autocomplete(served):
    api, _, _ = served
    assert ok(api.get("/api/v2/autocompleteKeys"), "/autocompleteKeys") == []
    assert ok(api.get("/api/v2/autocompleteValues", key="http.method"),
              "/autocompleteValues") == []


BAD_REQUESTS = [
    ("/api/v2/traces", {"limit": "0"}, "limit"),
    ("/api/v2/traces", {"limit": "ten"}, "limit"),
    ("/api/v2/traces", {"limit": "100000"}, "limit"),
    ("/api/v2/traces", {"minDuration": "-1"}, "minDuration"),
    ("/api/v2/traces", {"maxDuration": "10"}, "maxDuration"),
    ("/api/v2/traces", {"minDuration": "10", "maxDuration": "9"},
     "maxDuration"),
    ("/api/v2/traces", {"endTs": "yesterday"}, "endTs"),
    ("/api/v2/traces", {"endTs": "9" * 30}, "past any date"),
    ("/api/v2/traces", {"lookback": "1.5"}, "lookback"),
    ("/api/v2/traces", {"serviceName": "x" * 256}, "serviceName"),
    ("/api/v2/traces", {"annotationQuery": "http.method="},
     "annotationQuery"),
    ("/api/v2/spans", {}, "serviceName"),
    ("/api/v2/remoteServices", {}, "serviceName"),
    ("/api/v2/dependencies", {}, "endTs"),
    ("/api/v2/dependencies", {"endTs": "1", "lookback": "-5"}, "lookback"),
    ("/api/v2/autocompleteValues", {}, "key"),
    ("/api/v2/traceMany", {}, "traceIds"),
]


def test_bad_parameters_get_400_with_a_json_error(served):
    api, _, _ = served
    for path, query, named in BAD_REQUESTS:
        response = api.get(path, **query)
        assert response.status_code == 400, (path, query, response.text)
        assert response.headers["Content-Type"] == "application/json"
        assert named in response.json()["error"], (path, query)
    missing = api.get("/api/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]
    posted = requests.post(api.url + "/api/v2/spans", data="[]", timeout=10)
    assert posted.status_code == 405 and posted.json()["error"]
    assert "Traceback" not in api.log()
