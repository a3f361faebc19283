"""Jaeger, Zipkin and OTLP exports of real osprofiler traces."""

import calendar
import copy
import datetime
import json
import re
import threading
from wsgiref import simple_server

from osprofiler import _utils as osprofiler_utils
from osprofiler import notifier
from osprofiler import profiler
from osprofiler import requests as traced_requests
from osprofiler import sqlalchemy as traced_sqlalchemy
from osprofiler import web
import requests
from requests import adapters
import sqlalchemy as sa
import webob
import webob.dec

from osprof_collector import events
from osprof_collector import spans
from osprof_collector.render import EXPORTS
from tests import osprofiler_reference as reference
from tests import payloads
from tests.unit.test_query import loop_trace

HMAC_KEY = "SECRET_KEY"
HEX32 = re.compile(r"\A[0-9a-f]{32}\Z")
HEX16 = re.compile(r"\A[0-9a-f]{16}\Z")
JAEGER_TAG_TYPES = {"string": str, "bool": bool, "int64": int,
                    "float64": float}
ANY_VALUE_KEYS = {"stringValue", "boolValue", "intValue", "doubleValue"}


@webob.dec.wsgify
def volume_api(request):
    return webob.Response(status=202)


class QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def cross_service_request():
    """One real trace through osprofiler's WSGI middleware, SQLAlchemy
    hooks, function decorator and requests adapter: a nova-api request
    that runs two SQL statements (the second fails) and a scheduling
    function posting to a cinder-volume WSGI service, which joins the
    trace from the request's headers. Returns (base_id, raw events)."""
    sent = []
    volume_server = simple_server.make_server(
        "127.0.0.1", 0, web.WsgiMiddleware(volume_api, hmac_keys=HMAC_KEY,
                                           enabled=True),
        handler_class=QuietHandler)
    volume_thread = threading.Thread(target=volume_server.serve_forever)

    def notify(info, context=None):
        # as osprofiler's messaging driver labels each service's events
        in_volume = threading.current_thread() is volume_thread
        info["project"], info["service"] = (
            ("cinder", "volume") if in_volume else ("nova", "api"))
        sent.append(copy.deepcopy(info))

    engine = sa.create_engine("sqlite://")
    traced_sqlalchemy.add_tracing(sa, engine, "db")

    @profiler.trace("compute-schedule", hide_args=False, hide_result=False)
    def schedule(flavor):
        url = (f"http://127.0.0.1:{volume_server.server_port}"
               f"/v3/volumes?flavor={flavor}")
        return requests.post(url, timeout=30).status_code

    @webob.dec.wsgify
    def compute_api(request):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT :n"), {"n": 1})
            try:
                conn.execute(sa.text("SELECT * FROM missing"))
            except sa.exc.OperationalError:
                pass
        schedule("m1.small")
        return webob.Response("ok")

    previous_notifier = notifier.get()
    previous_send = adapters.HTTPAdapter.send
    notifier.set(notify)
    adapters.HTTPAdapter.send = traced_requests.send
    volume_thread.start()
    try:
        profiler.init(HMAC_KEY)  # the client side, as python-novaclient
        headers = web.get_trace_id_headers()
        base_id = profiler.get().get_base_id()
        profiler.clean()
        response = webob.Request.blank(
            "/v2.1/servers?limit=1", method="POST", headers=headers
        ).get_response(web.WsgiMiddleware(compute_api, hmac_keys=HMAC_KEY,
                                          enabled=True))
        assert response.status_int == 200
    finally:
        volume_server.shutdown()
        volume_thread.join()
        volume_server.server_close()
        notifier.set(previous_notifier)
        adapters.HTTPAdapter.send = previous_send
        engine.dispose()
    return base_id, sent


def export(fmt, base_id, raw_events):
    partial = spans.pair(events.parse(p) for p in raw_events)
    return json.loads(EXPORTS[fmt](base_id, partial))


def microseconds(timestamp):
    """osprofiler's naive UTC timestamp as microseconds since the epoch."""
    moment = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%f")
    return calendar.timegm(moment.timetuple()) * 10 ** 6 + moment.microsecond


def expected_trace_id(base_id):
    return f"{osprofiler_utils.uuid_to_int128(base_id):032x}"


def expected_span_id(trace_id):
    return f"{osprofiler_utils.shorten_id(trace_id):016x}"


