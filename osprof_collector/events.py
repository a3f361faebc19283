"""Turn one osprofiler notification payload into a validated Event.

Anything that does not look exactly like what osprofiler's messaging driver
sends becomes an InvalidEvent carrying the reason: the endpoint counts and
acks those instead of crashing or requeueing them forever.
"""

import dataclasses
import datetime
import json
import math
import re

import orjson

PHASES = ("start", "stop")
UUID_FORM = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REQUIRED_KEYS = ("name", "base_id", "trace_id", "parent_id", "timestamp")
# Names, projects, services and hosts are indexed and listed: keep them short.
MAX_LABEL_LENGTH = 255
# Every store keeps these (MySQL's DATETIME starts at year 1000), and
# osprofiler's clock is UTC now: older is a broken clock or a forgery.
EARLIEST = datetime.datetime(1970, 1, 1)
TRUNCATED_KEY = "osprof_truncated"
# MongoDB refuses documents nested deeper than 100 levels; stay well below.
MAX_INFO_DEPTH = 32
# PostgreSQL text and jsonb cannot hold NUL characters.
NUL_REPLACEMENT = "\ufffd"


# Not frozen: a frozen dataclass costs microseconds per event to build.
@dataclasses.dataclass(slots=True)
class Event:
    """One half (start or stop) of a traced call."""

    base_id: str
    trace_id: str
    parent_id: str
    name: str  # without the -start/-stop suffix, dashes kept
    phase: str  # "start" or "stop"
    timestamp: datetime.datetime  # naive UTC
    project: str | None
    service: str | None
    host: str | None
    info: dict
    payload: dict  # what osprofiler sent, with info bounded
    # The payload as JSON text, when checking it already encoded it.
    payload_json: str | None = None


@dataclasses.dataclass(frozen=True)
class InvalidEvent:
    reason: str


def parse(payload, max_info_bytes=65536):
    """Return an Event, or an InvalidEvent saying what is wrong."""
    if not isinstance(payload, dict):
        return InvalidEvent(f"payload is {type(payload).__name__}, not a dict")
    try:
        sent_ids = (payload["base_id"], payload["trace_id"],
                    payload["parent_id"])
        sent_name, sent_time = payload["name"], payload["timestamp"]
    except KeyError:
        missing = next(k for k in REQUIRED_KEYS if k not in payload)
        return InvalidEvent(f"missing key {missing!r}")
    ids = (normalise_uuid(sent_ids[0]), normalise_uuid(sent_ids[1]),
           normalise_uuid(sent_ids[2]))
    if None in ids:
        key = ("base_id", "trace_id", "parent_id")[ids.index(None)]
        return InvalidEvent(f"{key} is not a UUID string")
    base_id, trace_id, parent_id = ids
    if trace_id == base_id or trace_id == parent_id:
        # osprofiler gives every call an id of its own; a span that is its
        # own parent or the trace itself would hang nowhere in the tree.
        return InvalidEvent("trace_id equals base_id or parent_id")
    name, phase = _split_name(sent_name)
    if name is None:
        return InvalidEvent("name is not a string ending in -start or -stop")
    timestamp = parse_timestamp(sent_time)
    if timestamp is None:
        return InvalidEvent("timestamp is not an ISO 8601 date and time")
    if timestamp < EARLIEST:
        return InvalidEvent("timestamp is before 1970")
    info = payload.get("info", {})
    if not isinstance(info, dict):
        return InvalidEvent(f"info is {type(info).__name__}, not a dict")
    project, service = payload.get("project"), payload.get("service")
    for key, value in (("project", project), ("service", service)):
        if value is not None and not isinstance(value, str):
            return InvalidEvent(
                f"{key} is {type(value).__name__}, not a string")
    payload_json = None
    if "info" in payload and ids == sent_ids:
        payload_json = _plain_json(payload, max_info_bytes)
    if payload_json is not None:
        clean_payload = payload  # the usual case: stored as it came
    else:
        name, project, service = _clean(name), _clean(project), _clean(service)
        info = bound_info(info, max_info_bytes)
        clean_payload = _storable_copy(payload, ids, project, service, info,
                                       max_info_bytes)
    host = info.get("host")  # clean: info went through _plain_json or _clean
    if not isinstance(host, str):
        host = None
    for key, value in (("name", name), ("host", host), ("project", project),
                       ("service", service)):
        if value is not None and len(value) > MAX_LABEL_LENGTH:
            return InvalidEvent(
                f"{key} is longer than {MAX_LABEL_LENGTH} characters")
    return Event(base_id=base_id, trace_id=trace_id, parent_id=parent_id,
                 name=name, phase=phase, timestamp=timestamp,
                 project=project, service=service, host=host, info=info,
                 payload=clean_payload, payload_json=payload_json)


