"""One trace's spans as Jaeger, Zipkin v2 and OTLP/JSON trace documents.

Built from the spans rather than from the report, whose offsets are whole
milliseconds: these formats carry microseconds. Ids follow osprofiler's own
OTLP driver, so that a trace reads the same in every tool: the trace id is
the 128 bits of base_id, a span id the low 64 bits of its trace_id, and a
span whose parent_id is base_id has no parent. Spans are placed by
query.tree: orphans whose parent is unknown keep the parent id they were
sent with; a span detached from a parent loop (A→B→A) has none, so that
the exported tree has no cycle. Both are tagged osprofiler.orphan.
"""

import datetime
import json
import uuid

from osprof_collector import events
from osprof_collector import info
from osprof_collector import query

EPOCH = datetime.datetime(1970, 1, 1)  # span times are naive UTC
MICROSECOND = datetime.timedelta(microseconds=1)
SCOPE = "osprof-collector"
# info keys that become conventional tags below (those of osprofiler's
# hooks when they are mappings); any other is kept as osprofiler.info.<key>
MAPPED_INFO = {"host", "etype", "message"}
KIND = {info.SERVER: "server", info.HTTP: "client", info.DB: "client"}
ZIPKIN_KIND = {"server": "SERVER", "client": "CLIENT"}
OTLP_KIND = {None: 1, "server": 2, "client": 3}  # SPAN_KIND_INTERNAL ...
OTLP_STATUS_ERROR = 2


def trace_hex(base_id):
    return uuid.UUID(base_id).hex


def span_hex(trace_id):
    if events.CANONICAL_UUID.fullmatch(trace_id):  # as stored: 4x faster
        return trace_id[19:23] + trace_id[24:]
    return uuid.UUID(trace_id).hex[-16:]


def epoch_us(moment):
    return None if moment is None else (moment - EPOCH) // MICROSECOND


def jaeger(base_id, spans):
    """The JSON that Jaeger UI opens with "Upload JSON"."""
    return _dump({"data": [jaeger_trace(base_id, spans)]})


def jaeger_trace(base_id, spans):
    """The one trace of jaeger(), for the HTTP API to encode."""
    trace_id = trace_hex(base_id)
    processes = {}
    exported = []
    for span, span_id, parent, kind, tags in _described(base_id, spans):
        process_id = processes.setdefault(_resource(span),
                                          f"p{len(processes) + 1}")
        if kind is not None:
            tags = {"span.kind": kind, **tags}
        start, end = epoch_us(span.started_at), epoch_us(span.finished_at)
        exported.append({
            "traceID": trace_id,
            "spanID": span_id,
            "operationName": span.name,
            "references": [] if parent is None else [
                {"refType": "CHILD_OF", "traceID": trace_id,
                 "spanID": parent}],
            "startTime": end if start is None else start,
            "duration": 0 if None in (start, end) else end - start,
            "tags": [_jaeger_tag(k, v) for k, v in tags.items()],
            "logs": [],
            "processID": process_id,
            "flags": 1,  # sampled
        })
    return {
        "traceID": trace_id,
        "spans": exported,
        "processes": {
            process_id: {"serviceName": service, "tags": [
                _jaeger_tag(k, v) for k, v in
                _resource_tags(project, host).items()]}
            for (service, project, host), process_id in processes.items()},
    }


def zipkin(base_id, spans):
    """A Zipkin v2 span list, as POST /api/v2/spans takes it."""
    return _dump(zipkin_spans(base_id, spans))