def by_span(base_id, raw_events):
    """What each span must look like, from the raw events: short span id →
    name, parent short id (None at the top), start and stop µs, payloads."""
    found = {}
    for event in raw_events:
        span = found.setdefault(expected_span_id(event["trace_id"]), {
            "name": event["name"].rsplit("-", 1)[0],
            "parent": None if event["parent_id"] == base_id
            else expected_span_id(event["parent_id"]),
            "start": None, "stop": None})
        phase = event["name"].rsplit("-", 1)[1]
        span[phase] = microseconds(event["timestamp"])
        span[phase + "_info"] = event["info"]
    return found


def test_jaeger_is_what_jaeger_ui_uploads():
    base_id, raw = cross_service_request()
    expected = by_span(base_id, raw)
    document = export("jaeger", base_id, raw)
    assert list(document) == ["data"]
    [trace] = document["data"]
    assert trace["traceID"] == expected_trace_id(base_id)
    assert HEX32.match(trace["traceID"])
    services = {p["serviceName"] for p in trace["processes"].values()}
    assert services == {"nova-api", "cinder-volume"}
    for process in trace["processes"].values():
        assert process["tags"][-1] == {"key": "host.name", "type": "string",
                                       "value": raw[0]["info"]["host"]}
    assert len(trace["spans"]) == len(expected) == 6
    sub_millisecond = 0
    for span in trace["spans"]:
        want = expected[span["spanID"]]
        assert span["traceID"] == trace["traceID"]
        assert HEX16.match(span["spanID"])
        assert span["operationName"] == want["name"]
        assert span["references"] == ([] if want["parent"] is None else [
            {"refType": "CHILD_OF", "traceID": trace["traceID"],
             "spanID": want["parent"]}])
        assert type(span["startTime"]) is int
        assert type(span["duration"]) is int
        assert span["startTime"] == want["start"]
        assert span["duration"] == want["stop"] - want["start"]
        sub_millisecond += span["duration"] % 1000 != 0
        assert span["logs"] == [] and span["flags"] == 1
        assert span["processID"] in trace["processes"]
        for tag in span["tags"]:
            assert set(tag) == {"key", "type", "value"}
            assert type(tag["value"]) is JAEGER_TAG_TYPES[tag["type"]]
    assert sub_millisecond  # microseconds, not the report's milliseconds
    tags = {(s["operationName"], t["key"]): t for s in trace["spans"]
            for t in s["tags"]}
    assert tags["http", "http.status_code"] == {
        "key": "http.status_code", "type": "int64", "value": 202}
    assert tags["http", "span.kind"]["value"] == "client"
    assert tags["wsgi", "span.kind"]["value"] == "server"
    assert tags["db", "error"] == {"key": "error", "type": "bool",
                                   "value": True}


def test_zipkin_is_a_v2_span_list():
    base_id, raw = cross_service_request()
    expected = by_span(base_id, raw)
    document = export("zipkin", base_id, raw)
    assert isinstance(document, list) and len(document) == 6
    kinds = {}
    for span in document:
        want = expected[span["id"]]
        assert HEX32.match(span["traceId"])
        assert span["traceId"] == expected_trace_id(base_id)
        assert HEX16.match(span["id"])
        if want["parent"] is None:
            assert "parentId" not in span
        else:
            assert span["parentId"] == want["parent"]
            assert HEX16.match(span["parentId"])
        assert span["name"] == want["name"]
        assert type(span["timestamp"]) is int
        assert type(span["duration"]) is int
        assert span["timestamp"] == want["start"]
        assert span["duration"] == max(1, want["stop"] - want["start"])
        assert span["localEndpoint"]["serviceName"] in ("nova-api",
                                                        "cinder-volume")
        assert all(type(k) is str and type(v) is str
                   for k, v in span["tags"].items())
        kinds.setdefault(span["name"], set()).add(span.get("kind"))
    assert kinds == {"wsgi": {"SERVER"}, "db": {"CLIENT"},
                     "http": {"CLIENT"}, "compute-schedule": {None}}
    failed = [s for s in document if "error" in s["tags"]]
    assert [s["tags"]["db.statement"] for s in failed] == [
        "SELECT * FROM missing"]
    assert failed[0]["tags"]["error"] == "true"
    assert failed[0]["tags"]["error.kind"] == "sqlite3.OperationalError"
    assert failed[0]["tags"]["error.message"] == "no such table: missing"


