"""The web UI's page, script and style sheet, served by osprof-api itself
(api/ui.py): nothing is loaded from elsewhere.

The page is one document with three views, chosen by the URL's fragment:
#/search?... (the search form and its results), #/trace/<base_id> (the
waterfall, the span details and the analysis), #/compare/<a>/<b>. The
script reads JSON from /api/osprof/ and only ever puts payload text into
the page as text (textContent, createElement): no HTML is built from
data, so a span name such as <script>... is shown, never run.

The waterfall is virtualised: only the rows in view (and a few around
them) are in the DOM, so a 10,000-span trace scrolls as a small one.
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>osprof traces</title>
<link rel="stylesheet" href="ui/app.css">
<script src="ui/app.js" defer></script>
</head>
<body data-view="loading">
<header>
  <a href="#/search" id="home">osprof traces</a>
  <span id="status" role="status"></span>
  <label id="token-box" hidden>Keystone token
    <input id="token" type="password" autocomplete="off"></label>
</header>
<main>
<section id="search-view" hidden>
  <form id="search-form">
    <label>service <select name="service" id="f-service">
      <option value="">any</option></select></label>
    <label>span name <input name="name" id="f-name" size="16"></label>
    <label>since <input name="since" id="f-since" size="19"
      placeholder="1h or 2026-12-03T10:00:00"></label>
    <label>until <input name="until" id="f-until" size="19"
      placeholder="now"></label>
    <label>min duration ms <input name="min_duration_ms" id="f-min"
      size="7" inputmode="decimal"></label>
    <label><input type="checkbox" name="errors" id="f-errors" value="1">
      errors only</label>
    <label>limit <input name="limit" id="f-limit" size="4" value="20"></label>
    <button type="submit" id="f-submit">Search</button>
  </form>
  <p><button type="button" id="compare-button" disabled>Compare the two
    selected traces</button></p>
  <table id="results">
    <thead><tr><th></th><th>started (UTC)</th><th>name</th>
      <th class="num">ms</th><th class="num">spans</th><th>services</th>
      <th>error</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<section id="trace-view" hidden>
  <h1 id="trace-title"></h1>
  <p id="trace-summary"></p>
  <p class="legend"><span class="key bar"></span> span
    <span class="key bar critical"></span> critical path
    <span class="key bar error"></span> error
    <span class="key bar open"></span> open (no stop yet)
    <span class="key bar no-start"></span> start missing</p>
  <div id="waterfall" tabindex="0">
    <div id="waterfall-spacer"><div id="waterfall-rows"></div></div>
  </div>
  <div id="details" hidden>
    <h2 id="details-title"></h2>
    <dl id="details-fields"></dl>
    <div id="details-error" class="failure" hidden></div>
    <div id="details-sql" hidden><h3>SQL statement</h3>
      <pre id="details-statement"></pre><pre id="details-params"></pre></div>
    <h3>osprofiler payloads</h3>
    <pre id="details-payloads"></pre>
  </div>
  <div id="analysis"></div>
</section>
<section id="compare-view" hidden>
  <h1>Comparison</h1>
  <p id="compare-summary"></p>
  <table id="compare-table">
    <thead><tr><th>service</th><th>name</th><th class="num">count A</th>
      <th class="num">count B</th><th class="num">total A ms</th>
      <th class="num">total B ms</th><th class="num">delta ms</th>
      <th class="num">ratio</th><th></th></tr></thead>
    <tbody></tbody>
  </table>
</section>
</main>
</body>
</html>
"""

