"""/metrics for Prometheus: the collector workers' counters and their
per-operation calls, errors and durations, read from their heartbeats.

It is served beside the authentication of the rest of the API: Prometheus
presents no Keystone token, and the metrics hold names and counts only,
never a payload.
"""

import datetime

import webob

from osprof_collector.render import prometheus

PATH = "/metrics"


def metrics(request, context):
    heartbeats = context.store.get_heartbeats()
    response = webob.Response(body=prometheus.render(
        heartbeats, datetime.datetime.utcnow()), charset=None)
    response.headers["Content-Type"] = prometheus.CONTENT_TYPE
    return response


ROUTES = [(PATH, metrics)]


class Beside:
    """Hands PATH to `metrics` (an app of ROUTES), every other request to
    `protected`."""

    def __init__(self, protected, metrics_app):
        self.protected = protected
        self.metrics = metrics_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == PATH:
            return self.metrics(environ, start_response)
        return self.protected(environ, start_response)