def _storable_copy(payload, ids, project, service, info, max_bytes):
    """The payload with canonical ids, clean labels and the bounded info;
    anything else osprofiler may add is bounded like info."""
    known = {k: payload[k] for k in REQUIRED_KEYS}
    known.update(zip(("base_id", "trace_id", "parent_id"), ids))
    for key, value in (("project", project), ("service", service)):
        if key in payload:
            known[key] = value
    extra = {k: v for k, v in payload.items()
             if k not in known and k != "info"}
    clean_payload = bound_info(extra, max_bytes) if extra else {}
    clean_payload.update(known)
    clean_payload["name"] = _clean(clean_payload["name"])
    clean_payload["info"] = info
    return clean_payload


def normalise_uuid(value):
    """The canonical lower-case form of a UUID string, else None.

    Stricter than uuid.UUID(), which also takes braces, a urn: prefix and
    whitespace inside the digits (silently giving another UUID).
    """
    if not isinstance(value, str):
        return None
    if CANONICAL_UUID.fullmatch(value):
        return value  # what osprofiler sends
    return value.lower() if UUID_FORM.match(value) else None


def _split_name(value):
    if not isinstance(value, str):
        return None, None
    name, dash, phase = value.rpartition("-")
    if dash and name and phase in PHASES:
        return name, phase
    return None, None


def parse_timestamp(value):
    """ISO 8601 with or without fraction or offset → naive UTC, else None."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(datetime.timezone.utc)
        except OverflowError:
            return None
        parsed = parsed.replace(tzinfo=None)
    return parsed


def bound_info(info, max_bytes):
    """Make info storable everywhere and no bigger than max_bytes of JSON.

    Strings lose NUL characters, nesting is cut at MAX_INFO_DEPTH, and an
    oversized info keeps only its small top-level entries; whatever was cut
    is named under the TRUNCATED_KEY entry.
    """
    if _plain_json(info, max_bytes) is not None:
        return info
    truncated = []
    info = {_clean(str(k)): _clean(v, MAX_INFO_DEPTH, truncated, str(k))
            for k, v in info.items()}
    size = _json_size(info)
    if size > max_bytes:
        kept, budget = {}, max_bytes // 2
        by_size = sorted(info.items(), key=lambda kv: _json_size(kv[1]))
        for key, value in by_size:
            value_size = _json_size(value) + len(key) + 4
            if value_size > budget:
                truncated.append(key)
                continue
            kept[key] = value
            budget -= value_size
        info = kept
        info[TRUNCATED_KEY] = {"original_bytes": size}
    if truncated:
        info.setdefault(TRUNCATED_KEY, {})["keys"] = sorted(truncated)
    return info


def _plain_json(value, max_bytes):
    """The JSON text of value if it is no longer than max_bytes and shows
    nothing _clean() would change (no NUL, no integer past 53 bits, no key
    that is not a string, no NaN, fewer containers in all than the depth
    limit), else None. A string that merely looks suspicious, or an integer
    that only JavaScript could not hold, costs the slow path (which keeps
    integers that fit in 64 bits).
    """
    try:
        # str, not bytes: the store wants text, and str searches are faster
        text = orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER).decode()
        if "null" in text:  # orjson writes NaN and infinity as null
            json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None
    if (len(text) > max_bytes or "\\u0000" in text
            or text.count("{") + text.count("[") >= MAX_INFO_DEPTH):
        return None
    return text


def _clean(value, depth_left=MAX_INFO_DEPTH, truncated=None, path=""):
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        # no backend stores integers past 64 bits
        return value if abs(value) < 2 ** 63 else str(value)
    if isinstance(value, float):
        # JSON has no NaN or infinity
        return value if math.isfinite(value) else repr(value)
    if depth_left <= 0:
        if truncated is not None:
            truncated.append(path)
        return "..."
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v, depth_left - 1, truncated,
                                       f"{path}.{k}")
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth_left - 1, truncated, path) for v in value]
    return _clean(repr(value))


def _json_size(value):
    return len(orjson.dumps(value, default=repr))