STYLE = """
body { font: 13px/1.4 sans-serif; margin: 0; color: #222; }
header { padding: 6px 12px; background: #263445; color: #fff; }
header a { color: #fff; font-weight: bold; text-decoration: none; }
#status { margin-left: 1em; }
#status.bad { color: #ffb3b3; }
main { padding: 8px 12px; }
form label { margin-right: 10px; white-space: nowrap; }
table { border-collapse: collapse; }
th, td { padding: 2px 8px; text-align: left; border-bottom: 1px solid #ddd;
  vertical-align: top; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.code { font-family: monospace; white-space: pre-wrap; word-break: break-all; }
tr.error td { color: #a00; }
h1 { font-size: 16px; margin: 4px 0; font-family: monospace; }
h2 { font-size: 14px; margin: 4px 0; font-family: monospace; }
h3 { font-size: 13px; margin: 8px 0 2px; }
#waterfall { height: 55vh; overflow-y: auto; position: relative;
  border: 1px solid #ccc; font: 12px/20px monospace; }
#waterfall-spacer { position: relative; }
#waterfall-rows { position: absolute; left: 0; right: 0; top: 0; }
.row { display: flex; height: 20px; cursor: pointer; }
.row:hover { background: #eef4ff; }
.row.selected { background: #dde8ff; }
.row.on-path .name { font-weight: bold; }
.label { width: 45%; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.toggle { display: inline-block; width: 1.4em; border: 0; padding: 0;
  background: none; font: inherit; cursor: pointer; }
.where { color: #666; margin-left: 6px; }
.mark { color: #b00; margin-left: 6px; }
.tag { color: #2a6a2a; margin-left: 6px; }
.lane { position: relative; width: 55%; }
.bar { position: absolute; height: 12px; top: 4px; min-width: 2px;
  background: #4a7bd0; }
.bar.critical { background: #e08a1e; }
.bar.error { background: #d04a4a; }
.bar.open { background: repeating-linear-gradient(45deg, #4a7bd0, #4a7bd0 4px,
  #b8cbee 4px, #b8cbee 8px); }
.bar.no-start { background: #888; width: 3px; }
.legend .key { position: relative; display: inline-block; width: 24px;
  height: 12px; top: 2px; margin-left: 10px; }
#details { border: 1px solid #ccc; margin-top: 8px; padding: 4px 8px;
  background: #fafafa; }
#details pre { white-space: pre-wrap; word-break: break-all; margin: 2px 0;
  max-height: 30vh; overflow: auto; }
#details dl { display: grid; grid-template-columns: max-content auto;
  gap: 0 12px; margin: 4px 0; }
#details dt { color: #666; }
#details dd { margin: 0; font-family: monospace; word-break: break-all; }
.failure { color: #a00; font-family: monospace; white-space: pre-wrap; }
#analysis section { margin-top: 12px; }
"""

