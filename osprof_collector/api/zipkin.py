"""Zipkin's v2 read API (zipkin2-api.yaml), as Grafana's Zipkin data
source reads it: services, span names, trace searches, traces by id,
dependency links.

Spans are render/exports.py's Zipkin spans, plus one rule of the views
that read them: a trace has exactly one span without a parent (Grafana
names a search result after it). A trace with several top-level spans,
or none (only orphans), gets a root span spanning all of them, whose id
is the low 64 bits of the base_id, tagged osprofiler.synthetic_root.
"""

import datetime

from osprof_collector.api import params
from osprof_collector.api import responses
from osprof_collector.render import exports
from osprof_collector import search

DEFAULT_LIMIT = 10


def services(request, context):
    return responses.json(search.services(context.store))


def span_names(request, context):
    service = params.text(request, "serviceName", required=True)
    return responses.json(search.span_names(context.store, service))


def remote_services(request, context):
    params.text(request, "serviceName", required=True)
    # osprofiler spans carry no remote endpoint: there is none to list.
    return responses.json([])


def traces(request, context):
    min_us = params.integer(request, "minDuration")
    max_us = params.integer(request, "maxDuration")
    if max_us is not None and min_us is None:
        raise params.BadRequest("maxDuration is only valid with minDuration")
    if max_us is not None and max_us < min_us:
        raise params.BadRequest("maxDuration is less than minDuration")
    since, until = _window(request, context)
    query = search.TraceQuery(
        since=since, until=until,
        limit=params.limit(request, DEFAULT_LIMIT),
        service=params.text(request, "serviceName"),
        span_name=params.text(request, "spanName"),
        min_duration_us=min_us, max_duration_us=max_us,
        terms=annotation_terms(params.text(request, "annotationQuery")))
    return responses.json([
        trace_spans(base_id, spans)
        for base_id, spans in search.find_traces(context.store, query)])


def trace(request, context, trace_id):
    body = _trace_body(context, params.base_id(trace_id))
    if body is None:
        return responses.not_found(f"Trace {trace_id} not found")
    return responses.encoded(body)


def trace_many(request, context):
    given = params.text(request, "traceIds", required=True).split(",")
    base_ids = [params.base_id(hex_id) for hex_id in given]
    if len(set(base_ids)) < 2 or len(set(given)) < len(given):
        raise params.BadRequest("traceIds must list at least two different "
                                "trace ids, each once")
    found = [_trace_body(context, base_id) for base_id in base_ids]
    return responses.encoded(
        b"[" + b",".join(body for body in found if body is not None) + b"]")


def _trace_body(context, base_id):
    """The encoded Zipkin spans of a trace; None if unknown."""
    return context.answers.body("zipkin", base_id,
                                lambda spans: trace_spans(base_id, spans))


def dependencies(request, context):
    if params.integer(request, "endTs") is None:
        raise params.BadRequest("endTs is required")
    since, until = _window(request, context)
    return responses.json([
        {"parent": parent, "child": child, "callCount": calls,
         "errorCount": errors}
        for parent, child, calls, errors in search.service_links(
            context.store, since, until)])


def autocomplete_keys(request, context):
    # None configured, as Zipkin's AUTOCOMPLETE_KEYS by default.
    return responses.json([])


def autocomplete_values(request, context):
    params.text(request, "key", required=True)
    return responses.json([])


ROUTES = [
    ("/api/v2/services", services),
    ("/api/v2/spans", span_names),
    ("/api/v2/remoteServices", remote_services),
    ("/api/v2/traces", traces),
    ("/api/v2/trace/{trace_id}", trace),
    ("/api/v2/traceMany", trace_many),
    ("/api/v2/dependencies", dependencies),
    ("/api/v2/autocompleteKeys", autocomplete_keys),
    ("/api/v2/autocompleteValues", autocomplete_values),
]


def _window(request, context):
    """(since, until) from endTs and lookback, epoch milliseconds."""
    now_ms = (datetime.datetime.utcnow() - params.EPOCH) // \
        datetime.timedelta(milliseconds=1)
    end_ms = params.integer(request, "endTs", default=now_ms, minimum=1)
    lookback_ms = params.integer(request, "lookback",
                                 default=context.lookback_ms)
    return (params.from_epoch_ms(max(0, end_ms - lookback_ms)),
            params.from_epoch_ms(end_ms))


def annotation_terms(annotation_query):
    """Zipkin's "http.method=GET and error" as [(key, value or None)]."""
    if annotation_query is None:
        return []
    terms = []
    for term in annotation_query.split(" and "):
        key, equals, value = term.strip().partition("=")
        if not key or (equals and not value):
            raise params.BadRequest(f"annotationQuery: cannot read "
                                    f"{term.strip()!r}")
        terms.append((key, value if equals else None))
    return terms


def trace_spans(base_id, spans):
    """The Zipkin spans of one trace, with exactly one parentless span."""
    exported = exports.zipkin_spans(base_id, spans)
    tops = [span for span in exported if "parentId" not in span]
    if len(tops) == 1:
        return exported
    root_id = exports.span_hex(base_id)
    for span in tops:
        span["parentId"] = root_id
    return [_root(base_id, root_id, tops or exported, exported), *exported]


def _root(base_id, root_id, tops, exported):
    """A span from the first moment of the trace to its last, named and
    placed as its first top-level span."""
    moments = []
    for span in exported:
        moments.extend(a["timestamp"] for a in span.get("annotations", ()))
        if "timestamp" in span:
            moments.append(span["timestamp"])
            moments.append(span["timestamp"] + span.get("duration", 0))
    first = tops[0]  # the exports list spans in start order
    root = {"traceId": first["traceId"], "id": root_id,
            "name": first.get("name", "trace")}
    if moments:
        root["timestamp"] = min(moments)
        root["duration"] = max(1, max(moments) - min(moments))
    root["localEndpoint"] = first.get("localEndpoint", {})
    root["tags"] = {"osprofiler.base_id": base_id,
                    "osprofiler.synthetic_root": "true"}
    return root
