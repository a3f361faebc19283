"""Query parameters, checked: each bad one is a BadRequest naming it.

Values are only ever compared with stored ones, never built into a query;
names are bounded as the collector bounds what it stores.
"""

import datetime
import re
import uuid

MAX_NAME = 255  # the collector stores no longer name, service, project
MAX_LIMIT = 1000
EPOCH = datetime.datetime(1970, 1, 1)  # store times are naive UTC
HEX_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")


class BadRequest(Exception):
    """A parameter the API cannot use: answered 400 with its message."""


def text(request, name, required=False):
    value = request.GET.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if len(value) > MAX_NAME:
        raise BadRequest(f"{name} is longer than {MAX_NAME} characters")
    return value


def integer(request, name, default=None, minimum=0, maximum=None):
    value = request.GET.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not "
                         f"{_shown(value)}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None \
            else f"at least {minimum}"
        raise BadRequest(f"{name} must be {bounds}, not {number}")
    return number


def limit(request, default):
    return integer(request, "limit", default, minimum=1, maximum=MAX_LIMIT)


def from_epoch_ms(ms):
    try:
        return EPOCH + datetime.timedelta(milliseconds=ms)
    except OverflowError:
        raise BadRequest(f"{ms} ms is past any date") from None


def from_epoch_us(us):
    try:
        return EPOCH + datetime.timedelta(microseconds=us)
    except OverflowError:
        raise BadRequest(f"{us} µs is past any date") from None


def base_id(hex_id):
    """The base_id of a 32-hex trace id (the exports' mapping), None for
    a 16-hex one (osprofiler ids are 128 bits: no trace has it)."""
    lowered = hex_id.lower()
    if not HEX_ID.fullmatch(lowered):
        raise BadRequest(f"invalid trace id {_shown(hex_id)}: expected 16 "
                         f"or 32 hexadecimal digits")
    if len(lowered) == 16:
        return None
    return str(uuid.UUID(hex=lowered))


def _shown(value):
    """A value quoted for an error message, cut if long."""
    return repr(value if len(value) <= 40 else value[:40] + "...")
