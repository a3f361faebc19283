"""Jaeger query's HTTP API, as Grafana's Jaeger data source reads it:
the legacy /api endpoints in their {data, total, limit, offset, errors}
envelope, and the /api/v3 ones with OTLP/JSON traces.

Spans are render/exports.py's Jaeger and OTLP spans. Operations carry no
span kind ("" for all): the store does not index it.
"""

import datetime

from osprof_collector.api import params
from osprof_collector.api import responses
from osprof_collector.render import exports
from osprof_collector import search

DEFAULT_LIMIT = 100  # jaeger-query's


# -- legacy ---------------------------------------------------------------

def services(request, context):
    return responses.jaeger(search.services(context.store))


def service_operations(request, context, service):
    return responses.jaeger(search.span_names(context.store, service))


def operations(request, context):
    service = params.text(request, "service", required=True)
    return responses.jaeger([{"name": name, "spanKind": ""} for name in
                             search.span_names(context.store, service)])


def traces(request, context):
    end_us = params.integer(request, "end")
    start_us = params.integer(request, "start")
    until = params.from_epoch_us(end_us) if end_us is not None else _now()
    since = (params.from_epoch_us(start_us) if start_us is not None
             else until - datetime.timedelta(milliseconds=context.lookback_ms))
    query = _query(
        request, since, until, "service", "operation", "minDuration",
        "maxDuration", params.limit(request, DEFAULT_LIMIT),
        params.json_tags(request, "tags"))
    return responses.jaeger([
        _jaeger_trace(base_id, spans)
        for base_id, spans in search.find_traces(context.store, query)])


def trace(request, context, trace_id):
    base_id = params.padded_base_id(trace_id)
    body = context.answers.body(
        "jaeger", base_id, lambda spans: responses.jaeger_envelope(
            [_jaeger_trace(base_id, spans)]))
    if body is None:
        return responses.jaeger_error(404, "trace not found")
    return responses.encoded(body)


def dependencies(request, context):
    now_ms = (_now() - params.EPOCH) // datetime.timedelta(milliseconds=1)
    end_ms = params.integer(request, "endTs", default=now_ms, minimum=1)
    lookback_ms = params.integer(request, "lookback",
                                 default=context.lookback_ms)
    return responses.jaeger([
        {"parent": parent, "child": child, "callCount": calls}
        for parent, child, calls, _ in search.service_links(
            context.store, params.from_epoch_ms(max(0, end_ms - lookback_ms)),
            params.from_epoch_ms(end_ms))])


ROUTES = [
    ("/api/services", services),
    ("/api/services/{service}/operations", service_operations),
    ("/api/operations", operations),
    ("/api/traces", traces),
    ("/api/traces/{trace_id}", trace),
    ("/api/dependencies", dependencies),
]


# -- api_v3 ---------------------------------------------------------------

def v3_services(request, context):
    return responses.json({"services": search.services(context.store)})


def v3_operations(request, context):
    service = params.text(request, "service", required=True)
    return responses.json({"operations": [
        {"name": name, "spanKind": ""}
        for name in search.span_names(context.store, service)]})


def v3_traces(request, context):
    since = params.rfc3339(request, "query.start_time_min")
    until = params.rfc3339(request, "query.start_time_max")
    if since is None or until is None:
        raise params.BadRequest("query.start_time_min and "
                                "query.start_time_max are required")
    limit = params.limit(request, DEFAULT_LIMIT)
    for name in ("query.search_depth", "query.num_traces"):
        limit = params.integer(request, name, limit, minimum=1,
                               maximum=params.MAX_LIMIT)
    query = _query(
        request, since, until, "query.service_name", "query.operation_name",
        "query.duration_min", "query.duration_max", limit,
        params.json_tags(request, "query.attributes"))
    return responses.json(_otlp_document(
        search.find_traces(context.store, query)))


def v3_trace(request, context, trace_id):
    base_id = params.padded_base_id(trace_id)
    body = context.answers.body(
        "otlp", base_id, lambda spans: _otlp_document([(base_id, spans)]))
    if body is None:
        return responses.v3_error(404, "trace not found")
    return responses.encoded(body)


V3_ROUTES = [
    ("/api/v3/services", v3_services),
    ("/api/v3/operations", v3_operations),
    ("/api/v3/traces", v3_traces),
    ("/api/v3/traces/{trace_id}", v3_trace),
]


def _query(request, since, until, service, operation, min_duration,
           max_duration, limit, terms):
    """The TraceQuery of a search, its parameters named as given."""
    min_us = params.go_duration_us(request, min_duration)
    max_us = params.go_duration_us(request, max_duration)
    if None not in (min_us, max_us) and max_us < min_us:
        raise params.BadRequest(f"{max_duration} is less than "
                                f"{min_duration}")
    if until < since:
        raise params.BadRequest("the search ends before it starts")
    return search.TraceQuery(
        since=since, until=until, limit=limit,
        service=params.text(request, service, required=True),
        span_name=params.text(request, operation),
        min_duration_us=min_us, max_duration_us=max_us, terms=terms)


def _jaeger_trace(base_id, spans):
    return {**exports.jaeger_trace(base_id, spans), "warnings": None}


def _otlp_document(traces):
    """Jaeger api_v3's answer: the traces' OTLP/JSON under "result"."""
    return {"result": {"resourceSpans": [
        resource for base_id, spans in traces
        for resource in exports.otlp_resource_spans(base_id, spans)]}}


def _now():
    return datetime.datetime.utcnow()
