import datetime
import json

import pytest

from osprof_collector import events
from tests import payloads


def valid_payload(**changes):
    base_id = payloads.new_id()
    start, _ = payloads.call("cinder-volume", base_id, base_id, 0, 1)
    start.update(changes)
    return start


def test_osprofiler_payload_becomes_an_event():
    payload = valid_payload()
    event = events.parse(payload)
    assert isinstance(event, events.Event)
    assert event.name == "cinder-volume"  # dashes kept
    assert event.phase == "start"
    assert event.timestamp == payloads.EPOCH
    assert (event.project, event.service, event.host) == ("nova", "api",
                                                          "node-1")
    assert event.payload == payload
    # checked by encoding it: the store writes that text, not a new one
    assert json.loads(event.payload_json) == payload


@pytest.mark.parametrize("changes", [
    {"info": {"host": "node-1", "sql": "SELECT '\x00'"}},  # to be cleaned
    {"info": {"host": "node-1", "rows": 2 ** 70}},  # to be bounded
    {"trace_id": payloads.new_id().upper()},  # to be normalised
])
def test_a_payload_that_changes_is_encoded_by_the_store(changes):
    event = events.parse(valid_payload(**changes))
    assert isinstance(event, events.Event)
    assert event.payload_json is None


@pytest.mark.parametrize("key", events.REQUIRED_KEYS)
def test_missing_required_key(key):
    payload = valid_payload()
    del payload[key]
    assert events.parse(payload) == events.InvalidEvent(
        f"missing key {key!r}")


@pytest.mark.parametrize("key", ["base_id", "trace_id", "parent_id"])
@pytest.mark.parametrize("value", ["", "abc", 42, None, {"$ne": None},
                                   ["x"], " " + payloads.new_id()[1:],
                                   payloads.new_id()[:-1] + " ",
                                   "12345678-1234-1234-1234-12345678"
                                   "901Z", "{12345678-1234-1234-1234-1234567"
                                   "8901}"])
def test_ids_must_be_uuid_strings(key, value):
    result = events.parse(valid_payload(**{key: value}))
    assert result == events.InvalidEvent(f"{key} is not a UUID string")


def test_uppercase_uuid_is_normalised():
    payload = valid_payload()
    payload["trace_id"] = payload["trace_id"].upper()
    assert events.parse(payload).trace_id == payload["trace_id"].lower()


@pytest.mark.parametrize("name", ["db", "-start", "db-begin", "db-start ",
                                  "", 7, None, ["db-start"]])
def test_name_must_end_in_start_or_stop(name):
    assert isinstance(events.parse(valid_payload(name=name)),
                      events.InvalidEvent)


@pytest.mark.parametrize("text,expected", [
    ("2026-11-01T12:00:00.250000", datetime.datetime(2026, 11, 1, 12, 0, 0,
                                                     250000)),
    ("2026-11-01T12:00:00", datetime.datetime(2026, 11, 1, 12, 0, 0)),
    ("2026-11-01T12:00:00.25", datetime.datetime(2026, 11, 1, 12, 0, 0,
                                                 250000)),
    ("2026-11-01T13:00:00+01:00", datetime.datetime(2026, 11, 1, 12, 0, 0)),
    ("2026-11-01T12:00:00Z", datetime.datetime(2026, 11, 1, 12, 0, 0)),
    ("2026-11-01 12:00:00.000001", datetime.datetime(2026, 11, 1, 12, 0, 0,
                                                     1)),
])
def test_timestamps_are_parsed_tolerantly(text, expected):
    assert events.parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["2026-13-01T00:00:00", "2026-02-30T00:00",
                                  "yesterday", "", 1700000000, None,
                                  "0000-01-01T00:00:00", "9" * 100,
                                  "0001-01-01T00:00:00+01:00"])
def test_impossible_timestamps_are_invalid(text):
    assert events.parse_timestamp(text) is None
    assert isinstance(events.parse(valid_payload(timestamp=text)),
                      events.InvalidEvent)


@pytest.mark.parametrize("info", ["text", ["host"], 3, None])
def test_info_must_be_a_dict(info):
    assert events.parse(valid_payload(info=info)) == events.InvalidEvent(
        f"info is {type(info).__name__}, not a dict")


def test_info_may_be_absent():
    payload = valid_payload()
    del payload["info"]
    event = events.parse(payload)
    assert event.info == {} and event.host is None


@pytest.mark.parametrize("key", ["project", "service"])
def test_labels_must_be_strings(key):
    assert isinstance(events.parse(valid_payload(**{key: {"$gt": ""}})),
                      events.InvalidEvent)


