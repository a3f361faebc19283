"""A seeded corpus of malformed osprofiler notifications.

Every payload here must be refused by events.parse(): each breaks one rule
(a required key missing or of the wrong type, an id that is not a UUID, an
operator-like value, an impossible or pre-1970 timestamp, an info that is
not a dict, a span that is its own parent, a name or label too long to
index).
"""

import random
import uuid

REQUIRED = ("name", "base_id", "trace_id", "parent_id", "timestamp")
WRONG_TYPES = [None, 0, 1.5, True, [], ["x"], {}, {"a": 1}]
OPERATORS = [{"$ne": None}, {"$gt": ""}, {"$where": "sleep(100)"},
             {"$regex": ".*"}, "'; DROP TABLE osprof_spans; --",
             "1' OR '1'='1", "%", "*"]
BAD_IDS = ["", "abc", uuid.uuid4().hex, str(uuid.uuid4()) + "0",
           "{" + str(uuid.uuid4())[1:-1] + "}", "g" * 36,
           str(uuid.uuid4())[:-1] + " "] + OPERATORS
BAD_NAMES = ["db", "-start", "-stop", "db-begin", "db-start ", "DB-START",
             ""] + OPERATORS
BAD_TIMESTAMPS = ["2026-13-01T00:00:00", "2026-02-30T12:00:00",
                  "2026-11-26T25:00:00", "yesterday", "", "0000-00-00",
                  "2026-11-26T12:00:00+25:00", "1e10", 1700000000,
                  "9" * 64, "0005-01-01T00:00:00",
                  "1969-12-31T23:59:59.999999"] + OPERATORS
BAD_INFO = ["host=node-1", ["host", "node-1"], 7, 0.5, True]


def valid(rng):
    trace_id = str(uuid.UUID(int=rng.getrandbits(128)))
    base_id = str(uuid.UUID(int=rng.getrandbits(128)))
    return {"name": "db-start", "base_id": base_id, "trace_id": trace_id,
            "parent_id": base_id, "timestamp": "2026-11-26T12:00:00.000001",
            "project": "nova", "service": "api",
            "info": {"host": "node-1"}}


def _missing_key(rng, payload):
    del payload[rng.choice(REQUIRED)]
    return payload


def _wrong_type(rng, payload):
    payload[rng.choice(REQUIRED)] = rng.choice(WRONG_TYPES)
    return payload


def _bad_id(rng, payload):
    payload[rng.choice(REQUIRED[1:4])] = rng.choice(BAD_IDS)
    return payload


def _bad_name(rng, payload):
    payload["name"] = rng.choice(BAD_NAMES)
    return payload


def _bad_timestamp(rng, payload):
    payload["timestamp"] = rng.choice(BAD_TIMESTAMPS)
    return payload


def _bad_info(rng, payload):
    payload["info"] = rng.choice(BAD_INFO)
    return payload


def _bad_label(rng, payload):
    payload[rng.choice(["project", "service"])] = rng.choice(
        [1, ["nova"], {"$ne": None}])
    return payload


def _self_parent(rng, payload):
    payload["trace_id"] = payload[rng.choice(["base_id", "parent_id"])]
    return payload


def _too_long(rng, payload):
    key = rng.choice(["name", "project", "service"])
    payload[key] = "x" * rng.randint(256, 5000) + payload.get(key, "")
    return payload


def _not_a_dict(rng, payload):
    return rng.choice(["db-start", 42, None, [payload], ""])


BREAKERS = [_missing_key, _wrong_type, _bad_id, _bad_name, _bad_timestamp,
            _bad_info, _bad_label, _self_parent, _too_long, _not_a_dict]


def corpus(count, seed=20261126):
    """count malformed payloads, the same ones for the same seed."""
    rng = random.Random(seed)
    for n in range(count):
        yield BREAKERS[n % len(BREAKERS)](rng, valid(rng))
