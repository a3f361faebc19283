"""A readable indented tree, one span a line."""

from osprof_collector import query
from osprof_collector.render import nodes as n
from osprof_collector.render import words


def render(report, max_depth=None, min_duration=None):
    lines = [summary(report)]
    hidden = 0
    # (node, depth, prefix for its children, its own branch glyph)
    stack = [(node, 0, "", "└─ " if i == 0 else "├─ ")
             for i, node in enumerate(reversed(report["children"]))]
    while stack:
        node, depth, prefix, glyph = stack.pop()
        too_deep = max_depth is not None and depth > max_depth
        too_short = (min_duration is not None
                     and n.duration_ms(node) < min_duration)
        if too_deep or too_short:
            hidden += n.subtree_size(node)
            continue
        lines.append(_line(node, prefix + glyph))
        child_prefix = prefix + ("   " if glyph.startswith("└") else "│  ")
        children = node["children"]
        stack.extend((child, depth + 1, child_prefix,
                      "└─ " if i == 0 else "├─ ")
                     for i, child in enumerate(reversed(children)))
    if hidden:
        lines.append(f"({words.counted(hidden, 'span')} hidden by "
                     f"--max-depth or --min-duration)")
    return "\n".join(lines) + "\n"


def summary(report):
    services = sorted({node["info"]["service"] or "?"
                       for node, _ in query.walk(report)})
    errors = sum(1 for node, _ in query.walk(report) if n.error(node))
    return (f"trace {report['base_id']}: "
            f"{words.counted(report['span_count'], 'span')}, "
            f"{report['info']['finished'] or 0} ms, "
            f"{'service' if len(services) == 1 else 'services'} "
            f"{', '.join(services) or '-'}, {words.counted(errors, 'error')}, "
            f"{report['open_spans']} open, "
            f"{report['start_missing']} start missing, "
            f"{words.counted(report['orphans'], 'orphan')}")


def _line(node, prefix):
    info = node["info"]
    text = (f"{prefix}{info['name']}  {n.where(node)}  "
            f"+{info['started']} ms  {n.duration_ms(node)} ms")
    marks = n.markers(node)
    return text + "".join(f"  [{m}]" for m in marks)