def test_not_a_dict():
    assert events.parse("db-start") == events.InvalidEvent(
        "payload is str, not a dict")


def test_oversized_info_keeps_small_entries_and_says_what_was_cut():
    info = {"host": "node-1", "db": {"statement": "x" * 200000},
            "small": 1}
    event = events.parse(valid_payload(info=info), max_info_bytes=4096)
    assert event.info["host"] == "node-1" and event.info["small"] == 1
    assert "db" not in event.info
    assert event.info[events.TRUNCATED_KEY]["keys"] == ["db"]
    assert event.info[events.TRUNCATED_KEY]["original_bytes"] > 200000
    assert len(json.dumps(event.info)) <= 4096
    assert event.payload["info"] == event.info


def test_deep_nesting_is_cut():
    deep = leaf = {}
    for _ in range(300):
        leaf["d"] = {}
        leaf = leaf["d"]
    event = events.parse(valid_payload(info={"deep": deep, "host": "h"}))
    depth, node = 0, event.info["deep"]
    while isinstance(node, dict):
        node, depth = node["d"], depth + 1
    assert depth < 40 and node == "..."
    assert event.info[events.TRUNCATED_KEY]["keys"][0].startswith("deep.d")


def test_values_no_store_can_hold_are_made_storable():
    info = {"nul\x00key": "a\x00b", "big": 2 ** 70, "nan": float("nan"),
            "obj": object, "tuple": (1, 2), 5: "int key", "host": "h"}
    event = events.parse(valid_payload(info=info))
    assert event.info["nul\ufffdkey"] == "a\ufffdb"
    assert event.info["big"] == str(2 ** 70)
    assert event.info["nan"] == "nan"
    assert event.info["obj"] == "<class 'object'>"
    assert event.info["tuple"] == [1, 2]
    assert event.info["5"] == "int key"
    json.dumps(event.payload, allow_nan=False)


def test_integers_past_64_bits_become_strings_and_others_stay():
    # orjson encodes unsigned 64-bit integers, which no store holds.
    info = {"u64": 2 ** 63 + 5, "i64": -(2 ** 63) + 1, "big": 2 ** 60,
            "host": "h"}
    event = events.parse(valid_payload(info=info))
    assert event.info == {"u64": str(2 ** 63 + 5), "i64": -(2 ** 63) + 1,
                          "big": 2 ** 60, "host": "h"}


def test_stop_with_error():
    base_id = payloads.new_id()
    _, stop = payloads.call("rpc", base_id, base_id, 0, 1, stop_info={
        "etype": "ValueError", "message": "boom"})
    event = events.parse(stop)
    assert event.phase == "stop" and event.info["etype"] == "ValueError"


@pytest.mark.parametrize("text", ["0005-01-01T00:00:00",
                                  "1969-12-31T23:59:59.999999"])
def test_timestamps_before_1970_are_invalid(text):
    assert events.parse(valid_payload(timestamp=text)) == \
        events.InvalidEvent("timestamp is before 1970")


@pytest.mark.parametrize("key", ["base_id", "parent_id"])
def test_a_span_cannot_be_its_own_parent_or_the_trace(key):
    payload = valid_payload()
    payload["trace_id"] = payload[key]
    assert events.parse(payload) == events.InvalidEvent(
        "trace_id equals base_id or parent_id")


@pytest.mark.parametrize("key", ["name", "project", "service", "host"])
def test_labels_are_short_enough_to_index(key):
    payload = valid_payload()
    if key == "host":
        payload["info"]["host"] = "h" * 256
    else:
        payload[key] = "x" * 256 + payload[key]
    assert events.parse(payload) == events.InvalidEvent(
        f"{key} is longer than {events.MAX_LABEL_LENGTH} characters")


def test_whole_payload_is_made_storable_and_bounded():
    payload = valid_payload(**{"nul\x00key": "v", "huge": "x" * 200000,
                               "nested": {"$where": {"a.b": "c\x00"}},
                               "count": 2 ** 70})
    event = events.parse(payload, max_info_bytes=4096)
    stored = event.payload
    assert "nul\ufffdkey" in stored and "huge" not in stored
    assert stored[events.TRUNCATED_KEY]["keys"] == ["huge"]
    assert stored["nested"] == {"$where": {"a.b": "c\ufffd"}}
    assert stored["count"] == str(2 ** 70)
    for key in events.REQUIRED_KEYS + ("project", "service", "info"):
        assert stored[key] == payload[key]
    assert len(json.dumps(stored)) < 2 * 4096