def zipkin_spans(base_id, spans):
    """zipkin() as a list, for the HTTP API to encode."""
    trace_id = trace_hex(base_id)
    exported = []
    for span, span_id, parent, kind, tags in _described(base_id, spans):
        start, end = epoch_us(span.started_at), epoch_us(span.finished_at)
        entry = {"traceId": trace_id, "id": span_id}
        if parent is not None:
            entry["parentId"] = parent
        entry["name"] = span.name
        if start is not None:  # absent when the start event was lost
            entry["timestamp"] = start
            if end is not None:  # under 1 µs rounds up, as Zipkin asks
                entry["duration"] = max(1, end - start)
        elif end is not None:
            entry["annotations"] = [{"timestamp": end, "value": "stop"}]
        if kind is not None:
            entry["kind"] = ZIPKIN_KIND[kind]
        entry["localEndpoint"] = {"serviceName": service_name(
            span.project, span.service)}
        tags.update(_resource_tags(span.project, span.host))
        entry["tags"] = {k: v if type(v) is str else _text(v)
                         for k, v in tags.items()}
        exported.append(entry)
    return exported


def otlp(base_id, spans):
    """An OTLP/JSON ExportTraceServiceRequest, as POST /v1/traces takes
    it; one resource per (service, project, host)."""
    return _dump({"resourceSpans": otlp_resource_spans(base_id, spans)})


def otlp_resource_spans(base_id, spans):
    """The resourceSpans of otlp(), for the HTTP API to encode."""
    trace_id = trace_hex(base_id)
    by_resource = {}
    for span, span_id, parent, kind, tags in _described(base_id, spans):
        start, end = epoch_us(span.started_at), epoch_us(span.finished_at)
        start = end if start is None else start
        end = start if end is None else end
        entry = {"traceId": trace_id, "spanId": span_id}
        if parent is not None:
            entry["parentSpanId"] = parent
        entry.update({
            "name": span.name,
            "kind": OTLP_KIND[kind],
            "startTimeUnixNano": str(start * 1000),
            "endTimeUnixNano": str(end * 1000),
            "attributes": _otlp_attributes(tags),
            "status": {},  # unset
        })
        if span.error is not None:
            entry["status"] = {"code": OTLP_STATUS_ERROR,
                               "message": _error_text(span.error)}
        by_resource.setdefault(_resource(span), []).append(entry)
    return [
        {"resource": {"attributes": _otlp_attributes(
            {"service.name": service, **_resource_tags(project, host)})},
         "scopeSpans": [{"scope": {"name": SCOPE}, "spans": exported}]}
        for (service, project, host), exported in by_resource.items()]


def _described(base_id, spans):
    """(span, span id, parent span id or None, kind, tags) in start order;
    kind: server, client (an HTTP call or an SQL statement) or None."""
    shape = query.tree(base_id, spans)
    # Most spans share a parent: each id is converted once.
    hex_ids = {span.trace_id: span_hex(span.trace_id) for span in spans}
    for span in sorted(spans, key=_moment):
        top = span.parent_id == base_id or span.trace_id in shape.detached
        parent = None if top else (hex_ids.get(span.parent_id)
                                   or span_hex(span.parent_id))
        tags = {"osprofiler.trace_id": span.trace_id,
                "osprofiler.parent_id": span.parent_id}
        start = info.start_info(span)
        _add_info_tags(tags, start, info.stop_info(span))
        if span.error is not None:
            tags["error"] = True
            tags["error.kind"] = span.error["etype"]
            if span.error.get("message") is not None:
                tags["error.message"] = str(span.error["message"])
        if span.finished_at is None:
            tags["osprofiler.open"] = True  # no stop event (yet)
        if span.started_at is None:
            tags["osprofiler.missing_start"] = True
        if span.trace_id in shape.orphans:
            tags["osprofiler.orphan"] = True
        yield (span, hex_ids[span.trace_id], parent,
               KIND.get(info.kind(span, start)), tags)


def _moment(span):
    return span.started_at or span.finished_at, span.trace_id


def _resource(span):
    """(service name, project, host)."""
    return service_name(span.project, span.service), span.project, span.host


def service_name(project, service):
    """The service name of a span: osprofiler's OTLP driver's
    "<project>-<service>"."""
    name = "-".join(part for part in (project, service) if part)
    return name or "unknown_service"


def _resource_tags(project, host):
    tags = {}
    if project:
        tags["service.namespace"] = project
    if host:
        tags["host.name"] = host
    return tags


