"""A Graphviz digraph of the call tree."""

from osprof_collector import query
from osprof_collector.render import nodes as n


def render(report, **_options):
    lines = ["digraph trace {", "  rankdir=TB;",
             '  node [shape=box, fontname="monospace"];',
             f"  label={_quote('trace ' + report['base_id'])};"]
    for node, _depth in query.walk(report):
        label = "\n".join([node["info"]["name"], n.where(node),
                           f"{n.duration_ms(node)} ms", *n.markers(node)])
        style = ', color="red"' if n.error(node) else ""
        style += (', style="dashed"' if node.get("open")
                  or node.get("start_missing") else "")
        lines.append(f"  {_quote(node['trace_id'])} "
                     f"[label={_quote(label)}{style}];")
        for child in node["children"]:
            lines.append(f"  {_quote(node['trace_id'])} -> "
                         f"{_quote(child['trace_id'])};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text):
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'
