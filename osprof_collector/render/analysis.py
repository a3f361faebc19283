"""Text and JSON of a trace analysis and of a comparison of two traces
(see analysis.analyze and analysis.compare)."""

import json

from osprof_collector import query
from osprof_collector.render import words

LIMIT = 10
# Deeper spans of the critical path are indented no further.
MAX_INDENT = 16


def to_json(result):
    return json.dumps(result, indent=2, sort_keys=True) + "\n"


def analysis_text(result, limit=LIMIT):
    """Every section of analysis.analyze(), at most limit rows each."""
    sections = [_summary(result), _critical_path(result, limit),
                _self_time(result, limit), _sql(result, limit),
                _fan_out(result, limit), _clock_skew(result, limit)]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def comparison_text(result):
    a, b = result["a"], result["b"]
    lines = [f"A: trace {a['base_id']}: "
             f"{words.counted(a['span_count'], 'span')}, "
             f"{_ms(a['duration_ms'])} ms",
             f"B: trace {b['base_id']}: "
             f"{words.counted(b['span_count'], 'span')}, "
             f"{_ms(b['duration_ms'])} ms",
             f"B - A: {_signed(result['delta_ms'])} ms"]
    untimed = a["untimed_spans"] + b["untimed_spans"]
    if untimed:
        lines.append(f"({words.counted(untimed, 'span')} open or without "
                     f"a start {'is' if untimed == 1 else 'are'} counted "
                     f"but left out of the times)")
    rows = [(g["service"] or "?", g["name"], g["count_a"], g["count_b"],
             _ms(g["total_ms_a"]), _ms(g["total_ms_b"]), _ms(g["mean_ms_a"]),
             _ms(g["mean_ms_b"]), _signed(g["delta_ms"]),
             "-" if g["ratio"] is None else f"{g['ratio']:.2f}",
             {"a": "only in A", "b": "only in B"}.get(g["only_in"], ""))
            for g in result["groups"]]
    lines.append("")
    lines += _table(("service", "name", "count A", "count B", "total A ms",
                     "total B ms", "mean A ms", "mean B ms", "delta ms",
                     "ratio", ""), rows, indent="")
    return "\n".join(lines) + "\n"


def offsets_note(offsets):
    """One line naming the clock offsets applied to a trace."""
    if not offsets:
        return "(clock skew: no host offset needed)\n"
    return f"(clock skew adjusted: {_offsets(offsets)})\n"


def _summary(result):
    orphans = result["orphans"]
    lines = [f"trace {result['base_id']}: "
             f"{words.counted(result['span_count'], 'span')}, "
             f"{_ms(result['duration_ms'])} ms, {result['timed_spans']} "
             f"timed, {result['untimed_spans']} untimed, "
             f"{words.counted(orphans, 'orphan')}"]
    if result["untimed_spans"]:
        untimed = words.counted(result["untimed_spans"], "span")
        lines.append(f"({untimed} open or without a start: duration "
                     f"unknown, left out of the times below)")
    if orphans == 1:
        lines.append("(1 orphan, whose parent is unknown or loops back to "
                     "it, is timed as a top-level span)")
    elif orphans:
        lines.append(f"({orphans} orphans, whose parent is unknown or loops "
                     f"back to them, are timed as top-level spans)")
    return lines


def _critical_path(result, limit):
    path = result["critical_path"]
    entries = path["spans"]
    lines = [f"Critical path: {words.counted(len(entries), 'span')}, "
             f"{_ms(path['duration_ms'])} ms"]
    if not entries:
        return lines + ["  none (no timed span)"]
    # The biggest contributions, kept in the order of the path.
    kept = set(id(e) for e in sorted(entries, key=lambda e: -e["self_ms"])
               [:limit])
    rows = [(_ms(e["self_ms"]), f"{e['percent']:.1f}",
             "  " * min(e["depth"], MAX_INDENT) + _span(e),
             f"+{_ms(e['started_ms'])}",
             _ms(e["duration_ms"]))
            for e in entries if id(e) in kept]
    lines += _table(("self ms", "%", "span", "start ms", "duration ms"),
                    rows)
    hidden = [e for e in entries if id(e) not in kept]
    if hidden:
        more = words.counted(len(hidden), "more span")
        lines.append(f"  ({more} on the path, "
                     f"{_ms(sum(e['self_ms'] for e in hidden))} ms)")
    if path["uncovered_ms"]:
        lines.append(f"  ({_ms(path['uncovered_ms'])} ms between top-level "
                     f"spans)")
    return lines