def test_otlp_is_an_export_trace_service_request():
    base_id, raw = cross_service_request()
    expected = by_span(base_id, raw)
    document = export("otlp", base_id, raw)
    assert list(document) == ["resourceSpans"]
    resources = {}
    for resource_spans in document["resourceSpans"]:
        attributes = resource_spans["resource"]["attributes"]
        resource = {a["key"]: a["value"]["stringValue"] for a in attributes}
        [scope_spans] = resource_spans["scopeSpans"]
        assert scope_spans["scope"] == {"name": "osprof-collector"}
        resources[resource["service.name"], resource["service.namespace"],
                  resource["host.name"]] = scope_spans["spans"]
    host = raw[0]["info"]["host"]
    assert sorted(resources) == [("cinder-volume", "cinder", host),
                                 ("nova-api", "nova", host)]
    assert [s["name"] for s in resources["cinder-volume", "cinder", host]] \
        == ["wsgi"]
    exported = [s for group in resources.values() for s in group]
    assert len(exported) == 6
    for span in exported:
        want = expected[span["spanId"]]
        assert span["traceId"] == expected_trace_id(base_id)
        assert HEX16.match(span["spanId"])
        assert span.get("parentSpanId") == want["parent"]
        assert span["name"] == want["name"]
        for field, phase in (("startTimeUnixNano", "start"),
                             ("endTimeUnixNano", "stop")):
            assert type(span[field]) is str
            assert int(span[field]) == want[phase] * 1000
        assert span["kind"] in (1, 2, 3)  # INTERNAL, SERVER, CLIENT
        for attribute in span["attributes"]:
            [(value_type, value)] = attribute["value"].items()
            assert value_type in ANY_VALUE_KEYS
            if value_type == "intValue":
                assert type(value) is str and int(value) >= 0
        if "error" in {a["key"] for a in span["attributes"]}:
            assert span["status"] == {
                "code": 2, "message": "sqlite3.OperationalError: "
                                      "no such table: missing"}
        else:
            assert span["status"] == {}
    by_name = {s["name"]: s for s in exported if s["name"] != "db"}
    assert (by_name["wsgi"]["kind"], by_name["http"]["kind"],
            by_name["compute-schedule"]["kind"]) == (2, 3, 1)
    assert {"key": "http.status_code", "value": {"intValue": "202"}} in \
        by_name["http"]["attributes"]


def jaeger_tags(base_id, raw):
    """[(span name, {tag key: value})] in start order."""
    [trace] = export("jaeger", base_id, raw)["data"]
    return [(s["operationName"], {t["key"]: t["value"] for t in s["tags"]})
            for s in trace["spans"]]


def test_osprofiler_info_becomes_conventional_tags():
    base_id, raw = cross_service_request()
    tags = jaeger_tags(base_id, raw)
    [http] = [t for name, t in tags if name == "http"]
    port = [e for e in raw if e["name"] == "http-start"][0][
        "info"]["requests"]["port"]
    assert {k: v for k, v in http.items()
            if k.startswith(("http.", "net."))} == {
        "http.method": "POST",
        "http.url": f"http://127.0.0.1:{port}/v3/volumes?flavor=m1.small",
        "net.peer.name": "127.0.0.1",
        "http.status_code": 202}
    wsgi = [t for name, t in tags if name == "wsgi"]
    assert [(t["http.method"], t["http.scheme"], t["http.target"])
            for t in wsgi] == [
        ("POST", "http", "/v2.1/servers?limit=1"),
        ("POST", "http", "/v3/volumes?flavor=m1.small")]
    assert wsgi[1]["osprofiler.parent_id"] == http["osprofiler.trace_id"]
    [schedule] = [t for name, t in tags if name == "compute-schedule"]
    assert schedule["code.function"].endswith(".schedule")
    assert schedule["osprofiler.function.args"] == "('m1.small',)"
    assert schedule["osprofiler.function.kwargs"] == "{}"
    assert schedule["osprofiler.result"] == "202"
    assert schedule["osprofiler.trace_id"] == [
        e for e in raw if e["name"] == "compute-schedule-start"][0][
        "trace_id"]
    db = [t for name, t in tags if name == "db"]
    assert [(t["db.statement"], t["osprofiler.db.params"]) for t in db] == [
        ("SELECT ?", "[1]"), ("SELECT * FROM missing", "[]")]
    assert ["error" in t for t in db] == [False, True]
    assert not any("osprofiler.open" in t or "osprofiler.orphan" in t
                   for _, t in tags)


