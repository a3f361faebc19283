"""The API's responses: JSON documents, JSON errors, plain-text 404s."""

import orjson
import webob


def json(document, status=200):
    return encoded(orjson.dumps(document), status)


def encoded(body, status=200):
    """A JSON document already encoded."""
    return webob.Response(body=body, status=status,
                          content_type="application/json", charset=None)


def error(status, message):
    """An error as {"error": message}, what every 4xx/5xx here says."""
    return json({"error": message}, status=status)


def not_found(message):
    """Zipkin's answer for an unknown trace: 404, plain text."""
    return webob.Response(body=message.encode(), status=404,
                          content_type="text/plain", charset="UTF-8")


def jaeger(data, status=200, errors=None):
    return json(jaeger_envelope(data, errors), status=status)


def jaeger_envelope(data, errors=None):
    """Jaeger query's envelope: {data, total, limit, offset, errors}."""
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0,
            "errors": errors}


def jaeger_error(status, message):
    return jaeger(None, status=status,
                  errors=[{"code": status, "msg": message}])


def v3_error(status, message):
    """Jaeger's api_v3 error: {"error": {"httpCode", "message"}}."""
    return json({"error": {"httpCode": status, "message": message}},
                status=status)