def _add_info_tags(tags, start, stop):
    """Conventional tags from what osprofiler's web, requests, sqlalchemy
    and function tracing put in info. A span carries one or two of these
    entries: the others, empty or not mappings (see info.entry()), are
    skipped."""
    request = start.get("request")
    if request and isinstance(request, dict):
        _put(tags, "http.method", request.get("method"))
        _put(tags, "http.scheme", request.get("scheme"))
        if request.get("path"):
            _put(tags, "http.target", _with_query(request["path"],
                                                  request.get("query")))
    requests = start.get("requests")
    if requests and isinstance(requests, dict):
        _put(tags, "http.method", requests.get("method"))
        if requests.get("scheme") and requests.get("hostname"):
            port = requests.get("port")
            tags["http.url"] = _with_query(
                f"{requests['scheme']}://{requests['hostname']}"
                f"{f':{port}' if port else ''}{requests.get('path') or ''}",
                requests.get("query"))
        _put(tags, "net.peer.name", requests.get("hostname"))
    if stop:
        _put(tags, "http.status_code", _field(stop, "requests",
                                              "status_code"))
    db = start.get("db")
    if db and isinstance(db, dict):
        _put(tags, "db.statement", db.get("statement"))
        if "params" in db:
            tags["osprofiler.db.params"] = _json(db["params"])
    function = start.get("function")
    if function and isinstance(function, dict):
        _put(tags, "code.function", function.get("name"))
        _put(tags, "osprofiler.function.args", function.get("args"))
        _put(tags, "osprofiler.function.kwargs", function.get("kwargs"))
    if stop:  # with hide_result=False
        _put(tags, "osprofiler.result", _field(stop, "db", "result"))
        _put(tags, "osprofiler.result", _field(stop, "function", "result"))
    for entries in (start, stop):
        for key, value in entries.items():
            if key in MAPPED_INFO or (key in info.HOOK_ENTRIES
                                      and isinstance(value, dict)):
                continue
            _put(tags, f"osprofiler.info.{key}", value)


def _field(entries, key, name):
    """info.entry(entries, key).get(name), in one call."""
    found = entries.get(key)
    return found.get(name) if isinstance(found, dict) else None


def _with_query(path, query_string):
    return f"{path}?{query_string}" if query_string else path


def _put(tags, key, value):
    """Tag values are strings, booleans, numbers (events.parse keeps
    integers within int64) or else the value's JSON text."""
    if value is None or value == "":
        return
    if isinstance(value, (str, bool, int, float)):
        tags[key] = value
    else:
        tags[key] = _json(value)


# The text of json.dumps(value, sort_keys=True, default=str). Its encode()
# builds a C encoder at every call, a third of its cost for a small value:
# this one is built once. Without the circular check, which no value
# decoded from JSON needs.
_JSON_ENCODER = json.JSONEncoder(sort_keys=True, default=str)
if json.encoder.c_make_encoder is None:  # no C accelerator
    _json = _JSON_ENCODER.encode
else:
    _C_ENCODER = json.encoder.c_make_encoder(
        None, _JSON_ENCODER.default, json.encoder.encode_basestring_ascii,
        None, _JSON_ENCODER.key_separator, _JSON_ENCODER.item_separator,
        True, False, True)  # sort_keys, skipkeys, allow_nan

    def _json(value):
        return "".join(_C_ENCODER(value, 0))


def _text(value):
    """A tag value as Zipkin's string tags spell it (JSON's booleans)."""
    if value is True:
        return "true"
    return "false" if value is False else str(value)


def _error_text(error):
    message = error.get("message")
    return error["etype"] if message is None else \
        f"{error['etype']}: {message}"


def _jaeger_tag(key, value):
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, int):
        kind = "int64"
    elif isinstance(value, float):
        kind = "float64"
    else:
        kind = "string"
    return {"key": key, "type": kind, "value": value}


def _otlp_attributes(tags):
    return [{"key": key, "value": _otlp_value(value)}
            for key, value in tags.items()]


def _otlp_value(value):
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):  # int64 is a decimal string in OTLP/JSON
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def _dump(document):
    return json.dumps(document, indent=2) + "\n"