def test_open_stop_only_and_orphan_spans():
    base_id, raw = cross_service_request()
    by_name = {}
    for event in raw:
        by_name.setdefault(event["name"], []).append(event)
    root_stop = [e for e in by_name["wsgi-stop"]
                 if e["parent_id"] == base_id][0]
    lost_start = by_name["db-start"][0]
    lost_parent = by_name["compute-schedule-start"][0]["trace_id"]
    kept = [e for e in raw if e is not root_stop and e is not lost_start
            and e["trace_id"] != lost_parent]
    root = expected_span_id(root_stop["trace_id"])
    stop_only = expected_span_id(lost_start["trace_id"])
    orphan = expected_span_id(by_name["http-start"][0]["trace_id"])
    start_of = {expected_span_id(e["trace_id"]): microseconds(e["timestamp"])
                for e in raw if e["name"].endswith("-start")}
    stop_of = {expected_span_id(e["trace_id"]): microseconds(e["timestamp"])
               for e in raw if e["name"].endswith("-stop")}

    [trace] = export("jaeger", base_id, kept)["data"]
    jaeger = {s["spanID"]: s for s in trace["spans"]}
    assert len(jaeger) == 5
    tags = {i: {t["key"]: t["value"] for t in s["tags"]}
            for i, s in jaeger.items()}
    assert (jaeger[root]["startTime"], jaeger[root]["duration"]) == \
        (start_of[root], 0)
    assert tags[root]["osprofiler.open"] is True
    assert (jaeger[stop_only]["startTime"], jaeger[stop_only]["duration"]) \
        == (stop_of[stop_only], 0)
    assert tags[stop_only]["osprofiler.missing_start"] is True
    assert jaeger[orphan]["references"] == [
        {"refType": "CHILD_OF", "traceID": trace["traceID"],
         "spanID": expected_span_id(lost_parent)}]
    assert tags[orphan]["osprofiler.orphan"] is True
    assert [i for i in tags if "osprofiler.orphan" in tags[i]] == [orphan]
    assert [i for i in tags if "osprofiler.open" in tags[i]] == [root]

    zipkin = {s["id"]: s for s in export("zipkin", base_id, kept)}
    assert zipkin[root]["timestamp"] == start_of[root]
    assert "duration" not in zipkin[root]
    assert zipkin[root]["tags"]["osprofiler.open"] == "true"
    assert "timestamp" not in zipkin[stop_only]
    assert "duration" not in zipkin[stop_only]
    assert zipkin[stop_only]["annotations"] == [
        {"timestamp": stop_of[stop_only], "value": "stop"}]
    assert zipkin[orphan]["parentId"] == expected_span_id(lost_parent)
    assert zipkin[orphan]["duration"] == stop_of[orphan] - start_of[orphan]

    otlp = {s["spanId"]: s
            for r in export("otlp", base_id, kept)["resourceSpans"]
            for s in r["scopeSpans"][0]["spans"]}
    assert otlp[root]["startTimeUnixNano"] == \
        otlp[root]["endTimeUnixNano"] == str(start_of[root] * 1000)
    assert {"key": "osprofiler.open", "value": {"boolValue": True}} in \
        otlp[root]["attributes"]
    assert otlp[stop_only]["startTimeUnixNano"] == \
        otlp[stop_only]["endTimeUnixNano"] == str(stop_of[stop_only] * 1000)
    assert otlp[orphan]["parentSpanId"] == expected_span_id(lost_parent)


def test_other_info_errors_without_message_and_wide_numbers():
    def scenario():
        with profiler.Trace("rpc", info={"call": {"method": "build"},
                                         "attempt": 2, "ratio": 0.5,
                                         "huge": 2 ** 70, "empty": ""}):
            try:
                with profiler.Trace("boom"):
                    raise RuntimeError()
            except RuntimeError:
                pass

    base_id, raw = reference.capture(scenario)
    tags = dict(jaeger_tags(base_id, raw))
    assert tags["rpc"]["osprofiler.info.call"] == '{"method": "build"}'
    assert tags["rpc"]["osprofiler.info.attempt"] == 2
    assert tags["rpc"]["osprofiler.info.ratio"] == 0.5
    # stored as text: beyond the int64 that Jaeger and OTLP numbers hold
    assert tags["rpc"]["osprofiler.info.huge"] == str(2 ** 70)
    assert "osprofiler.info.empty" not in tags["rpc"]
    assert "osprofiler.info.host" not in tags["rpc"]
    assert tags["boom"]["error.kind"] == "RuntimeError"
    assert "error.message" not in tags["boom"]
    otlp = export("otlp", base_id, raw)
    [resource] = otlp["resourceSpans"]
    boom = [s for s in resource["scopeSpans"][0]["spans"]
            if s["name"] == "boom"][0]
    assert boom["status"] == {"code": 2, "message": "RuntimeError"}
    assert boom["parentSpanId"] == [s["spanId"] for s in resource[
        "scopeSpans"][0]["spans"] if s["name"] == "rpc"][0]
    zipkin = export("zipkin", base_id, raw)
    assert {s["name"]: s["tags"].get("osprofiler.info.ratio")
            for s in zipkin} == {"rpc": "0.5", "boom": None}