def _self_time(result, limit):
    groups = result["self_time"]["groups"]
    lines = ["Self time per service and name"]
    lines += _table(("self ms", "total ms", "count", "service", "name"),
                    [(_ms(g["self_ms"]), _ms(g["total_ms"]), g["count"],
                      g["service"] or "?", g["name"]) for g in groups],
                    limit)
    spans = result["self_time"]["spans"]
    lines += ["", "Spans with the most self time"]
    lines += _table(("self ms", "duration ms", "span", "trace_id"),
                    [(_ms(s["self_ms"]), _ms(s["duration_ms"]), _span(s),
                      s["trace_id"]) for s in spans], limit)
    return lines


def _sql(result, limit):
    sql = result["sql"]
    statements = sql["statements"]
    repeated = [s for s in statements if s["count"] > 1]
    queries = sum(s["count"] for s in statements)
    lines = [f"SQL: {words.counted(queries, 'query', 'queries')}, "
             f"{words.counted(len(statements), 'distinct statement')}, "
             f"{len(repeated)} run more than once"]
    lines += _table(("count", "param sets", "total ms", "statement"),
                    [(s["count"], s["distinct_params"], _ms(s["total_ms"]),
                      s["statement"]) for s in repeated], limit)
    threshold = sql["n_plus_one_threshold"]
    lines += ["", f"N+1 suspects: the same statement at least "
                  f"{words.counted(threshold, 'time')} under one parent"]
    lines += _table(("count", "total ms", "parent", "statement"),
                    [(s["count"], _ms(s["total_ms"]),
                      _caller(s["parent"], result["base_id"]),
                      s["statement"]) for s in sql["n_plus_one"]], limit)
    return lines


def _fan_out(result, limit):
    fan_out = result["fan_out"]
    lines = [f"Fan-out: {words.counted(fan_out['calls'], 'remote call')} "
             f"(HTTP, RPC)"]
    lines += _table(("calls", "caller", "remotes"),
                    [(p["calls"], _caller(p, result["base_id"]),
                      ", ".join(f"{r['remote']} x{r['calls']}"
                                for r in p["remotes"]))
                     for p in fan_out["per_parent"]], limit)
    lines += ["", "Calls per remote"]
    lines += _table(("calls", "total ms", "remote"),
                    [(r["calls"], _ms(r["total_ms"]), r["remote"])
                     for r in fan_out["per_remote"]], limit)
    return lines


def _clock_skew(result, limit):
    skew = result["clock_skew"]
    lines = ["Clock skew: children outside their parent on another host"]
    lines += _table(("parent host", "child host", "edges", "outside",
                     "offset ms", ""),
                    [(p["parent_host"], p["child_host"], p["edges"],
                      p["outside"], _signed(p["offset_ms"]),
                      "" if p["consistent"] else "inconsistent")
                     for p in skew["pairs"] if p["outside"]], limit)
    if skew["host_offsets_ms"]:
        lines.append(f"  estimated clock offsets: "
                     f"{_offsets(skew['host_offsets_ms'])} "
                     f"(--adjust-skew applies them)")
    return lines


def _table(headers, rows, limit=None, indent="  "):
    """Aligned columns, numbers to the right; the last column unpadded."""
    if not rows:
        return [indent + "none"]
    shown = [tuple(str(cell) for cell in row) for row in rows[:limit]]
    numeric = [all(_is_number(row[i]) for row in shown)
               for i in range(len(headers))]
    widths = [max(len(h), *(len(row[i]) for row in shown))
              for i, h in enumerate(headers)]

    def line(cells):
        padded = [cell.rjust(w) if right else cell.ljust(w)
                  for cell, w, right in zip(cells, widths, numeric)]
        padded[-1] = cells[-1] if not numeric[-1] else padded[-1]
        return (indent + "  ".join(padded)).rstrip()

    lines = [line(headers)] + [line(row) for row in shown]
    if limit is not None and len(rows) > limit:
        lines.append(f"{indent}({len(rows) - limit} more)")
    return lines


def _is_number(text):
    try:
        float(text.lstrip("+"))
    except ValueError:
        return text in ("-", "")
    return True


def _span(entry):
    return (f"{entry.get('name') or '?'}  "
            f"{query.where(entry.get('service'), entry.get('host'))}")


def _caller(entry, base_id):
    """A parent span of grouped rows; one the trace does not hold is the
    trace itself (top level) or the lost parent of orphans."""
    if entry["name"] is not None:
        return _span(entry)
    if entry["trace_id"] == base_id:
        return "(top level)"
    return f"(unknown parent {entry['trace_id']})"


def _offsets(offsets):
    """Clock offsets per host, as "host +1.000 ms, ..."."""
    return ", ".join(f"{host} {_signed(ms)} ms"
                     for host, ms in offsets.items())


def _ms(value):
    return "-" if value is None else f"{value:.3f}"


def _signed(value):
    return f"{value:+.3f}"
