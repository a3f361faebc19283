"""One self-contained HTML page: a waterfall with collapsible spans.

Nothing is loaded from elsewhere. Span data travels as JSON inside a
<script type="application/json"> element with <, > and & escaped, and the
page's script only ever sets textContent: payload text such as a traced
SQL statement containing <script> is shown, never run.
"""

import html
import json

from osprof_collector import query
from osprof_collector.render import nodes as n
from osprof_collector.render import tree


def render(report, **_options):
    rows = []
    for node, depth in query.walk(report):
        info = node["info"]
        failure = n.error(node)
        rows.append({
            "name": info["name"], "where": n.where(node), "depth": depth,
            "started": info["started"], "duration": n.duration_ms(node),
            "size": n.subtree_size(node), "markers": n.markers(node),
            "error": bool(failure), "open": node.get("open", False),
            "start_missing": node.get("start_missing", False),
            "payload": {k[len("meta.raw_payload."):]: v
                        for k, v in info.items()
                        if k.startswith("meta.raw_payload.")},
            "trace_id": node["trace_id"], "parent_id": node["parent_id"]})
    data = {"base_id": report["base_id"], "total": report["info"]["finished"]
            or 0, "summary": tree.summary(report), "rows": rows}
    return PAGE.format(title=html.escape(f"trace {report['base_id']}"),
                       data=_script_safe_json(data))


def _script_safe_json(value):
    text = json.dumps(value, default=str)
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>
body {{ font: 13px/1.4 monospace; margin: 0; color: #222; }}
header {{ padding: 8px 12px; background: #f2f2f2; border-bottom: 1px solid #ccc; }}
#rows {{ padding: 4px 0; }}
.row {{ display: flex; align-items: center; cursor: pointer; }}
.row:hover {{ background: #eef4ff; }}
.row.selected {{ background: #dde8ff; }}
.label {{ width: 45%; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.toggle {{ display: inline-block; width: 1.2em; }}
.lane {{ position: relative; width: 55%; height: 14px; }}
.bar {{ position: absolute; height: 10px; top: 2px; min-width: 2px; background: #4a7bd0; }}
.bar.error {{ background: #d04a4a; }}
.bar.open {{ background: repeating-linear-gradient(45deg, #4a7bd0, #4a7bd0 4px, #9bb6e6 4px, #9bb6e6 8px); }}
.bar.start-missing {{ background: none; border-left: 2px dashed #4a7bd0; }}
.mark {{ color: #b00; margin-left: 6px; }}
#payload {{ position: fixed; bottom: 0; left: 0; right: 0; max-height: 40%;
  overflow: auto; margin: 0; padding: 8px 12px; background: #fafafa;
  border-top: 1px solid #ccc; white-space: pre-wrap; }}
</style>
</head>
<body>
<header><span id="summary"></span></header>
<div id="rows"></div>
<pre id="payload">Click a span to see its raw osprofiler payloads.</pre>
<script id="trace-data" type="application/json">{data}</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("trace-data").textContent);
const rows = data.rows;
const total = Math.max(data.total, 1);
const collapsed = new Set();
const elements = [];
const summary = document.getElementById("summary");
summary.textContent = data.summary;

function element(tag, cls, text) {{
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}}

function refresh() {{
  let hideUntil = -1;
  rows.forEach((row, i) => {{
    const hidden = i < hideUntil;
    elements[i].style.display = hidden ? "none" : "flex";
    if (!hidden && collapsed.has(i)) hideUntil = i + row.size;
  }});
}}

const container = document.getElementById("rows");
rows.forEach((row, i) => {{
  const line = element("div", "row");
  line.dataset.traceId = row.trace_id;
  const label = element("div", "label");
  label.style.paddingLeft = (row.depth * 14 + 4) + "px";
  const toggle = element("span", "toggle", row.size > 1 ? "\\u25be" : "");
  label.appendChild(toggle);
  label.appendChild(element("span", "name", row.name));
  label.appendChild(element("span", "where", "  " + row.where + "  " +
                            row.duration + " ms"));
  row.markers.forEach(m => label.appendChild(element("span", "mark", m)));
  const lane = element("div", "lane");
  const bar = element("div", "bar" + (row.error ? " error" : "") +
                      (row.open ? " open" : "") +
                      (row.start_missing ? " start-missing" : ""));
  bar.style.left = (100 * row.started / total) + "%";
  bar.style.width = (100 * row.duration / total) + "%";
  bar.title = "+" + row.started + " ms, " + row.duration + " ms";
  lane.appendChild(bar);
  line.appendChild(label);
  line.appendChild(lane);
  toggle.addEventListener("click", event => {{
    event.stopPropagation();
    if (row.size <= 1) return;
    if (collapsed.has(i)) {{ collapsed.delete(i); toggle.textContent = "\\u25be"; }}
    else {{ collapsed.add(i); toggle.textContent = "\\u25b8"; }}
    refresh();
  }});
  line.addEventListener("click", () => {{
    document.querySelectorAll(".row.selected").forEach(
      el => el.classList.remove("selected"));
    line.classList.add("selected");
    document.getElementById("payload").textContent = JSON.stringify(
      {{trace_id: row.trace_id, parent_id: row.parent_id,
        payloads: row.payload}}, null, 2);
    history.replaceState(null, "", "#span=" + row.trace_id);
  }});
  elements.push(line);
  container.appendChild(line);
}});
// A link ending in #span=<trace_id> opens with that span selected.
if (location.hash.startsWith("#span=")) {{
  const wanted = elements.find(
    el => el.dataset.traceId === location.hash.slice(6));
  if (wanted) {{ wanted.click(); wanted.scrollIntoView(); }}
}}
document.body.dataset.rendered = String(rows.length);
</script>
</body>
</html>
"""
