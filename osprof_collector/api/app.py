"""The osprof-api WSGI application: routes, errors, the store it reads.

``application`` is what uwsgi or mod_wsgi load; it reads its
configuration at the first request, from the file named by
OSPROF_API_CONFIG_FILE in the process's or the request's environment
(default /etc/osprof-collector/osprof-collector.conf).
The osprof-api command serves make_app() itself.
"""

import dataclasses
import gc
import logging
import os
import re
import threading

from oslo_config import cfg
from oslo_log import log
import webob
import webob.dec

from osprof_collector.api import answers
from osprof_collector.api import auth
from osprof_collector.api import jaeger
from osprof_collector.api import metrics
from osprof_collector.api import params
from osprof_collector.api import responses
from osprof_collector.api import ui
from osprof_collector.api import zipkin
from osprof_collector import opts
from osprof_collector import storage

LOG = logging.getLogger(__name__)
PROJECT = "osprof-collector"
CONFIG_ENV = "OSPROF_API_CONFIG_FILE"
DEFAULT_CONFIG = "/etc/osprof-collector/osprof-collector.conf"


@dataclasses.dataclass
class Context:
    """What every handler reads through."""

    store: object  # a storage driver, read through the query modules
    lookback_ms: int  # [api] query_lookback
    answers: answers.Answers  # answers about closed traces, kept


def store_url(conf):
    return conf.api.connection or conf.storage.connection


def open_store(conf):
    """The store osprof-api reads: the one place that opens it. It
    creates nothing: NoStoreError where the collector made no store."""
    return storage.open_existing(store_url(conf))


class Router:
    """GET routes of "/path/{name}" patterns to handler(request, context,
    name=...), each family of routes with the error answer of its API."""

    def __init__(self, families):
        self.routes = [
            (re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
                        + "$"), handler, error)
            for routes, error in families for pattern, handler in routes]

    def match(self, path):
        for pattern, handler, error in self.routes:
            found = pattern.match(path)
            if found:
                return handler, found.groupdict(), error
        return None, None, responses.error


class Application:

    def __init__(self, context, families):
        self.context = context
        self.router = Router(families)

    @webob.dec.wsgify
    def __call__(self, request):
        handler, arguments, error = self.router.match(request.path_info)
        if handler is None:
            return error(404, f"no such endpoint: {request.path_info[:200]}")
        if request.method not in ("GET", "HEAD"):
            response = error(405, f"{request.method} is not allowed here")
            response.allow = ("GET", "HEAD")
            return response
        try:
            return handler(request, self.context, **arguments)
        except params.BadRequest as exc:
            return error(400, str(exc))
        except UnicodeDecodeError:
            return error(400, "parameters must be UTF-8")
        except storage.StorageError as exc:
            LOG.error("%s %s: %s", request.method, request.path_qs, exc)
            return error(503, "the trace store is unavailable")
        except Exception:
            LOG.exception("%s %s failed", request.method, request.path_qs)
            return error(500, "internal error")


def make_app(conf, store):
    context = Context(
        store=store, lookback_ms=conf.api.query_lookback * 1000,
        answers=answers.Answers(store, conf.api.trace_cache_size * 2**20))
    protected = auth.protect(Application(context, [
        (zipkin.ROUTES, responses.error),
        (jaeger.ROUTES, responses.jaeger_error),
        (jaeger.V3_ROUTES, responses.v3_error),
        (ui.ROUTES, ui.error),
    ]), conf)
    # What holds no trace data needs no token: the UI's page and assets,
    # and /metrics, which Prometheus reads without one.
    return metrics.Beside(ui.PublicPages(protected), Application(
        context, [(metrics.ROUTES, responses.error)]))


def settle_memory():
    """Once the application is made. Cycle collection took a third of a
    10,000-span trace's request (passes over its new objects and the
    start-up ones): a fifth of that with these settings."""
    gc.freeze()
    gc.set_threshold(25_000, *gc.get_threshold()[1:])  # from 700


def prepare(argv, default_config_files=None):
    """The configuration of osprof-api from command-line arguments."""
    conf = cfg.ConfigOpts()
    log.register_options(conf)
    opts.register_opts(conf)
    conf(argv, project=PROJECT, prog="osprof-api",
         default_config_files=default_config_files)
    # A value that cannot be read fails here, not at its first use.
    for opt in opts.api_opts:
        getattr(conf.api, opt.dest)
    store_url(conf)
    return conf


class _FromConfigFile:
    """The WSGI callable of a server that imports this module: built at
    the first request, so that importing reads and opens nothing."""

    def __init__(self):
        self._app = None
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    # mod_wsgi's SetEnv reaches the request's environ only
                    path = (environ.get(CONFIG_ENV)
                            or os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
                    conf = prepare([], default_config_files=[path])
                    log.setup(conf, PROJECT)
                    self._app = make_app(conf, open_store(conf))
                    settle_memory()
        return self._app(environ, start_response)


application = _FromConfigFile()
