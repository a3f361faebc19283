"""Renderers of a trace report (see query.build_report)."""

from osprof_collector.render import dot
from osprof_collector.render import html
from osprof_collector.render import json_report
from osprof_collector.render import tree

FORMATS = {
    "tree": tree.render,
    "json": json_report.render,
    "html": html.render,
    "dot": dot.render,
}
