"""Query parameters, checked: each bad one is a BadRequest naming it.

Values are only ever compared with stored ones, never built into a query;
names are bounded as the collector bounds what it stores.
"""

import datetime
import json
import re
import uuid

MAX_NAME = 255  # the collector stores no longer name, service, project
MAX_LIMIT = 1000
EPOCH = datetime.datetime(1970, 1, 1)  # store times are naive UTC
HEX_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")
HEX_DIGITS = re.compile(r"[0-9a-f]+")


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


def padded_base_id(hex_id):
    """base_id() of an id Jaeger may print without its leading zeros."""
    if 0 < len(hex_id) < 32 and HEX_DIGITS.fullmatch(hex_id.lower()):
        hex_id = hex_id.rjust(32, "0")
    return base_id(hex_id)


def _shown(value):
    """A value quoted for an error message, cut if long."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


GO_DURATION = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
GO_UNIT_US = {"ns": 0.001, "us": 1, "µs": 1, "μs": 1, "ms": 1000,
              "s": 10**6, "m": 60 * 10**6, "h": 3600 * 10**6}


def go_duration_us(request, name):
    """A Go duration ("1.5s", "100ms", "1h30m") in whole microseconds."""
    value = request.GET.get(name)
    if value is None or value == "":
        return None
    if not GO_DURATION.fullmatch(value):
        raise BadRequest(f"{name} must be a duration such as 1.5s, 100ms "
                         f"or 1h30m, not {_shown(value)}")
    return round(sum(float(number) * GO_UNIT_US[unit]
                     for number, unit in GO_PART.findall(value)))


def rfc3339(request, name):
    """An RFC 3339 time ("2026-12-03T12:00:00Z") as naive UTC."""
    value = request.GET.get(name)
    if value is None or value == "":
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an RFC 3339 time such as "
                         f"2026-12-03T12:00:00Z, not {_shown(value)}") \
            from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name} must say its offset from UTC (Z or "
                         f"+HH:MM): {_shown(value)}")
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def json_tags(request, name):
    """A JSON object of tag values ('{"error":"true"}') as [(key, text)]."""
    value = request.GET.get(name)
    if value is None or value == "":
        return []
    try:
        tags = json.loads(value)
    except ValueError:
        tags = None
    if not isinstance(tags, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in tags.values()):
        raise BadRequest(f"{name} must be a JSON object of tag values, such "
                         f"as {{\"error\": \"true\"}}")
    return [(key, json.dumps(v) if isinstance(v, bool) else str(v))
            for key, v in tags.items()]
