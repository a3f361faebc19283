"""Spans of one trace → call tree and stats, in osprofiler's report shape.

The report is what osprofiler's Driver._append_results() + _parse_results()
return for the same events (same nodes, ids, nesting, millisecond offsets,
exception, meta.raw_payload.<event name>, stats), with these differences:
names keep their dashes ("cinder-volume", where osprofiler cuts at the first
dash), and extra keys say which spans are open (no stop yet) or orphans
(their parent is neither the trace nor a known span); orphans are placed at
the top level, as osprofiler does with any unknown parent.
"""


def _msec(delta):
    # osprofiler's arithmetic: microseconds, truncated to whole milliseconds
    return int((delta.microseconds + (delta.seconds + delta.days * 86400)
                * 1e6) / 1000.0)


def build_report(base_id, spans):
    """The osprofiler-compatible report of one trace's spans."""
    timestamps = [t for s in spans for t in (s.started_at, s.finished_at)
                  if t is not None]
    starts = [s.started_at for s in spans if s.started_at is not None]
    first = min(timestamps) if timestamps else None
    nodes = {}
    stats = {}
    for span in spans:
        node = _node(span, first)
        nodes[span.trace_id] = node
        entry = stats.setdefault(span.name, {"count": 0, "duration": 0})
        entry["count"] += 1
        entry["duration"] += node["info"]["finished"] - node["info"]["started"]
    roots = []
    for node in nodes.values():
        parent = nodes.get(node["parent_id"])
        if parent is not None:
            parent["children"].append(node)
        else:
            node["orphan"] = node["parent_id"] != base_id
            roots.append(node)
    roots.extend(_break_cycles(nodes, roots))
    for node in nodes.values():
        node["children"].sort(key=_started)
    roots.sort(key=_started)
    open_count = sum(node["open"] for node in nodes.values())
    orphan_count = sum(node["orphan"] for node in nodes.values())
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
        "open_spans": open_count,
        "orphans": orphan_count,
    }


def _break_cycles(nodes, roots):
    """Spans whose parents lead back to themselves hang under no root:
    detach one span of each such loop and return it as an orphan root, so
    that every span is shown."""
    reached = {node["trace_id"] for node, _ in walk({"children": roots})}
    new_roots = []
    for node in sorted(nodes.values(), key=_started):
        if node["trace_id"] in reached:
            continue
        nodes[node["parent_id"]]["children"].remove(node)
        node["orphan"] = True
        new_roots.append(node)
        reached.update(n["trace_id"]
                       for n, _ in walk({"children": [node]}))
    return new_roots


def _started(node):
    return node["info"]["started"]


def _node(span, first):
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
        info["exception"] = str((span.stop_payload.get("info") or {})
                                .get("etype", "None"))
    return {"info": info, "trace_id": span.trace_id,
            "parent_id": span.parent_id, "children": [],
            "open": span.finished_at is None, "orphan": False}


def walk(report):
    """Every node of a report, depth first, with its depth (roots: 0)."""
    stack = [(node, 0) for node in reversed(report["children"])]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1)
                     for child in reversed(node["children"]))
