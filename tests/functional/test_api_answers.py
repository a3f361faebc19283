"""osprof-api sends its answers about a closed trace again, and never an
answer that a span written since would change."""

import sqlite3

import pytest

from osprof_collector.api import answers
from osprof_collector import events
from osprof_collector.render import exports
from osprof_collector import spans
from osprof_collector import storage
from tests.functional import api_server
from tests import payloads

# Every answer about one trace that osprof-api keeps, and how many spans
# each shows.
KEPT = {
    "/api/v2/trace/{hex}": lambda doc: len(doc),
    "/api/traces/{hex}": lambda doc: len(doc["data"][0]["spans"]),
    "/api/v3/traces/{hex}": lambda doc: sum(
        len(scope["spans"]) for resource in doc["result"]["resourceSpans"]
        for scope in resource["scopeSpans"]),
    "/api/osprof/traces/{base_id}": lambda doc: doc["span_count"],
    "/api/osprof/traces/{base_id}/analysis": lambda doc: len(
        doc["self_ms"]),
}


def write(url, *raw):
    store = storage.get_driver(url, ttl=0)
    try:
        store.write_spans([spans.from_event(events.parse(p)) for p in raw])
    finally:
        store.close()


def span_counts(api, base_id):
    hex_id = exports.trace_hex(base_id)
    counts = {}
    for path, count in KEPT.items():
        response = api.get(path.format(hex=hex_id, base_id=base_id))
        assert response.status_code == 200, (path, response.text)
        counts[path] = count(response.json())
    return counts


@pytest.fixture
def store_url(tmp_path):
    url = f"sqlite:///{tmp_path}/osprof.db"
    storage.get_driver(url, ttl=0).close()  # as the collector makes it
    return url


@pytest.fixture
def api(tmp_path, store_url):
    server = api_server.ApiServer(tmp_path, store_url).start()
    yield server
    server.stop()


def a_closed_trace(url):
    base_id = payloads.new_id()
    root = payloads.call("wsgi", base_id, base_id, 0, 100)
    write(url, *root, *payloads.call("db", base_id, root[0]["trace_id"],
                                     10, 20))
    return base_id, root[0]["trace_id"]


def test_a_new_span_changes_every_answer_kept_about_its_trace(api,
                                                              store_url):
    base_id, root_id = a_closed_trace(store_url)
    assert set(span_counts(api, base_id).values()) == {2}
    assert set(span_counts(api, base_id).values()) == {2}  # kept ones
    write(store_url, *payloads.call("db", base_id, root_id, 30, 40))
    assert set(span_counts(api, base_id).values()) == {3}


def test_a_span_that_stops_later_shows_stopped(api, store_url):
    base_id = payloads.new_id()
    start, stop = payloads.call("wsgi", base_id, base_id, 0, 100)
    write(store_url, start)
    hex_id = exports.trace_hex(base_id)
    [span] = api.get(f"/api/v2/trace/{hex_id}").json()
    assert span["tags"]["osprofiler.open"] == "true"
    write(store_url, stop)  # the span count stays 1
    [span] = api.get(f"/api/v2/trace/{hex_id}").json()
    assert "osprofiler.open" not in span["tags"]
    assert span["duration"] == 100_000


def test_a_kept_answer_is_sent_without_reading_the_spans(tmp_path,
                                                         store_url):
    base_id, _ = a_closed_trace(store_url)
    kept = api_server.ApiServer(tmp_path, store_url).start()
    none_kept = api_server.ApiServer(tmp_path, store_url,
                                     trace_cache_size=0).start()
    try:
        first = {a: span_counts(a, base_id) for a in (kept, none_kept)}
        # The span rows go, the summary that counts them stays.
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            db.execute("DELETE FROM osprof_spans")
        assert span_counts(kept, base_id) == first[kept]
        hex_id = exports.trace_hex(base_id)
        assert none_kept.get(f"/api/v2/trace/{hex_id}").status_code == 404
        # A trace gone (purged) goes with its summary: nothing is kept.
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            db.execute("DELETE FROM osprof_traces")
        assert kept.get(f"/api/v2/trace/{hex_id}").status_code == 404
    finally:
        kept.stop()
        none_kept.stop()


class CountedReads:
    """A real store that counts the span reads made through it."""

    def __init__(self, store):
        self.store = store
        self.span_reads = 0

    def get_trace(self, base_id):
        return self.store.get_trace(base_id)

    def get_spans(self, base_id):
        self.span_reads += 1
        return self.store.get_spans(base_id)


def test_answers_are_kept_up_to_a_size_least_recently_sent_out_first(
        store_url):
    first, _ = a_closed_trace(store_url)
    second, _ = a_closed_trace(store_url)
    store = CountedReads(storage.get_driver(store_url))
    kept = answers.Answers(store, max_bytes=100)
    try:
        def body(base_id):
            return kept.body("test", base_id, lambda found: "x" * 58)

        body(first)
        body(first)
        assert store.span_reads == 1
        body(second)  # 2 x 60 bytes ('"x...x"'): the first answer goes
        body(second)
        assert store.span_reads == 2
        body(first)
        assert store.span_reads == 3
        too_big = answers.Answers(store, max_bytes=10)
        too_big.body("test", first, lambda found: "x" * 58)
        too_big.body("test", first, lambda found: "x" * 58)
        assert store.span_reads == 5
        assert kept.body("test", payloads.new_id(), list) is None
        assert kept.body("test", None, list) is None
    finally:
        store.store.close()
