"""osprof-api's web UI: the page at /, its script and style sheet, and the
JSON it reads under /api/osprof/ (what the Zipkin and Jaeger APIs do not
carry: open, start-missing and orphan spans, critical path, self time,
SQL statements, comparisons).

The page and its assets hold no trace data: PublicPages serves them to
anyone, so that a browser can load the page and then send a Keystone
token with its requests. /api/osprof/ sits behind the API's auth like
every other endpoint. Each answer here forbids framing, sniffing and any
script or style not served by osprof-api itself.
"""

import datetime

import webob
import webob.dec

from osprof_collector.api import params
from osprof_collector.api import responses
from osprof_collector.api import ui_assets
from osprof_collector import analysis
from osprof_collector import events
from osprof_collector.render import waterfall
from osprof_collector import search
from osprof_collector import timeparse

DEFAULT_LIMIT = 20
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
       "connect-src 'self'; img-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def secured(response):
    response.headers.update(SECURITY_HEADERS)
    return response


# -- the JSON the page reads ----------------------------------------------

def services(request, context):
    return _json(search.services(context.store))


def traces(request, context):
    """A search, as the Zipkin and Jaeger ones (search.find_traces)."""
    until = _moment(request, "until") or datetime.datetime.utcnow()
    since = _moment(request, "since") or until - datetime.timedelta(
        milliseconds=context.lookback_ms)
    if until < since:
        raise params.BadRequest("until is before since")
    min_ms = _milliseconds(request, "min_duration_ms")
    query = search.TraceQuery(
        since=since, until=until, limit=params.limit(request, DEFAULT_LIMIT),
        service=params.text(request, "service"),
        span_name=params.text(request, "name"),
        min_duration_us=None if min_ms is None else round(min_ms * 1000),
        terms=[("error", None)] if _flag(request, "errors") else [])
    found = []
    for base_id, spans in search.find_traces(context.store, query):
        stored = context.store.get_trace(base_id)
        if stored is not None:
            found.append(waterfall.summary(stored, spans))
    return _json(found)


def trace(request, context, base_id):
    return _kept(context, "waterfall", base_id, waterfall.trace)


def trace_analysis(request, context, base_id):
    return _kept(context, "analysis", base_id, waterfall.trace_analysis)


def span(request, context, base_id, trace_id):
    base_id = _uuid(base_id, "trace id")
    trace_id = _uuid(trace_id, "span id")
    # One span read by its id, not its trace of perhaps 10,000.
    found = context.store.get_span(trace_id)
    if found is None or found.base_id != base_id:
        if context.store.get_trace(base_id) is None:
            raise NotFound(f"trace {base_id} not found")
        return error(404, f"trace {base_id} has no span {trace_id}")
    return _json(waterfall.span_details(found))


def compare(request, context):
    given = [params.text(request, side, required=True) for side in "ab"]
    (base_a, spans_a), (base_b, spans_b) = [_trace(context, text)
                                            for text in given]
    return _json(analysis.compare(base_a, spans_a, base_b, spans_b))


class NotFound(Exception):
    """An unknown trace: answered 404 with its message."""


def _kept(context, kind, text, document):
    """The answer document(base_id, spans) about a trace, perhaps kept."""
    base_id = _uuid(text, "trace id")
    body = context.answers.body(kind, base_id,
                                lambda spans: document(base_id, spans))
    if body is None:
        raise NotFound(f"trace {base_id} not found")
    return secured(responses.encoded(body))


def _trace(context, text):
    base_id = _uuid(text, "trace id")
    spans = context.store.get_spans(base_id)
    if not spans:
        raise NotFound(f"trace {base_id} not found")
    return base_id, spans


def _uuid(text, what):
    found = events.normalise_uuid(text)
    if found is None:
        raise params.BadRequest(
            f"invalid {what} {text[:40]!r}: expected a UUID such as "
            f"4c9a3d6e-2f4b-4a44-9c4e-0f3e3a1c2b7d")
    return found


def _moment(request, name):
    """An ISO 8601 time (naive UTC) or an age such as 15m, 2h, 7d."""
    value = params.text(request, name)
    if value is None:
        return None
    try:
        return timeparse.parse_moment(value)
    except ValueError as exc:
        raise params.BadRequest(f"{name}: {exc}") from None


def _milliseconds(request, name):
    value = params.text(request, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number < 10**12:  # also refuses nan and inf
        raise params.BadRequest(f"{name} must be a number of milliseconds "
                                f"from 0, not {value[:40]!r}")
    return number


def _flag(request, name):
    value = request.GET.get(name, "")
    if value not in ("", "0", "1", "true", "false"):
        raise params.BadRequest(f"{name} must be 1 or 0, true or false")
    return value in ("1", "true")


def _json(document):
    return secured(responses.json(document))


def error(status, message):
    """The error answer of these routes: {"error": message}."""
    return secured(responses.error(status, message))


def _found(handler):
    """The handler, with an unknown trace answered 404."""
    def answer(request, context, **arguments):
        try:
            return handler(request, context, **arguments)
        except NotFound as exc:
            return error(404, str(exc))
    return answer


ROUTES = [(pattern, _found(handler)) for pattern, handler in [
    ("/api/osprof/services", services),
    ("/api/osprof/traces", traces),
    ("/api/osprof/traces/{base_id}", trace),
    ("/api/osprof/traces/{base_id}/analysis", trace_analysis),
    ("/api/osprof/traces/{base_id}/spans/{trace_id}", span),
    ("/api/osprof/compare", compare),
]]


# -- the page and its assets ----------------------------------------------

ASSETS = {
    "/": ("text/html", ui_assets.PAGE.encode()),
    "/ui/app.js": ("text/javascript", ui_assets.SCRIPT.encode()),
    "/ui/app.css": ("text/css", ui_assets.STYLE.encode()),
}


class PublicPages:
    """Serves the page and its assets itself; hands every other request
    to the application (behind its auth)."""

    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, request):
        asset = ASSETS.get(request.path_info)
        if asset is None:
            return request.get_response(self.app)
        if request.method not in ("GET", "HEAD"):
            response = error(405, f"{request.method} is not allowed here")
            response.allow = ("GET", "HEAD")
            return response
        content_type, body = asset
        return secured(webob.Response(
            body=body, content_type=content_type, charset="UTF-8"))
