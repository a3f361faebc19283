"""Renderers of a trace report (see query.build_report), and exports of
a trace's spans to tracing tools."""

from osprof_collector.render import dot
from osprof_collector.render import exports
from osprof_collector.render import html
from osprof_collector.render import json_report
from osprof_collector.render import tree

FORMATS = {
    "tree": tree.render,
    "json": json_report.render,
    "html": html.render,
    "dot": dot.render,
}

# These take (base_id, spans): they need microseconds, the report has
# milliseconds.
EXPORTS = {
    "jaeger": exports.jaeger,
    "zipkin": exports.zipkin,
    "otlp": exports.otlp,
}
