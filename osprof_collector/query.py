"""Spans of one trace → call tree and stats, in osprofiler's report shape.

The report is what osprofiler's Driver._append_results() + _parse_results()
return for the same events (same nodes, ids, nesting, millisecond offsets,
exception, meta.raw_payload.<event name>, stats), with these differences:
names keep their dashes ("cinder-volume", where osprofiler cuts at the first
dash), and extra keys say which spans are open (no stop yet), which lack
their start (the start event never arrived: placed at their stop, with no
duration) and which are orphans (their parent is neither the trace nor a
known span, or their parents loop back to them); orphans are placed at the
top level, as osprofiler does with any unknown parent.
"""

import dataclasses
import datetime


@dataclasses.dataclass
class Tree:
    """One trace's spans as a call tree, each span in it exactly once."""

    roots: list  # top-level spans in the order given, detached ones last
    children: dict  # trace_id → the spans right under it, in given order
    orphans: set  # trace_ids of top-level spans whose parent is not the
    # trace: an unknown span, or one of their own descendants (a loop)
    detached: set  # the orphans of the second kind, cut from their parent
    first: datetime.datetime | None  # earliest known moment of the trace


def tree(base_id, spans):
    """The call tree of one trace's spans: what every output builds on.

    A span hangs under its parent when the parent is a known span, else at
    the top level (an orphan unless its parent is the trace). Spans whose
    parents lead back to themselves would hang under no top-level span:
    the earliest span of each such loop is detached to the top level as
    an orphan, so that every span is shown and no walk runs in circles.
    """
    children = {span.trace_id: [] for span in spans}
    roots = []
    for span in spans:
        if span.parent_id in children:
            children[span.parent_id].append(span)
        else:
            roots.append(span)
    orphans = {s.trace_id for s in roots if s.parent_id != base_id}
    reached = _below(roots, children)
    detached = set()
    for span in sorted((s for s in spans if s.trace_id not in reached),
                       key=_moment):
        if span.trace_id in reached:  # below a span detached before
            continue
        children[span.parent_id].remove(span)
        roots.append(span)
        detached.add(span.trace_id)
        reached |= _below([span], children)
    moments = [t for s in spans for t in (s.started_at, s.finished_at)
               if t is not None]
    return Tree(roots=roots, children=children, orphans=orphans | detached,
                detached=detached, first=min(moments, default=None))


def _below(tops, children):
    """trace_ids of the given spans and of all their descendants."""
    found, stack = set(), list(tops)
    while stack:
        span = stack.pop()
        found.add(span.trace_id)
        stack.extend(children[span.trace_id])
    return found


def _moment(span):
    return span.started_at or span.finished_at


def where(service, host):
    """The "service@host" label of a span, as every output spells it."""
    return f"{service or '?'}@{host or '?'}"


def _msec(delta):
    # osprofiler's arithmetic: microseconds, truncated to whole milliseconds
    return int((delta.microseconds + (delta.seconds + delta.days * 86400)
                * 1e6) / 1000.0)


def build_report(base_id, spans):
    """The osprofiler-compatible report of one trace's spans."""
    shape = tree(base_id, spans)
    first = shape.first
    timestamps = [t for s in spans for t in (s.started_at, s.finished_at)
                  if t is not None]
    starts = [s.started_at for s in spans if s.started_at is not None]
    nodes = {}
    stats = {}
    for span in spans:
        node = _node(span, first, span.trace_id in shape.orphans)
        nodes[span.trace_id] = node
        entry = stats.setdefault(span.name, {"count": 0, "duration": 0})
        entry["count"] += 1
        entry["duration"] += node["info"]["finished"] - node["info"]["started"]
    for trace_id, below in shape.children.items():
        nodes[trace_id]["children"] = sorted(
            (nodes[child.trace_id] for child in below), key=_started)
    roots = sorted((nodes[span.trace_id] for span in shape.roots),
                   key=_started)
    return {
        "info": {
            "name": "total",
            "started": 0,
            "finished": _msec(max(timestamps) - first) if first else None,
            "last_trace_started": _msec(max(starts) - first)
            if starts else None,
        },
        "children": roots,
        "stats": stats,
        "base_id": base_id,
        "span_count": len(nodes),
        "open_spans": sum(node["open"] for node in nodes.values()),
        "start_missing": sum(node["start_missing"]
                             for node in nodes.values()),
        "orphans": len(shape.orphans),
    }


def _started(node):
    return node["info"]["started"]


def _node(span, first, orphan):
    started = span.started_at or span.finished_at
    finished = span.finished_at or span.started_at
    info = {"name": span.name, "project": span.project,
            "service": span.service, "host": span.host,
            "started": _msec(started - first),
            "finished": _msec(finished - first)}
    for payload in (span.start_payload, span.stop_payload):
        if payload is not None:
            info[f"meta.raw_payload.{payload['name']}"] = payload
    if span.stop_payload is not None:
        stop = span.stop_payload.get("info")
        etype = stop.get("etype") if isinstance(stop, dict) else None
        info["exception"] = str("None" if etype is None else etype)
    return {"info": info, "trace_id": span.trace_id,
            "parent_id": span.parent_id, "children": [],
            "open": span.finished_at is None,
            "start_missing": span.started_at is None, "orphan": orphan}


def walk(report):
    """Every node of a report, depth first, with its depth (roots: 0)."""
    stack = [(node, 0) for node in reversed(report["children"])]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1)
                     for child in reversed(node["children"]))
