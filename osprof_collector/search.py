"""Trace searches by service name, span name, time, duration and tags.

What the HTTP API asks of the store, in the terms of its exports: a
service is the name render/exports.py gives a span's (project, service)
label, so a name may stand for several labels ("a-b" for project "a",
service "b" and for project "a-b" alone). Every search goes through the
storage contract's indexed reads; tags, which the store does not index,
are matched on the spans of at most TAG_SEARCH_DEPTH candidate traces.
"""

import dataclasses
import datetime

from osprof_collector.render import exports
from osprof_collector.storage import base

TAG_SEARCH_DEPTH = 1000


@dataclasses.dataclass
class TraceQuery:
    """Traces with a span of service (and span_name) started within since
    and until, and lasting from min_duration_us to max_duration_us. With
    no service nor span name, the durations bound the whole trace's."""

    since: datetime.datetime
    until: datetime.datetime
    limit: int
    service: str | None = None
    span_name: str | None = None
    min_duration_us: int | None = None
    max_duration_us: int | None = None
    # Each term: (key, value) for a tag's value, (word, None) for a tag
    # key or an annotation; a trace matches if each term has a span.
    terms: list = dataclasses.field(default_factory=list)


def label_name(label):
    project, service = label
    return exports.service_name(project, service)


def services(store):
    """Every service name, sorted."""
    return sorted({label_name(label) for label in store.span_labels()})


def labels_named(store, name):
    return [label for label in store.span_labels()
            if label_name(label) == name]


def span_names(store, service):
    """The sorted span names of one service ([] if it is unknown)."""
    return sorted({name for label in labels_named(store, service)
                   for name in store.span_names(label)})


def find_traces(store, query):
    """(base_id, spans) of each trace query finds, newest first."""
    depth = TAG_SEARCH_DEPTH if query.terms else query.limit
    found = []
    for base_id in _candidates(store, query, depth):
        spans = store.get_spans(base_id)
        if not spans:  # purged since it was found
            continue
        if query.terms and not _has_terms(
                exports.zipkin_spans(base_id, spans), query):
            continue
        found.append((base_id, spans))
        if len(found) == query.limit:
            break
    return found


def _candidates(store, query, limit):
    """base_ids newest first: through the spans of the service (or span
    name) when the query names one, else through the trace summaries.
    Traces found through several labels are ordered by their start."""
    if query.service is None and query.span_name is None:
        durations = {
            key: None if us is None else us / 1000 for key, us in (
                ("min_duration_ms", query.min_duration_us),
                ("max_duration_ms", query.max_duration_us))}
        return [summary.base_id for summary in store.list_traces(
            base.TraceFilter(since=query.since, until=query.until,
                             **durations), limit)]
    if query.service is not None:
        labels = labels_named(store, query.service)
    else:
        labels = store.span_labels()
    found = [store.find_traces(base.SpanSearch(
        label=label, name=query.span_name, since=query.since,
        until=query.until, min_duration_us=query.min_duration_us,
        max_duration_us=query.max_duration_us), limit) for label in labels]
    if len(found) == 1:  # newest matching span first, as the store says
        return found[0]
    return _newest(store, {b for base_ids in found for b in base_ids})[:limit]


def _newest(store, base_ids):
    """base_ids newest trace first (those of several labels mix)."""
    summaries = [s for s in map(store.get_trace, base_ids) if s is not None]
    summaries.sort(key=lambda s: (s.started_at or datetime.datetime.min,
                                  s.base_id), reverse=True)
    return [s.base_id for s in summaries]


def _has_terms(zipkin_spans, query):
    """Whether each term is met by a span (of query.service, if set)."""
    spans = [span for span in zipkin_spans
             if query.service is None
             or span.get("localEndpoint", {}).get("serviceName")
             == query.service]
    return all(any(_meets(span, key, value) for span in spans)
               for key, value in query.terms)


def _meets(span, key, value):
    tags = span.get("tags", {})
    if value is not None:
        return tags.get(key) == value
    return key in tags or any(annotation["value"] == key for annotation
                              in span.get("annotations", ()))


def service_links(store, since, until):
    """[(parent service, child service, calls, errors)] by service name,
    sorted."""
    calls = {}
    for link in store.service_links(since, until):
        pair = (label_name(link.parent), label_name(link.child))
        if pair[0] == pair[1]:
            continue
        known = calls.get(pair, (0, 0))
        calls[pair] = (known[0] + link.calls, known[1] + link.errors)
    return [(parent, child, count, errors)
            for (parent, child), (count, errors) in sorted(calls.items())]
