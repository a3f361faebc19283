"""Events → spans: one span per trace_id, merged from its start and stop.

A span built from a single event is partial (only its start or only its
stop is known). Partial spans of the same trace_id merge by keeping, for
every field, the value that is known; the storage drivers apply the same
rule as an upsert, so any number of deliveries, in any order, by any worker,
end up as one span.
"""

import dataclasses
import datetime


@dataclasses.dataclass(slots=True)
class Span:
    trace_id: str
    base_id: str
    parent_id: str
    name: str
    project: str | None = None
    service: str | None = None
    host: str | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    error: dict | None = None  # {"etype": ..., "message": ...}
    start_payload: dict | None = None
    stop_payload: dict | None = None
    # The payloads as JSON text, when parsing already encoded them.
    start_json: str | None = dataclasses.field(
        default=None, compare=False, repr=False)
    stop_json: str | None = dataclasses.field(
        default=None, compare=False, repr=False)

    @property
    def is_open(self):
        return self.finished_at is None

    # Both are read for every span a batch writes: no generator here.
    @property
    def first_seen(self):
        started, finished = self.started_at, self.finished_at
        if started is None or (finished is not None and finished < started):
            return finished
        return started

    @property
    def last_seen(self):
        started, finished = self.started_at, self.finished_at
        if finished is None or (started is not None and started > finished):
            return started
        return finished

    def merge(self, other):
        """Fold another partial span of the same trace_id into this one."""
        for field in MERGED_FIELDS:
            value = getattr(other, field)
            if value is not None and getattr(self, field) is None:
                setattr(self, field, value)
        return self


MERGED_FIELDS = tuple(f.name for f in dataclasses.fields(Span))


def from_event(event):
    span = Span(trace_id=event.trace_id, base_id=event.base_id,
                parent_id=event.parent_id, name=event.name)
    _add_event(span, event)
    return span


def _add_event(span, event):
    """Fill what the event knows and the span does not yet."""
    if event.phase == "start":
        if span.started_at is None:
            span.started_at = event.timestamp
            span.start_payload = event.payload
            span.start_json = event.payload_json
    elif span.finished_at is None:
        span.finished_at = event.timestamp
        span.stop_payload = event.payload
        span.stop_json = event.payload_json
        if "etype" in event.info:
            span.error = {"etype": str(event.info["etype"]),
                          "message": event.info.get("message")}
    for field in ("project", "service", "host"):
        if getattr(span, field) is None:
            setattr(span, field, getattr(event, field))


def pair(events):
    """Merge a batch of events into as few spans as possible."""
    by_trace_id = {}
    for event in events:
        span = by_trace_id.get(event.trace_id)
        if span is None:
            by_trace_id[event.trace_id] = from_event(event)
        else:
            _add_event(span, event)
    return list(by_trace_id.values())


def merge_by_trace_id(partial_spans):
    """One span per trace_id; the given spans are left unchanged."""
    by_trace_id = {}
    merged = set()  # trace_ids whose entry is already a copy of our own
    for span in partial_spans:
        known = by_trace_id.get(span.trace_id)
        if known is None:
            by_trace_id[span.trace_id] = span
            continue
        if span.trace_id not in merged:
            known = by_trace_id[span.trace_id] = dataclasses.replace(known)
            merged.add(span.trace_id)
        known.merge(span)
    return list(by_trace_id.values())
