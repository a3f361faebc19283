"""The osprofiler report as JSON."""

import json


def render(report, **_options):
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
