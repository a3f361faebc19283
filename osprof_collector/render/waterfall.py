"""The documents the web UI draws: a trace's spans as waterfall rows,
what the analysis says of them, one span's details, a search result.

Rows come in the report's order (query.build_report, depth first, each
level by start); times are milliseconds after the first moment of the
trace, to the microsecond, from the spans themselves. The waterfall
carries only what its first paint needs: the analysis comes in a
document of its own, and a span's payloads (megabytes for a 10,000-span
trace) when it is opened.
"""

import datetime

from osprof_collector import analysis
from osprof_collector import info
from osprof_collector import query
from osprof_collector.render import exports
from osprof_collector.render import nodes

MILLISECOND = datetime.timedelta(milliseconds=1)
# Rows of each analysis table sent along with a trace.
TABLE_ROWS = 20


def trace(base_id, spans):
    """The waterfall of one trace: what its first paint needs."""
    report = query.build_report(base_id, spans)
    by_id = {span.trace_id: span for span in spans}
    first = min(span.first_seen for span in spans)
    rows = []
    for node, depth in query.walk(report):
        span = by_id[node["trace_id"]]
        failure = nodes.error(node)
        rows.append({
            "trace_id": span.trace_id, "name": span.name,
            "where": nodes.where(node), "depth": depth,
            "start_ms": _ms(span.first_seen - first),
            "duration_ms": None if span.started_at is None
            or span.finished_at is None
            else _ms(span.finished_at - span.started_at),
            "error": list(failure) if failure else None,
            "open": node["open"], "start_missing": span.started_at is None,
            "orphan": node["orphan"],
            "sql": info.statement(span)[0] is not None})
    _subtree_sizes(rows)
    return {
        "base_id": base_id, "span_count": len(rows),
        "open_spans": report["open_spans"], "orphans": report["orphans"],
        "start_missing": sum(row["start_missing"] for row in rows),
        "errors": sum(row["error"] is not None for row in rows),
        "started_at": first.isoformat(),
        "total_ms": _ms(max(span.last_seen for span in spans) - first),
        "rows": rows}


def trace_analysis(base_id, spans):
    """analysis.analyze() of one trace, its tables cut to TABLE_ROWS rows,
    and per span its share of the critical path and its self time."""
    result = analysis.analyze(base_id, spans)
    path, self_time = result["critical_path"], result["self_time"]
    sql, fan_out = result["sql"], result["fan_out"]
    return {
        "base_id": base_id,
        "critical_ms": {e["trace_id"]: e["self_ms"] for e in path["spans"]},
        "self_ms": {e["trace_id"]: e["self_ms"] for e in self_time["spans"]},
        "critical_path": dict(path, spans=sorted(
            path["spans"], key=lambda e: -e["self_ms"])[:TABLE_ROWS]),
        "self_time": self_time["groups"][:TABLE_ROWS],
        "sql": dict(sql, statements=sql["statements"][:TABLE_ROWS],
                    n_plus_one=sql["n_plus_one"][:TABLE_ROWS],
                    total=len(sql["statements"])),
        "fan_out": dict(fan_out,
                        per_parent=fan_out["per_parent"][:TABLE_ROWS],
                        per_remote=fan_out["per_remote"][:TABLE_ROWS]),
    }


def span_details(found):
    """What the UI shows of one span when it is opened."""
    statement, sql_params = info.statement(found)
    return {
        "trace_id": found.trace_id, "parent_id": found.parent_id,
        "name": found.name, "project": found.project,
        "service": found.service, "host": found.host,
        "started_at": _iso(found.started_at),
        "finished_at": _iso(found.finished_at),
        "error": found.error, "statement": statement, "params": sql_params,
        "payloads": {payload["name"]: payload
                     for payload in (found.start_payload, found.stop_payload)
                     if payload is not None}}


def summary(stored, spans):
    """A search result: the store's summary of a trace, its services
    named as in the Zipkin and Jaeger APIs."""
    return {
        "base_id": stored.base_id, "started_at": _iso(stored.started_at),
        "duration_ms": None if stored.duration_ms is None
        else round(stored.duration_ms, 3),
        "spans": stored.span_count, "error": stored.error,
        "name": stored.root_name,
        "services": sorted({exports.service_name(s.project, s.service)
                            for s in spans})}


def _subtree_sizes(rows):
    """Each row's "size": itself and its descendants, which follow it
    (rows are depth first), in one pass from the end."""
    open_rows = []  # rows whose subtree the pass is still inside
    for index in range(len(rows) - 1, -1, -1):
        depth = rows[index]["depth"]
        size = 1
        while open_rows and rows[open_rows[-1]]["depth"] > depth:
            size += rows[open_rows.pop()]["size"]
        rows[index]["size"] = size
        open_rows.append(index)


def _ms(delta):
    return round(delta / MILLISECOND, 3)


def _iso(moment):
    return None if moment is None else moment.isoformat()
