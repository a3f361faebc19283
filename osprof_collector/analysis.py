"""Where the time of one trace goes, and how two traces differ.

Pure functions over the spans of a trace (spans.Span): no storage access.
Times are milliseconds (floats, microsecond precision) after the first
timestamp of the trace.

A span is *timed* when both its start and its stop are known. Open spans
(no stop yet) and spans known only by their stop have no duration: they are
left out of every timing figure and counted as untimed; their timed
descendants hang from the nearest timed ancestor instead. Spans are placed
by query.tree, as in the report of query.build_report: orphans (parent
neither the trace nor a known span, or detached from a parent loop) are
top-level spans.

Every step is linear in the number of spans, or n log n where it sorts.
"""

import collections
import dataclasses
import datetime
import json
import re

from osprof_collector import info
from osprof_collector import query

# The same normalised statement this many times under one parent is
# flagged as an N+1 query pattern.
N_PLUS_ONE = 5


class Timed:
    """A timed span placed in the timing tree."""

    __slots__ = ("span", "start", "end", "clipped_start", "clipped_end",
                 "parent", "children", "depth")

    def __init__(self, span, start, end, parent, depth):
        self.span, self.start, self.end = span, start, end
        self.parent, self.depth, self.children = parent, depth, []
        # Inside the parent's own clipped interval, so that the critical
        # path of a child never runs past its parent.
        low, high = ((parent.clipped_start, parent.clipped_end)
                     if parent is not None else (start, end))
        self.clipped_start = min(max(start, low), high)
        self.clipped_end = max(min(end, high), self.clipped_start)

    @property
    def duration(self):
        return self.end - self.start


class Timeline:
    """The timed spans of a trace as a tree, and what could not be timed."""

    def __init__(self, base_id, spans):
        self.base_id = base_id
        self.spans = list(spans)
        self.by_id = {s.trace_id: s for s in self.spans}
        shape = query.tree(base_id, self.spans)
        self.first = shape.first
        self.untimed = [s for s in self.spans
                        if s.started_at is None or s.finished_at is None]
        self.orphans = len(shape.orphans)
        self.roots = []
        self.nodes = []
        self._build(shape)
        self.timed = {node.span.trace_id: node for node in self.nodes}
        if self.roots:
            self.start = min(n.start for n in self.roots)
            self.end = max(n.end for n in self.roots)
        else:
            self.start = self.end = 0.0

    def ms(self, moment):
        return (moment - self.first) / datetime.timedelta(milliseconds=1)

    def _build(self, shape):
        # Depth first from the top-level spans of the call tree.
        stack = [(span, None, 0) for span in reversed(shape.roots)]
        while stack:
            span, timed_parent, depth = stack.pop()
            below = timed_parent
            if span.started_at is not None and span.finished_at is not None:
                start = self.ms(span.started_at)
                end = max(self.ms(span.finished_at), start)
                below = Timed(span, start, end, timed_parent, depth)
                self.nodes.append(below)
                (timed_parent.children if timed_parent is not None
                 else self.roots).append(below)
            stack.extend((child, below, depth + 1)
                         for child in reversed(shape.children[span.trace_id]))


def analyze(base_id, spans, n_plus_one=N_PLUS_ONE):
    """Critical path, self time, repeated SQL, fan-out and clock skew."""
    timeline = Timeline(base_id, spans)
    return {
        "base_id": base_id,
        "span_count": len(spans),
        "timed_spans": len(timeline.nodes),
        "untimed_spans": len(timeline.untimed),
        "orphans": timeline.orphans,
        "duration_ms": _round(timeline.end - timeline.start),
        "critical_path": critical_path(timeline),
        "self_time": self_time(timeline),
        "sql": repeated_sql(timeline, n_plus_one),
        "fan_out": fan_out(timeline),
        "clock_skew": clock_skew(timeline),
    }


# -- critical path --------------------------------------------------------