def parents_and_tags(fmt, document):
    """{span id: (parent span id or None, {tag key: value})}."""
    if fmt == "jaeger":
        [trace] = document["data"]
        return {s["spanID"]: (
            s["references"][0]["spanID"] if s["references"] else None,
            {t["key"]: t["value"] for t in s["tags"]})
            for s in trace["spans"]}
    if fmt == "zipkin":
        return {s["id"]: (s.get("parentId"), s["tags"]) for s in document}
    return {s["spanId"]: (s.get("parentSpanId"),
                          {a["key"]: a["value"] for a in s["attributes"]})
            for r in document["resourceSpans"]
            for s in r["scopeSpans"][0]["spans"]}


def test_a_span_detached_from_a_parent_loop_has_no_parent():
    base_id, raw, ids = loop_trace()
    short = {name: expected_span_id(trace_id)
             for name, trace_id in ids.items()}
    lost = [e["parent_id"] for e in raw if e["trace_id"] == ids["d"]][0]
    for fmt in EXPORTS:
        exported = parents_and_tags(fmt, export(fmt, base_id, raw))
        parents = {span_id: parent for span_id, (parent, _) in
                   exported.items()}
        # a, the earliest of the loop, is cut from b; the rest is as sent
        assert parents == {short["a"]: None, short["b"]: short["a"],
                           short["c"]: short["b"], short["root"]: None,
                           short["d"]: expected_span_id(lost)}, fmt
        orphans = {span_id for span_id, (_, tags) in exported.items()
                   if "osprofiler.orphan" in tags}
        assert orphans == {short["a"], short["d"]}, fmt
        # the loop stays readable in the tags
        assert [tags["osprofiler.parent_id"] for span_id, (_, tags)
                in exported.items() if span_id == short["a"]] == \
            [{"stringValue": ids["b"]} if fmt == "otlp" else ids["b"]]


def test_info_entries_that_are_not_mappings_are_plain_tags():
    base_id = payloads.new_id()
    raw = []
    for name, entries in (("wsgi", {"request": "GET /"}),
                          ("http", {"requests": ["GET", "x.example"]}),
                          ("db", {"db": "SELECT 1"}),
                          ("rpc", {"function": "nova.rpcapi.x"})):
        start, stop = payloads.call(name, base_id, base_id, 0, 1)
        start["info"].update(entries)
        if name == "db":
            stop["info"]["function"] = 7
        raw += [start, stop]
    tags = dict(jaeger_tags(base_id, raw))
    assert tags["wsgi"]["osprofiler.info.request"] == "GET /"
    assert tags["http"]["osprofiler.info.requests"] == \
        '["GET", "x.example"]'
    assert tags["db"]["osprofiler.info.db"] == "SELECT 1"
    assert tags["rpc"]["osprofiler.info.function"] == "nova.rpcapi.x"
    assert tags["db"]["osprofiler.info.function"] == 7  # from the stop
    for name in ("wsgi", "http", "db", "rpc"):
        assert not {"span.kind", "http.method", "db.statement",
                    "code.function"} & set(tags[name]), name
    zipkin = export("zipkin", base_id, raw)
    assert [s.get("kind") for s in zipkin] == [None] * 4
    assert {s["name"]: s["tags"].get("osprofiler.info.request")
            for s in zipkin}["wsgi"] == "GET /"
    otlp = export("otlp", base_id, raw)
    [resource] = otlp["resourceSpans"]
    assert [s["kind"] for s in resource["scopeSpans"][0]["spans"]] == \
        [1] * 4  # internal
