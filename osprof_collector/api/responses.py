"""The API's responses: JSON documents, JSON errors, plain-text 404s."""

import orjson
import webob


def json(document, status=200):
    return webob.Response(body=orjson.dumps(document), status=status,
                          content_type="application/json", charset=None)


def error(status, message):
    """An error as {"error": message}, what every 4xx/5xx here says."""
    return json({"error": message}, status=status)


def not_found(message):
    """Zipkin's answer for an unknown trace: 404, plain text."""
    return webob.Response(body=message.encode(), status=404,
                          content_type="text/plain", charset="UTF-8")