def critical_path(timeline):
    """The spans that bound the end of the trace, and their share of it.

    Walking back from the end of a span: the child that finished last
    (before the point reached) bounds it, so the path descends into that
    child; once back at the child's start, the next child that finished
    before that point takes over; what no child covers is the span's own
    contribution. Children are clipped to their parent and each is looked
    at once, so overlapping and parallel children cost nothing extra and
    the contributions add up to the trace duration exactly.
    """
    total = timeline.end - timeline.start
    # The trace itself is the top of the walk; its own contribution is the
    # time no top-level span covers.
    top = _TraceTop(timeline)
    by_end = {}
    position = collections.Counter()
    shares = collections.defaultdict(float)
    on_path = []
    stack = [[top, top.end]]  # [node, point reached walking back]
    while stack:
        frame = stack[-1]
        node, point = frame
        if node not in by_end:
            by_end[node] = sorted(node.children, key=lambda c: -c.clipped_end)
            on_path.append(node)
        children = by_end[node]
        i = position[node]
        while i < len(children) and children[i].clipped_end > point:
            i += 1  # overlaps what is already on the path
        if i < len(children):
            child = children[i]
            position[node] = i + 1
            shares[node] += point - child.clipped_end
            frame[1] = child.clipped_start  # where the walk resumes here
            stack.append([child, child.clipped_end])
        else:
            shares[node] += point - node.clipped_start
            stack.pop()
    entries = [
        dict(_describe(node.span),
             depth=node.depth, started_ms=_round(node.start - top.start),
             duration_ms=_round(node.duration),
             self_ms=_round(shares[node]),
             percent=_percent(shares[node], total))
        for node in _in_tree_order(top, on_path)]
    return {"duration_ms": _round(total),
            "uncovered_ms": _round(shares[top]),
            "spans": entries}


def _in_tree_order(top, nodes):
    """The nodes below top, depth first, each level in order of start."""
    wanted = set(nodes)
    ordered = []
    stack = [top]
    while stack:
        node = stack.pop()
        if node is not top:
            ordered.append(node)
        below = sorted((c for c in node.children if c in wanted),
                       key=lambda c: (c.clipped_start, c.start))
        stack.extend(reversed(below))
    return ordered


class _TraceTop:
    """The whole trace as the parent of its top-level spans."""

    def __init__(self, timeline):
        self.children = timeline.roots
        self.clipped_start = self.start = timeline.start
        self.clipped_end = self.end = timeline.end


# -- self time ------------------------------------------------------------

def self_time(timeline):
    """Per span and per (service, name): time not spent in children."""
    spans = [dict(_describe(node.span), duration_ms=_round(node.duration),
                  self_ms=_round(_self_ms(node)))
             for node in timeline.nodes]
    spans.sort(key=lambda s: -s["self_ms"])
    rows = sorted(_groups(timeline).values(), key=lambda g: -g["self_ms"])
    for row in rows:
        row["total_ms"] = _round(row["total_ms"])
        row["self_ms"] = _round(row["self_ms"])
    return {"groups": rows, "spans": spans}


def _self_ms(node):
    return node.duration - _covered(node)


def _covered(node):
    """Length of the union of the children's intervals inside the node."""
    intervals = sorted((max(c.start, node.start), min(c.end, node.end))
                       for c in node.children)
    covered, reach = 0.0, node.start
    for start, end in intervals:
        start = max(start, reach)
        if end > start:
            covered += end - start
            reach = end
    return covered


def _groups(timeline):
    """Per (service, name): spans, timed spans, their total and self time
    (timed spans only)."""
    groups = {}
    for span in timeline.spans:
        key = (span.service, span.name)
        if key not in groups:
            groups[key] = {"service": span.service, "name": span.name,
                           "count": 0, "timed": 0, "total_ms": 0.0,
                           "self_ms": 0.0}
        groups[key]["count"] += 1
    for node in timeline.nodes:
        group = groups[(node.span.service, node.span.name)]
        group["timed"] += 1
        group["total_ms"] += node.duration
        group["self_ms"] += _self_ms(node)
    return groups