SCRIPT = r"""
"use strict";
(function () {
  const ROW_HEIGHT = 20;  // px, as .row in the style sheet
  const OVERSCAN = 10;  // rows drawn above and below those in view

  const $ = id => document.getElementById(id);
  const api = "api/osprof/";

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = String(text);
    return el;
  }

  function cell(row, text, className) {
    const td = element("td", className, text);
    row.appendChild(td);
    return td;
  }

  function ms(value) {
    return value === null || value === undefined ? "-" : value.toFixed(3);
  }

  function setStatus(text, bad) {
    $("status").textContent = text;
    $("status").className = bad ? "bad" : "";
  }

  // -- talking to osprof-api ----------------------------------------------

  async function getJson(path) {
    const headers = {"Accept": "application/json"};
    const token = sessionStorage.getItem("osprof-token");
    if (token) headers["X-Auth-Token"] = token;
    const response = await fetch(api + path, {headers: headers,
                                              credentials: "same-origin"});
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (response.status === 401) {
      $("token-box").hidden = false;
      throw new Error("osprof-api needs a Keystone token: paste one above");
    }
    if (!response.ok) {
      const said = body && typeof body.error === "string" ? body.error
        : response.statusText;
      throw new Error(response.status + ": " + said);
    }
    return body;
  }

  // -- views ----------------------------------------------------------------

  function show(view) {
    for (const name of ["search", "trace", "compare"]) {
      $(name + "-view").hidden = name !== view;
    }
    document.body.dataset.view = view;
  }

  async function route() {
    const hash = location.hash.replace(/^#/, "");
    const parts = hash.split("?")[0].split("/").filter(Boolean);
    delete document.body.dataset.failed;
    try {
      if (parts[0] === "trace" && parts.length === 2) {
        await showTrace(decodeURIComponent(parts[1]));
      } else if (parts[0] === "compare" && parts.length === 3) {
        await showCompare(decodeURIComponent(parts[1]),
                          decodeURIComponent(parts[2]));
      } else {
        await showSearch(new URLSearchParams(hash.split("?")[1] || ""));
      }
    } catch (error) {
      setStatus(error.message, true);
      document.body.dataset.failed = error.message;
    }
  }

  // -- search ---------------------------------------------------------------

  let servicesLoaded = false;

  async function loadServices() {
    if (servicesLoaded) return;
    const select = $("f-service");
    select.replaceChildren(select.options[0]);  // "any"
    for (const name of await getJson("services")) {
      const option = element("option", null, name);
      option.value = name;
      select.appendChild(option);
    }
    servicesLoaded = true;
  }

  function fillForm(query) {
    const form = $("search-form");
    for (const input of form.elements) {
      if (!input.name) continue;
      if (input.type === "checkbox") input.checked = query.get(input.name) === "1";
      else if (query.has(input.name)) input.value = query.get(input.name);
    }
  }

  async function showSearch(query) {
    show("search");
    await loadServices();
    fillForm(query);
    setStatus("searching...");
    const found = await getJson("traces?" + query.toString());
    const body = $("results").tBodies[0];
    body.replaceChildren();
    picked = [];
    for (const trace of found) {
      const row = element("tr", trace.error ? "error" : "");
      row.dataset.baseId = trace.base_id;
      const box = element("input");
      box.type = "checkbox";
      box.className = "pick";
      box.value = trace.base_id;
      box.addEventListener("change", pick);
      cell(row, "").appendChild(box);
      cell(row, trace.started_at);
      const link = element("a", "open-trace", trace.name || "(no name)");
      link.href = "#/trace/" + encodeURIComponent(trace.base_id);
      cell(row, "").appendChild(link);
      cell(row, ms(trace.duration_ms), "num");
      cell(row, trace.spans, "num");
      cell(row, trace.services.join(", "));
      cell(row, trace.error ? "error" : "");
      body.appendChild(row);
    }
    updateCompareButton();
    setStatus(found.length === 1 ? "1 trace" : found.length + " traces");
    document.body.dataset.results = String(found.length);
    document.body.dataset.query = query.toString();
  }

  // Ticked traces in the order they were ticked: the first is A.
  let picked = [];

  function pick(event) {
    const box = event.target;
    picked = picked.filter(id => id !== box.value);
    if (box.checked) picked.push(box.value);
    updateCompareButton();
  }

  function updateCompareButton() {
    $("compare-button").disabled = picked.length !== 2;
  }

  function search(event) {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const input of $("search-form").elements) {
      if (!input.name) continue;
      if (input.type === "checkbox") { if (input.checked) query.set(input.name, "1"); }
      else if (input.value.trim()) query.set(input.name, input.value.trim());
    }
    const target = "#/search?" + query.toString();
    if (location.hash === target) route(); else location.hash = target;
  }

  // -- trace: the waterfall -------------------------------------------------

  const waterfall = {trace: null, rows: [], visible: [], collapsed: new Set(),
                     selected: null, pending: false, analysis: null};

  // What the analysis (read after the first paint) says of a row, or null.
  function criticalMs(row) {
    const found = waterfall.analysis && waterfall.analysis.critical_ms[row.trace_id];
    return found === undefined ? null : found;
  }

  function selfMs(row) {
    const found = waterfall.analysis && waterfall.analysis.self_ms[row.trace_id];
    return found === undefined ? null : found;
  }

  function visibleRows() {
    const rows = waterfall.rows, shown = [];
    for (let i = 0; i < rows.length; i++) {
      shown.push(i);
      if (waterfall.collapsed.has(i)) i += rows[i].size - 1;
    }
    return shown;
  }

  function markers(row) {
    const marks = [];
    if (row.error) marks.push(("ERROR " + row.error[0] + ": " + row.error[1])
                              .replace(/: $/, ""));
    if (row.open) marks.push("OPEN");
    if (row.start_missing) marks.push("START MISSING");
    if (row.orphan) marks.push("ORPHAN");
    return marks;
  }

  function rowElement(index) {
    const row = waterfall.rows[index];
    const total = Math.max(waterfall.trace.total_ms, 0.001);
    const critical = criticalMs(row), self = selfMs(row);
    const line = element("div", "row");
    if (critical !== null) line.classList.add("on-path");
    if (index === waterfall.selected) line.classList.add("selected");
    line.dataset.index = String(index);
    line.dataset.traceId = row.trace_id;
    const label = element("div", "label");
    label.style.paddingLeft = (Math.min(row.depth, 40) * 12 + 2) + "px";
    const toggle = element("button", "toggle",
      row.size > 1 ? (waterfall.collapsed.has(index) ? "\u25b8" : "\u25be") : "");
    toggle.type = "button";
    toggle.tabIndex = -1;
    if (row.size > 1) toggle.title = (row.size - 1) + " spans below";
    label.appendChild(toggle);
    label.appendChild(element("span", "name", row.name));
    const length = row.duration_ms === null ? "" : "  " + ms(row.duration_ms) + " ms";
    label.appendChild(element("span", "where", row.where + length));
    for (const mark of markers(row)) label.appendChild(element("span", "mark", mark));
    if (row.sql) label.appendChild(element("span", "tag", "SQL"));
    const lane = element("div", "lane");
    const bar = element("div", "bar");
    let width = row.duration_ms;
    if (row.error) bar.classList.add("error");
    else if (critical !== null) bar.classList.add("critical");
    if (row.open) { bar.classList.add("open"); width = total - row.start_ms; }
    if (row.start_missing) { bar.classList.add("no-start"); width = 0; }
    bar.style.left = (100 * row.start_ms / total) + "%";
    bar.style.width = (100 * Math.max(width || 0, 0) / total) + "%";
    bar.title = "+" + ms(row.start_ms) + " ms" +
      (row.duration_ms === null ? "" : ", " + ms(row.duration_ms) + " ms") +
      (self === null ? "" : ", self " + ms(self) + " ms") +
      (critical === null ? "" : ", on the critical path " + ms(critical) + " ms");
    lane.appendChild(bar);
    line.appendChild(label);
    line.appendChild(lane);
    return line;
  }

  function drawRows() {
    waterfall.pending = false;
    const box = $("waterfall");
    const shown = waterfall.visible;
    const first = Math.max(0, Math.floor(box.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(shown.length,
      Math.ceil((box.scrollTop + box.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    const layer = $("waterfall-rows");
    layer.style.top = (first * ROW_HEIGHT) + "px";
    const lines = [];
    for (let n = first; n < last; n++) lines.push(rowElement(shown[n]));
    layer.replaceChildren(...lines);
    document.body.dataset.drawnRows = String(lines.length);
  }

  function redraw() {
    if (waterfall.pending) return;
    waterfall.pending = true;
    requestAnimationFrame(drawRows);
  }

  function relayout() {
    waterfall.visible = visibleRows();
    $("waterfall-spacer").style.height = (waterfall.visible.length * ROW_HEIGHT) + "px";
    document.body.dataset.visibleRows = String(waterfall.visible.length);
    drawRows();
  }

  function toggleRow(index) {
    if (waterfall.rows[index].size <= 1) return;
    if (waterfall.collapsed.has(index)) waterfall.collapsed.delete(index);
    else waterfall.collapsed.add(index);
    relayout();
  }

  function clickWaterfall(event) {
    const line = event.target.closest(".row");
    if (!line) return;
    const index = Number(line.dataset.index);
    if (event.target.closest(".toggle")) toggleRow(index);
    else openSpan(index).catch(error => setStatus(error.message, true));
  }

  async function showTrace(baseId) {
    show("trace");
    setStatus("loading trace...");
    $("details").hidden = true;
    const trace = await getJson("traces/" + encodeURIComponent(baseId));
    waterfall.trace = trace;
    waterfall.rows = trace.rows;
    waterfall.collapsed = new Set();
    waterfall.selected = null;
    waterfall.analysis = null;
    delete document.body.dataset.analysed;
    $("analysis").replaceChildren();
    $("trace-title").textContent = "trace " + trace.base_id;
    $("trace-summary").textContent = trace.span_count + " spans, " +
      ms(trace.total_ms) + " ms from " + trace.started_at + " UTC; " +
      trace.errors + " with an error, " + trace.open_spans + " open, " +
      trace.start_missing + " start missing, " + trace.orphans + " orphans";
    $("waterfall").scrollTop = 0;
    relayout();
    document.body.dataset.waterfallMs = String(Math.round(performance.now()));
    document.body.dataset.trace = trace.base_id;
    setStatus("analysing...");
    const result = await getJson("traces/" + encodeURIComponent(baseId) + "/analysis");
    if (waterfall.trace !== trace) return;  // another trace was opened
    waterfall.analysis = result;
    drawRows();
    drawAnalysis(result);
    document.body.dataset.analysedMs = String(Math.round(performance.now()));
    document.body.dataset.analysed = trace.base_id;
    setStatus("");
  }

  async function openSpan(index) {
    const row = waterfall.rows[index];
    waterfall.selected = index;
    drawRows();
    const details = await getJson("traces/" + encodeURIComponent(
      waterfall.trace.base_id) + "/spans/" + encodeURIComponent(row.trace_id));
    if (waterfall.selected !== index) return;  // another span was opened
    $("details").hidden = false;
    $("details-title").textContent = details.name;
    const fields = $("details-fields");
    fields.replaceChildren();
    for (const [key, value] of [
        ["trace_id", details.trace_id], ["parent_id", details.parent_id],
        ["service", details.project + " / " + details.service],
        ["host", details.host], ["started", details.started_at || "unknown (start missing)"],
        ["finished", details.finished_at || "unknown (open)"],
        ["duration", row.duration_ms === null ? "unknown" : ms(row.duration_ms) + " ms"],
        ["self time", selfMs(row) === null ? "-" : ms(selfMs(row)) + " ms"],
        ["critical path", criticalMs(row) === null ? "no" : ms(criticalMs(row)) + " ms"]]) {
      fields.appendChild(element("dt", null, key));
      fields.appendChild(element("dd", null, value));
    }
    const failure = $("details-error");
    failure.hidden = !details.error;
    failure.textContent = details.error ? details.error.etype + ": " +
      (details.error.message === null ? "" : details.error.message) : "";
    $("details-sql").hidden = details.statement === null;
    $("details-statement").textContent = details.statement || "";
    $("details-params").textContent = details.params === null ||
      details.params === undefined ? "" : JSON.stringify(details.params, null, 2);
    $("details-payloads").textContent = JSON.stringify(details.payloads, null, 2);
    document.body.dataset.details = details.trace_id;
  }

  function table(title, headers, rows) {
    const section = element("section");
    section.appendChild(element("h3", null, title));
    if (!rows.length) {
      section.appendChild(element("p", null, "none"));
      return section;
    }
    const t = element("table"), head = element("tr");
    for (const [name, className] of headers) head.appendChild(element("th", className, name));
    t.appendChild(element("thead")).appendChild(head);
    const body = t.appendChild(element("tbody"));
    for (const cells of rows) {
      const tr = body.appendChild(element("tr"));
      cells.forEach((text, i) => cell(tr, text, headers[i][1]));
    }
    section.appendChild(t);
    return section;
  }

  function spanName(entry) {
    return (entry.name || "?") + "  " + (entry.service || "?") + "@" + (entry.host || "?");
  }

  function drawAnalysis(result) {
    const box = $("analysis");
    const path = result.critical_path, sql = result.sql, calls = result.fan_out;
    box.replaceChildren(
      table("Critical path: " + ms(path.duration_ms) + " ms, the largest shares",
            [["self ms", "num"], ["%", "num"], ["span", ""], ["duration ms", "num"]],
            path.spans.map(e => [ms(e.self_ms), e.percent.toFixed(1), spanName(e),
                                 ms(e.duration_ms)])),
      table("Self time per service and name",
            [["self ms", "num"], ["total ms", "num"], ["count", "num"],
             ["service", ""], ["name", ""]],
            result.self_time.map(g => [ms(g.self_ms), ms(g.total_ms), g.count,
                                       g.service || "?", g.name])),
      table("SQL statements (" + sql.total + " distinct)",
            [["count", "num"], ["param sets", "num"], ["total ms", "num"],
             ["statement", "code"]],
            sql.statements.map(s => [s.count, s.distinct_params, ms(s.total_ms),
                                     s.statement])),
      table("N+1 suspects: the same statement at least " + sql.n_plus_one_threshold +
            " times under one parent",
            [["count", "num"], ["total ms", "num"], ["parent", ""], ["statement", "code"]],
            sql.n_plus_one.map(s => [s.count, ms(s.total_ms), spanName(s.parent),
                                     s.statement])),
      table("Remote calls (HTTP, RPC): " + calls.calls + ", per remote",
            [["calls", "num"], ["total ms", "num"], ["remote", ""]],
            calls.per_remote.map(r => [r.calls, ms(r.total_ms), r.remote])));
  }

  // -- compare --------------------------------------------------------------

  async function showCompare(a, b) {
    show("compare");
    setStatus("comparing...");
    const result = await getJson("compare?a=" + encodeURIComponent(a) +
                                 "&b=" + encodeURIComponent(b));
    const summary = $("compare-summary");
    summary.replaceChildren();
    for (const [side, trace] of [["A", result.a], ["B", result.b]]) {
      const link = element("a", "compare-" + side.toLowerCase(), trace.base_id);
      link.href = "#/trace/" + encodeURIComponent(trace.base_id);
      summary.append(side + ": ", link, " " + trace.span_count + " spans, " +
                     ms(trace.duration_ms) + " ms. ");
    }
    summary.append("B - A: " + ms(result.delta_ms) + " ms");
    const body = $("compare-table").tBodies[0];
    body.replaceChildren();
    for (const g of result.groups) {
      const row = body.appendChild(element("tr"));
      cell(row, g.service || "?");
      cell(row, g.name);
      cell(row, g.count_a, "num");
      cell(row, g.count_b, "num");
      cell(row, ms(g.total_ms_a), "num");
      cell(row, ms(g.total_ms_b), "num");
      cell(row, (g.delta_ms > 0 ? "+" : "") + ms(g.delta_ms), "num");
      cell(row, g.ratio === null ? "-" : g.ratio.toFixed(2), "num");
      cell(row, {a: "only in A", b: "only in B"}[g.only_in] || "");
    }
    document.body.dataset.compared = String(result.groups.length);
    setStatus("");
  }

  // -- wiring ---------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("search-form").addEventListener("submit", search);
    $("compare-button").addEventListener("click", () => {
      const [a, b] = picked;
      location.hash = "#/compare/" + encodeURIComponent(a) + "/" + encodeURIComponent(b);
    });
    $("waterfall").addEventListener("scroll", redraw);
    $("waterfall").addEventListener("click", clickWaterfall);
    window.addEventListener("resize", redraw);
    $("token").value = sessionStorage.getItem("osprof-token") || "";
    $("token").addEventListener("change", () => {
      sessionStorage.setItem("osprof-token", $("token").value.trim());
      servicesLoaded = false;
      route();
    });
    window.addEventListener("hashchange", route);
    route();
  });
})();
"""