# -- repeated SQL ---------------------------------------------------------

_STRING = re.compile(r"'(?:[^']|'')*'")
_SPACE = re.compile(r"\s+")
# Bind parameters as the DB-API drivers spell them: %(name)s, %s, :name,
# $1, ?  (a PostgreSQL cast ::type is not one).
_PARAMETER = re.compile(r"%\(\w+\)s|%s|(?<![:\w]):\w+|\$\d+|\?")
_NUMBER = re.compile(r"(?<![\w.$])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)


def normalise_sql(statement):
    """The statement with its values replaced, for grouping.

    String and number literals and bind parameters become ?, an IN list of
    them becomes IN (?...), whitespace runs become one space. Keywords keep
    the case they were written in.
    """
    text = _STRING.sub("?", statement)
    text = _SPACE.sub(" ", text).strip()
    text = _PARAMETER.sub("?", text)
    text = _NUMBER.sub("?", text)
    return _IN_LIST.sub("IN (?...)", text)


def repeated_sql(timeline, n_plus_one=N_PLUS_ONE):
    """Statements grouped by their normal form, and N+1 suspects."""
    statements = {}
    per_parent = {}
    for span in timeline.by_id.values():
        statement, params = info.statement(span)
        if statement is None:
            continue
        node = timeline.timed.get(span.trace_id)
        key = normalise_sql(statement)
        entry = statements.setdefault(key, {
            "statement": key, "example": statement, "count": 0, "timed": 0,
            "total_ms": 0.0, "params": set(), "parents": set()})
        entry["count"] += 1
        entry["params"].add(json.dumps(params, sort_keys=True, default=str))
        entry["parents"].add(span.parent_id)
        under = per_parent.setdefault((span.parent_id, key), {
            "statement": key, "count": 0, "total_ms": 0.0})
        under["count"] += 1
        if node is not None:
            entry["timed"] += 1
            entry["total_ms"] += node.duration
            under["total_ms"] += node.duration
    rows = []
    for entry in statements.values():
        params, parents = entry.pop("params"), entry.pop("parents")
        rows.append(dict(entry, total_ms=_round(entry["total_ms"]),
                         distinct_params=len(params), parents=len(parents)))
    rows.sort(key=lambda r: (-r["count"], -r["total_ms"]))
    suspects = [dict(under, total_ms=_round(under["total_ms"]),
                     parent=_caller(timeline, parent_id))
                for (parent_id, _key), under in per_parent.items()
                if under["count"] >= n_plus_one]
    suspects.sort(key=lambda s: (-s["count"], -s["total_ms"]))
    return {"statements": rows, "n_plus_one_threshold": n_plus_one,
            "n_plus_one": suspects}


# -- fan-out --------------------------------------------------------------

def fan_out(timeline):
    """Remote calls (HTTP through requests, RPC, WSGI of another service),
    counted per calling span and per remote.

    A server-side span (wsgi, or rpc of another service or host) right
    under the client span of the same call (requests or rpc) is that call
    seen from the other end: it is not counted again, it names the remote.
    """
    by_id = timeline.by_id
    calls = {}  # trace_id of a counted call → remote
    servers = []
    for span in by_id.values():
        kind = info.kind(span)
        parent = by_id.get(span.parent_id)
        remote_side = parent is not None and _place(parent) != _place(span)
        if kind in (info.SERVER, info.RPC) and remote_side:
            servers.append(span)
        elif kind in (info.HTTP, info.RPC):
            calls[span.trace_id] = _remote(span, kind)
    clients = set(calls)
    for span in servers:
        where = query.where(span.service, span.host)
        if span.parent_id in clients:  # the client side of the same call
            calls[span.parent_id] = where
        else:
            calls[span.trace_id] = where
    parents = {}
    remotes = {}
    for trace_id, remote in calls.items():
        span = by_id[trace_id]
        row = parents.setdefault(span.parent_id, dict(
            _caller(timeline, span.parent_id), calls=0,
            remotes=collections.Counter()))
        row["calls"] += 1
        row["remotes"][remote] += 1
        total = remotes.setdefault(remote, {"remote": remote, "calls": 0,
                                            "total_ms": 0.0})
        total["calls"] += 1
        node = timeline.timed.get(trace_id)
        total["total_ms"] += node.duration if node is not None else 0.0
    per_parent = sorted(parents.values(), key=lambda r: -r["calls"])
    for row in per_parent:  # a list: the most called first
        row["remotes"] = [{"remote": remote, "calls": count}
                          for remote, count in row["remotes"].most_common()]
    per_remote = sorted(remotes.values(), key=lambda r: -r["calls"])
    for row in per_remote:
        row["total_ms"] = _round(row["total_ms"])
    return {"calls": len(calls), "per_parent": per_parent,
            "per_remote": per_remote}


def _remote(span, kind):
    """What a client span calls: host:port of an HTTP call; the API of an
    RPC call (the traced function's module or class), else its name."""
    if kind == info.HTTP:
        sent = info.entry(info.start_info(span), "requests")
        host, port = sent.get("hostname") or "?", sent.get("port")
        return f"{host}:{port}" if port else str(host)
    return info.function_module(span) or span.name


def _place(span):
    return span.service, span.host


# -- clock skew -----------------------------------------------------------

def clock_skew(timeline):
    """Children that start before or end after a parent on another host.

    For each (parent host, child host) pair, every parent/child edge
    bounds the shift d of the child host's clock that would put the child
    inside its parent: parent.start - child.start <= d <= parent.end -
    child.end. The estimated offset is the smallest shift within all the
    bounds of the pair (0 when the clocks already agree); when the bounds
    contradict each other it is the middle of the two tightest, and the
    pair is marked inconsistent. Per-host offsets chain the pair offsets
    from the host of the first top-level span.
    """
    pairs = {}
    outside = []
    for node in timeline.nodes:
        parent = node.parent
        if parent is None or None in (parent.span.host, node.span.host) \
                or parent.span.host == node.span.host:
            continue
        low = parent.start - node.start
        high = parent.end - node.end
        key = (parent.span.host, node.span.host)
        pair = pairs.setdefault(key, {"parent_host": key[0],
                                      "child_host": key[1], "edges": 0,
                                      "outside": 0, "low": low,
                                      "high": high})
        pair["edges"] += 1
        pair["low"] = max(pair["low"], low)
        pair["high"] = min(pair["high"], high)
        if low > 0 or high < 0:
            pair["outside"] += 1
            outside.append({"parent": _describe(parent.span),
                            "child": _describe(node.span),
                            "shift_ms": _round(_smallest_shift(low, high))})
    rows = []
    for pair in pairs.values():
        low, high = pair.pop("low"), pair.pop("high")
        rows.append(dict(pair, offset_ms=_round(_smallest_shift(low, high)),
                         consistent=low <= high))
    rows.sort(key=lambda r: (-r["outside"], r["parent_host"],
                             r["child_host"]))
    outside.sort(key=lambda o: -abs(o["shift_ms"]))
    first = min(timeline.roots, key=lambda n: n.start, default=None)
    reference = first.span.host if first is not None else None
    return {"pairs": rows, "outside": outside,
            "host_offsets_ms": _host_offsets(rows, reference)}


def _smallest_shift(low, high):
    if low > high:
        return (low + high) / 2
    return min(max(0.0, low), high)


def _host_offsets(pairs, reference):
    """Offset to add to each host's clock, chained from the reference host
    over the host pairs (breadth first; the first path found wins)."""
    links = collections.defaultdict(list)
    for pair in pairs:
        links[pair["parent_host"]].append((pair["child_host"],
                                           pair["offset_ms"]))
        links[pair["child_host"]].append((pair["parent_host"],
                                          -pair["offset_ms"]))
    offsets = {}
    starts = [reference] if reference in links else []
    for host in [*starts, *sorted(links)]:
        if host in offsets:
            continue
        offsets[host] = 0.0
        queue = collections.deque([host])
        while queue:
            current = queue.popleft()
            for other, offset in links[current]:
                if other not in offsets:
                    offsets[other] = offsets[current] + offset
                    queue.append(other)
    return {host: _round(offset) for host, offset in sorted(offsets.items())
            if offset}


def adjust_skew(base_id, spans):
    """The spans with each host's estimated clock offset applied, and the
    offsets (ms per host; hosts needing none are left out)."""
    offsets = clock_skew(Timeline(base_id, spans))["host_offsets_ms"]
    adjusted = []
    for span in spans:
        offset = offsets.get(span.host)
        if offset:
            shift = datetime.timedelta(milliseconds=offset)
            span = dataclasses.replace(
                span, started_at=_shifted(span.started_at, shift),
                finished_at=_shifted(span.finished_at, shift))
        adjusted.append(span)
    return adjusted, offsets


def _shifted(moment, shift):
    return None if moment is None else moment + shift


# -- comparison -----------------------------------------------------------

def compare(base_a, spans_a, base_b, spans_b):
    """Per (service, name): counts and times in trace A and in trace B."""
    sides = {}
    for side, base_id, spans in (("a", base_a, spans_a),
                                 ("b", base_b, spans_b)):
        timeline = Timeline(base_id, spans)
        sides[side] = ({"base_id": base_id, "span_count": len(spans),
                        "untimed_spans": len(timeline.untimed),
                        "duration_ms": _round(timeline.end - timeline.start)},
                       _groups(timeline))
    (a, groups_a), (b, groups_b) = sides["a"], sides["b"]
    empty = {"count": 0, "timed": 0, "total_ms": 0.0}
    rows = []
    for key in {**groups_a, **groups_b}:
        in_a, in_b = groups_a.get(key, empty), groups_b.get(key, empty)
        delta = in_b["total_ms"] - in_a["total_ms"]
        rows.append({
            "service": key[0], "name": key[1],
            "count_a": in_a["count"], "count_b": in_b["count"],
            "total_ms_a": _round(in_a["total_ms"]),
            "total_ms_b": _round(in_b["total_ms"]),
            "mean_ms_a": _mean(in_a), "mean_ms_b": _mean(in_b),
            "delta_ms": _round(delta),
            "ratio": (round(in_b["total_ms"] / in_a["total_ms"], 3)
                      if in_a["total_ms"] else None),
            "only_in": ("a" if key not in groups_b else
                        "b" if key not in groups_a else None)})
    rows.sort(key=lambda r: (-abs(r["delta_ms"]), r["service"] or "",
                             r["name"]))
    return {"a": a, "b": b,
            "delta_ms": _round(b["duration_ms"] - a["duration_ms"]),
            "groups": rows}


def _mean(group):
    return _round(group["total_ms"] / group["timed"]) if group["timed"] \
        else None


# -- shared ---------------------------------------------------------------

def _describe(span):
    return {"trace_id": span.trace_id, "name": span.name,
            "service": span.service, "host": span.host}


def _caller(timeline, parent_id):
    """The parent span of rows grouped by parent; one that is not a known
    span (the trace itself, or an orphan's lost parent) by its id only."""
    parent = timeline.by_id.get(parent_id)
    if parent is None:
        return {"trace_id": parent_id, "name": None, "service": None,
                "host": None}
    return _describe(parent)


def _round(ms):
    return round(ms, 3)


def _percent(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0
