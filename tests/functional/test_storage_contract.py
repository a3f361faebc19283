"""The storage contract, run against every driver."""

import concurrent.futures
import datetime
import random
import statistics

import pytest

from osprof_collector import endpoint
from osprof_collector import events
from osprof_collector import spans
from osprof_collector.storage import base
from tests import payloads


def partial_spans(*raw_payloads):
    return [spans.from_event(events.parse(p)) for p in raw_payloads]


def a_trace(base_id=None, start_ms=0, service="api", project="nova",
            error=False):
    """A root call with two children: the raw payloads, in send order."""
    base_id = base_id or payloads.new_id()
    root_id = payloads.new_id()
    labels = {"service": service, "project": project}
    root = payloads.call("wsgi", base_id, base_id, start_ms, start_ms + 100,
                         trace_id=root_id, **labels)
    db = payloads.call("db", base_id, root_id, start_ms + 10, start_ms + 20,
                       **labels)
    rpc = payloads.call("cinder-volume", base_id, root_id, start_ms + 30,
                        start_ms + 90,
                        stop_info={"etype": "ValueError", "message": "boom"}
                        if error else None,
                        service="volume", project="cinder")
    return base_id, [root[0], db[0], db[1], rpc[0], rpc[1], root[1]]


def test_start_and_stop_written_apart_make_one_complete_span(store):
    base_id = payloads.new_id()
    start, stop = payloads.call("db", base_id, base_id, 5, 17.5)
    store.write_spans(partial_spans(start))
    [open_span] = store.get_spans(base_id)
    assert open_span.is_open and open_span.started_at == payloads.EPOCH + \
        datetime.timedelta(milliseconds=5)
    store.write_spans(partial_spans(stop))
    [span] = store.get_spans(base_id)
    assert span.trace_id == start["trace_id"]
    assert span.parent_id == base_id
    assert span.name == "db"
    assert (span.project, span.service, span.host) == ("nova", "api",
                                                       "node-1")
    assert span.started_at == payloads.EPOCH + datetime.timedelta(
        milliseconds=5)
    assert span.finished_at == payloads.EPOCH + datetime.timedelta(
        microseconds=17500)
    assert span.start_payload == start
    assert span.stop_payload == stop
    assert span.error is None and not span.is_open


def test_stop_before_start_and_redelivery_give_the_same_span(store):
    base_id = payloads.new_id()
    start, stop = payloads.call("db", base_id, base_id, 0, 10)
    for batch in ([stop], [stop], [start], [stop, start], [start]):
        store.write_spans(partial_spans(*batch))
    [span] = store.get_spans(base_id)
    assert span.start_payload == start and span.stop_payload == stop
    summary = store.get_trace(base_id)
    assert summary.span_count == 1
    assert summary.duration_ms == 10


def test_root_without_starts_is_named_whatever_the_order(store):
    """Top-level spans whose starts never came rank after any started one,
    then by name: batches in either order name the same root."""
    for order in ("ab", "ba"):
        base_id = payloads.new_id()
        stops = {name: payloads.call(name, base_id, base_id, 0, 10)[1]
                 for name in "ab"}
        for name in order:
            store.write_spans(partial_spans(stops[name]))
        assert store.get_trace(base_id).root_name == "a", order
        # A start, even of a span stored before, may rank first.
        late_start, _stop = payloads.call("z", base_id, base_id, 5, 10)
        store.write_spans(partial_spans(late_start))
        assert store.get_trace(base_id).root_name == "z", order


def test_summary_follows_the_spans(store):
    base_id, raw = a_trace(error=True)
    for payload in raw:  # one write per event, as the slowest sender would
        store.write_spans(partial_spans(payload))
    summary = store.get_trace(base_id)
    assert summary.base_id == base_id
    assert summary.span_count == 3
    assert summary.started_at == payloads.EPOCH
    assert summary.finished_at == payloads.EPOCH + datetime.timedelta(
        milliseconds=100)
    assert summary.duration_ms == 100
    assert sorted(summary.services) == ["api", "volume"]
    assert sorted(summary.projects) == ["cinder", "nova"]
    assert summary.error is True
    assert summary.root_name == "wsgi"
    error_span = [s for s in store.get_spans(base_id) if s.error][0]
    assert error_span.name == "cinder-volume"
    assert error_span.error == {"etype": "ValueError", "message": "boom"}


def test_unknown_trace(store):
    assert store.get_spans(payloads.new_id()) == []
    assert store.get_trace(payloads.new_id()) is None
    assert store.get_span(payloads.new_id()) is None


def test_one_span_by_its_id(store):
    base_id, raw = a_trace(error=True)
    store.write_spans(partial_spans(*raw[:4]))  # the rpc call's stop later
    by_id = {span.trace_id: span for span in store.get_spans(base_id)}
    for trace_id, span in by_id.items():
        assert store.get_span(trace_id) == span
    rpc_id = raw[4]["trace_id"]
    assert store.get_span(rpc_id).is_open
    store.write_spans(partial_spans(*raw[4:]))
    assert store.get_span(rpc_id).error["etype"] == "ValueError"
    assert store.get_span({"$ne": None}) is None  # never an operator


def test_list_traces_newest_first_with_limit(store):
    ids = []
    for minute in range(5):
        base_id, raw = a_trace(start_ms=minute * 60000)
        store.write_spans(partial_spans(*raw))
        ids.append(base_id)
    listed = [t.base_id for t in store.list_traces(limit=3)]
    assert listed == ids[::-1][:3]


def test_list_traces_filters(store):
    slow_id, raw = a_trace(start_ms=0, service="api", project="nova")
    store.write_spans(partial_spans(*raw))
    error_id, raw = a_trace(start_ms=60000, service="scheduler",
                            project="placement", error=True)
    store.write_spans(partial_spans(*raw))
    quick_id = payloads.new_id()
    store.write_spans(partial_spans(*payloads.call(
        "rpc", quick_id, quick_id, 120000, 120005, service="conductor",
        project="nova")))

    def listed(**kwargs):
        return {t.base_id for t in store.list_traces(base.TraceFilter(
            **kwargs), limit=100)}

    assert listed() == {slow_id, error_id, quick_id}
    assert listed(service="scheduler") == {error_id}
    assert listed(service="volume") == {slow_id, error_id}
    assert listed(project="nova") == {slow_id, quick_id}
    assert listed(name="rpc") == {quick_id}
    assert listed(errors_only=True) == {error_id}
    assert listed(min_duration_ms=50) == {slow_id, error_id}
    moment = payloads.EPOCH + datetime.timedelta(minutes=1)
    assert listed(since=moment) == {error_id, quick_id}
    assert listed(until=moment) == {slow_id}
    assert listed(since=moment, until=moment + datetime.timedelta(
        minutes=1)) == {error_id}


def test_filter_values_are_never_operators(store):
    base_id, raw = a_trace()
    store.write_spans(partial_spans(*raw))
    for hostile in ("%", "_", "a%", "' OR '1'='1", "api' --", "|",
                    '{"$ne": null}', "$ne", ".*"):
        assert store.list_traces(base.TraceFilter(service=hostile)) == []
        assert store.list_traces(base.TraceFilter(project=hostile)) == []
        assert store.list_traces(base.TraceFilter(name=hostile)) == []
        assert store.get_spans(hostile) == []
        assert store.get_trace(hostile) is None
        assert store.span_latency(hostile) == []
        assert store.span_latency("api", name=hostile) == []
        assert store.span_latency("api", project=hostile) == []


def test_hostile_keys_and_values_round_trip(store):
    base_id = payloads.new_id()
    info = {"$where": "sleep(1000)", "a.b": {"c.d": 1, "$ne": None},
            "db": {"statement": "SELECT '<script>alert(1)</script>'"},
            "nul": "a\x00b", "unicode": "žluťoučký kůň ☃"}
    start, stop = payloads.call("db", base_id, base_id, 0, 1)
    start["info"].update(info)
    store.write_spans(partial_spans(start, stop))
    [span] = store.get_spans(base_id)
    stored = span.start_payload["info"]
    assert stored["$where"] == "sleep(1000)"
    assert stored["a.b"] == {"c.d": 1, "$ne": None}
    assert stored["db"] == info["db"]
    assert stored["nul"] == "a\ufffdb"
    assert stored["unicode"] == info["unicode"]


def test_quotes_backslashes_and_braces_round_trip(store):
    """What array, JSON and SQL literals treat specially is stored as
    given, in every column, and the word NULL is not a missing value."""
    base_id = payloads.new_id()
    odd = ' a "quoted", \\back\\slash {braces} \'single\' '
    start, stop = payloads.call(
        "NULL", base_id, base_id, 0, 1, service=odd, project="NULL",
        host="{h,1}", stop_info={"etype": odd, "message": odd})
    start["info"]["note"] = odd
    store.write_spans(partial_spans(start, stop))
    [span] = store.get_spans(base_id)
    assert (span.name, span.service, span.project, span.host) == (
        "NULL", odd, "NULL", "{h,1}")
    assert span.error == {"etype": odd, "message": odd}
    assert span.start_payload["info"]["note"] == odd
    assert span.stop_payload == stop


def test_purge_removes_only_old_traces(store):
    old_id, raw = a_trace(start_ms=0)
    store.write_spans(partial_spans(*raw))
    new_id, raw = a_trace(start_ms=3600 * 1000)
    store.write_spans(partial_spans(*raw))
    cutoff = payloads.EPOCH + datetime.timedelta(minutes=30)
    assert store.count_older_than(cutoff) == 1
    assert len(store.get_spans(old_id)) == 3  # counting removes nothing
    assert store.purge(cutoff) == 1
    assert store.count_older_than(cutoff) == 0
    assert store.get_spans(old_id) == [] and store.get_trace(old_id) is None
    assert len(store.get_spans(new_id)) == 3
    assert [t.base_id for t in store.list_traces()] == [new_id]
    assert store.purge(cutoff) == 0


def test_count_older_than_counts_what_purge_removes(store):
    # the last event decides: a trace started long ago but still going on
    # is not old
    for start_ms in (0, 60_000, 120_000):
        store.write_spans(partial_spans(*a_trace(start_ms=start_ms)[1]))
    long_id = payloads.new_id()
    store.write_spans(partial_spans(*payloads.call(
        "wsgi", long_id, long_id, 0, 600_000)))
    for minutes, expected in ((0, 0), (1, 1), (2, 2), (9, 3), (11, 4)):
        cutoff = payloads.EPOCH + datetime.timedelta(minutes=minutes)
        assert store.count_older_than(cutoff) == expected, minutes
    cutoff = payloads.EPOCH + datetime.timedelta(minutes=9)
    assert store.purge(cutoff) == 3
    assert [t.base_id for t in store.list_traces()] == [long_id]


def test_a_reader_finds_no_store_and_creates_none(store_url_factory):
    for attempt in range(2):  # the first made nothing the second finds
        with pytest.raises(base.NoStoreError) as caught:
            store_url_factory(create=False)
        message = str(caught.value)
        assert message.startswith("no osprof-collector store at "), attempt
        assert "osprof:osprof@" not in message  # the password is masked
    collector = store_url_factory()
    base_id, raw = a_trace()
    collector.write_spans(partial_spans(*raw))
    reader = store_url_factory(create=False)
    assert reader.get_trace(base_id).span_count == 3
    assert [t.base_id for t in reader.list_traces()] == [base_id]


def test_incomplete_traces_are_flagged(store):
    complete_id, raw = a_trace(start_ms=0)
    store.write_spans(partial_spans(*raw))
    no_start_id = payloads.new_id()  # its root's start never arrived
    store.write_spans(partial_spans(payloads.call(
        "wsgi", no_start_id, no_start_id, 60_000, 60_010)[1]))
    open_id = payloads.new_id()  # a child still running
    root = payloads.call("wsgi", open_id, open_id, 120_000, 120_050)
    child = payloads.call("db", open_id, root[0]["trace_id"], 120_010,
                          120_020)
    store.write_spans(partial_spans(*root, child[0]))
    flags = {t.base_id: t.incomplete for t in store.list_traces()}
    assert flags == {complete_id: False, no_start_id: True, open_id: True}
    # get_trace() reads the summary only: it does not say
    assert store.get_trace(no_start_id).incomplete is None
    store.write_spans(partial_spans(child[1]))  # the stop arrives
    assert [t.incomplete for t in store.list_traces(
        base.TraceFilter(name="wsgi"), limit=1)] == [False]


def test_large_batch(store):
    base_id = payloads.new_id()
    raw = []
    for i in range(1000):
        raw.extend(payloads.call(f"db-{i}", base_id, base_id, i, i + 1))
    store.write_spans(partial_spans(*raw))
    assert len(store.get_spans(base_id)) == 1000
    assert store.get_trace(base_id).span_count == 1000
    store.write_spans(partial_spans(*raw))  # all of it again: redelivered
    assert store.get_trace(base_id).span_count == 1000


def test_concurrent_writers_keep_an_exact_summary(store_url_factory):
    """Eight writers, each with its own connection, deliver overlapping
    halves of the same traces in different orders."""
    base_ids = [payloads.new_id() for _ in range(3)]
    raw = []
    for n in range(120):
        base_id = base_ids[n % 3]
        raw.extend(payloads.call(f"call-{n}", base_id, base_id, n, n + 5))
    drivers = [store_url_factory() for _ in range(8)]

    def deliver(worker):
        mine = raw[worker::4] + raw[::-1][worker::8]  # overlapping halves
        for start in range(0, len(mine), 7):
            drivers[worker].write_spans(partial_spans(*mine[start:start + 7]))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(deliver, range(8)))
    reader = drivers[0]
    for base_id in base_ids:
        found = reader.get_spans(base_id)
        assert len(found) == 40 and not any(s.is_open for s in found)
        summary = reader.get_trace(base_id)
        assert summary.span_count == 40
        assert summary.duration_ms == 122  # calls k..117+k, 5 ms each


def test_concurrent_writers_of_many_short_traces(store_url_factory):
    """Four writers deliver the shuffled events of 40 short traces, in
    overlapping batches that mix traces (a stop may come before its start,
    the later of two top-level calls before the earlier one): every
    summary ends as exact as if each trace had come whole."""
    rng = random.Random(7)
    traces = {}
    raw = []
    for n in range(40):
        base_id = payloads.new_id()
        late = payloads.call("late", base_id, base_id, 30, 60,
                             service="volume", project="cinder")
        early = payloads.call("early", base_id, base_id, 5, 50,
                              stop_info={"etype": "ValueError"}
                              if n % 5 == 0 else None)
        under = payloads.call("db", base_id, early[0]["trace_id"], 6, 70)
        traces[base_id] = n % 5 == 0
        raw.extend([*late, *early, *under])
    rng.shuffle(raw)
    drivers = [store_url_factory() for _ in range(4)]

    def deliver(worker):
        mine = raw[worker::4] + raw[::-1][worker::6]  # overlapping parts
        for start in range(0, len(mine), 13):
            drivers[worker].write_spans(
                partial_spans(*mine[start:start + 13]))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(deliver, range(4)))
    for base_id, error in traces.items():
        summary = drivers[0].get_trace(base_id)
        assert summary.span_count == 3
        assert summary.root_name == "early"
        assert summary.duration_ms == 65
        assert sorted(summary.services) == ["api", "volume"]
        assert sorted(summary.projects) == ["cinder", "nova"]
        assert summary.error is error


def test_stats(store):
    assert store.stats() == {"traces": 0, "spans": 0, "error_traces": 0,
                             "first_event": None, "last_event": None,
                             "spans_per_service": {}}
    first_id, raw = a_trace(start_ms=0, error=True)
    store.write_spans(partial_spans(*raw))
    second_id, raw = a_trace(start_ms=60000)
    store.write_spans(partial_spans(*raw))
    assert store.stats() == {
        "traces": 2, "spans": 6, "error_traces": 1,
        "first_event": payloads.EPOCH,
        "last_event": payloads.EPOCH + datetime.timedelta(milliseconds=60100),
        "spans_per_service": {"api": 4, "volume": 2}}


def test_ttl_expiry(store_url_factory):
    store = store_url_factory(ttl=3600)
    now = datetime.datetime.utcnow()

    def ms_ago(hours):
        moment = now - datetime.timedelta(hours=hours)
        return (moment - payloads.EPOCH) / datetime.timedelta(milliseconds=1)

    old_id, raw = a_trace(start_ms=ms_ago(3))
    store.write_spans(partial_spans(*raw))
    new_id, raw = a_trace(start_ms=ms_ago(0.1))
    store.write_spans(partial_spans(*raw))

    def ttl_indexes():
        return [i["expireAfterSeconds"]
                for c in (store.spans, store.traces)
                for i in c.index_information().values()
                if "expireAfterSeconds" in i]

    if store.expires_natively:
        # the server's TTL monitor removes documents; check it is set up
        assert ttl_indexes() == [3600, 3600]
        assert store.expire() == 0
        # a reader (osprof-trace) leaves the collector's retention alone
        store_url_factory()
        assert ttl_indexes() == [3600, 3600]
    else:
        assert store.expire() == 1
        assert store.get_trace(old_id) is None
    assert store.get_trace(new_id).span_count == 3
    assert store_url_factory(ttl=0).expire() == 0
    if store.expires_natively:  # ttl 0 keeps everything from now on
        assert ttl_indexes() == []


STARTED = datetime.datetime(2026, 11, 26, 10, 0, 0, 123456)


def a_heartbeat(worker="node-1/0", seconds=0, **counts):
    """A worker's heartbeat, seconds after it started at STARTED; with
    counts, it has written. Every time has its microseconds."""
    updated = STARTED + datetime.timedelta(seconds=seconds, microseconds=7)
    return base.Heartbeat(
        worker=worker, host=worker.split("/")[0], pid=4242,
        started_at=STARTED, updated_at=updated,
        counts=dict.fromkeys(endpoint.Stats.FIELDS, 0) | counts,
        last_write=updated - datetime.timedelta(microseconds=6)
        if counts else None)


def test_heartbeat_upsert_keeps_one_record_per_worker(store):
    assert store.get_heartbeats() == []
    first = a_heartbeat()
    store.write_heartbeat(first)
    assert store.get_heartbeats() == [first]
    newer = a_heartbeat(seconds=30, received=1200, spans_written=600,
                        invalid=3, requeued=40, store_errors=1)
    newer.pid = 4243  # a restarted worker takes over its record
    store.write_heartbeat(newer)
    assert store.get_heartbeats() == [newer]


def test_heartbeats_of_several_workers(store_url_factory):
    written = [a_heartbeat(f"node-{host}/{worker}", seconds=worker,
                           received=host * 10 + worker)
               for host in (1, 2) for worker in (0, 1)]
    for heartbeat in reversed(written):  # each worker has its connection
        store_url_factory().write_heartbeat(heartbeat)
    assert store_url_factory().get_heartbeats() == written


# -- span latency --------------------------------------------------------

def a_span(store, name, start_ms, stop_ms, service="api", project="nova"):
    """One span of a trace of its own; stop_ms None leaves it open."""
    base_id = payloads.new_id()
    start, stop = payloads.call(name, base_id, base_id, start_ms,
                                stop_ms or start_ms, service=service,
                                project=project)
    sent = [start] if stop_ms is None else [start, stop]
    store.write_spans(partial_spans(*sent))


def latency(name, count, mean, p50, p95, p99, maximum):
    return base.SpanLatency(name, count, pytest.approx(mean),
                            pytest.approx(p50), pytest.approx(p95),
                            pytest.approx(p99), pytest.approx(maximum))


def test_span_latency_interpolates_between_ranks(store):
    for ms in random.Random(3).sample(range(1, 101), 100):  # any order
        a_span(store, "db", ms * 1000, ms * 1000 + ms)
    for ms in (40, 10, 30, 20):
        a_span(store, "wsgi", ms * 1000, ms * 1000 + ms)
    a_span(store, "rpc", 0, 7)
    # n sorted values, percentile p at position h = (n - 1) * p (0-based)
    db = latency("db", 100, 50.5,
                 50.5,    # h = 49.5: 50 + 0.5 * (51 - 50)
                 95.05,   # h = 94.05: 95 + 0.05 * (96 - 95)
                 99.01,   # h = 98.01
                 100)
    wsgi = latency("wsgi", 4, 25,
                   25,    # h = 1.5: 20 + 0.5 * (30 - 20)
                   38.5,  # h = 2.85: 30 + 0.85 * (40 - 30)
                   39.7,  # h = 2.97
                   40)
    rpc = latency("rpc", 1, 7, 7, 7, 7, 7)
    assert store.span_latency("api") == [db, wsgi, rpc]  # slowest p95 first
    assert store.span_latency("api", name="wsgi") == [wsgi]
    assert store.span_latency("api", name="nothing") == []
    assert store.span_latency("nothing") == []


def test_span_latency_is_exact_to_the_microsecond(store):
    a_span(store, "tick", 5000.5, 5000.501)  # 1 us within a millisecond
    a_span(store, "tick", 5999.999, 6000.002)  # 3 us across a second
    a_span(store, "tick", 7000.998, 7001.002)  # 4 us across a millisecond
    assert store.span_latency("api") == [base.SpanLatency(
        "tick", 3, pytest.approx(0.008 / 3, abs=1e-9),
        pytest.approx(0.003, abs=1e-9),
        pytest.approx(0.0039, abs=1e-9),  # h = 1.9: 3 + 0.9 * (4 - 3) us
        pytest.approx(0.00398, abs=1e-9), pytest.approx(0.004, abs=1e-9))]


def test_span_latency_filters(store):
    minute = 60000
    a_span(store, "db", 0, 10)
    a_span(store, "db", minute, minute + 20, project="cinder")
    a_span(store, "db", 2 * minute, 2 * minute + 30)
    a_span(store, "db", 2 * minute + 0.5, None)  # open: no duration
    base_id = payloads.new_id()  # its start never arrived: no duration
    store.write_spans(partial_spans(payloads.call(
        "db", base_id, base_id, 3 * minute, 3 * minute + 900)[1]))
    a_span(store, "db", minute, minute + 500, service="volume")

    def counted(**kwargs):
        return [(row.name, row.count, row.max_ms)
                for row in store.span_latency("api", **kwargs)]

    assert counted() == [("db", 3, 30)]
    assert counted(project="cinder") == [("db", 1, 20)]
    assert counted(project="glance") == []
    since = payloads.EPOCH + datetime.timedelta(minutes=1)
    assert counted(since=since) == [("db", 2, 30)]
    assert counted(until=since) == [("db", 1, 10)]
    assert counted(since=since, until=since + datetime.timedelta(
        minutes=1)) == [("db", 1, 20)]
    assert counted(until=payloads.EPOCH) == []
    # A span's start is compared to the microsecond, since included.
    a_span(store, "late", 5 * minute + 0.5, 5 * minute + 1.5)
    start = payloads.EPOCH + datetime.timedelta(minutes=5, microseconds=500)
    micro = datetime.timedelta(microseconds=1)
    assert counted(name="late", since=start) == [("late", 1, 1)]
    assert counted(name="late", since=start + micro) == []
    assert counted(name="late", until=start) == []
    assert counted(name="late", until=start + micro) == [("late", 1, 1)]


def test_span_latency_ties_sort_by_name(store):
    for name in ("b", "c", "a"):
        a_span(store, name, 0, 5)
    assert [row.name for row in store.span_latency("api")] == ["a", "b",
                                                               "c"]


def test_every_store_agrees_with_the_same_definition(store):
    """Irregular durations (to the microsecond, with ties) against
    Python's inclusive quantiles: linear interpolation between ranks."""
    rng = random.Random(11)
    durations = {"db": [rng.randrange(1, 2000000) / 1000 for _ in range(257)],
                 "rpc": [rng.choice((1.5, 2.25, 40)) for _ in range(31)],
                 "wsgi": [rng.expovariate(0.01) // 0.001 / 1000
                          for _ in range(12)]}
    for name, values in durations.items():
        for n, ms in enumerate(values):
            a_span(store, name, n * 1000, n * 1000 + ms)
    expected = []
    for name, values in durations.items():
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        expected.append((-cuts[94], name, latency(
            name, len(values), statistics.fmean(values), cuts[49], cuts[94],
            cuts[98], max(values))))
    assert store.span_latency("api") == [row for *_, row in
                                         sorted(expected)]


# -- what the collector counts per operation -------------------------------

def test_start_times_of_spans_stored_with_a_start(store):
    base_id = payloads.new_id()
    closed = payloads.call("db", base_id, base_id, 1000.25, 1005)
    only_stop = payloads.call("rpc", base_id, base_id, 2000, 2007)
    store.write_spans(partial_spans(*closed, only_stop[1]))
    closed_id, stop_id = closed[0]["trace_id"], only_stop[0]["trace_id"]
    found = store.get_start_times([closed_id, stop_id, payloads.new_id()])
    assert found == {closed_id: events.parse_timestamp(
        closed[0]["timestamp"])}
    assert found[closed_id].microsecond == 250  # kept exactly
    # More ids than one statement may bind.
    many = [payloads.new_id() for _ in range(1200)] + [closed_id]
    assert list(store.get_start_times(many)) == [closed_id]


def test_heartbeat_keeps_the_operation_counts(store):
    heartbeat = a_heartbeat(received=4, spans_written=2)
    heartbeat.operations = [{"service": "api", "name": "db", "calls": 2,
                             "errors": 1, "untimed": 0, "sum_ms": 7.5,
                             "buckets": [1, 1] + [0] * 10}]
    store.write_heartbeat(heartbeat)
    assert store.get_heartbeats() == [heartbeat]


# -- what the HTTP API's searches read ------------------------------------

def write_all(store, *traces):
    store.write_spans(partial_spans(*[p for _, raw in traces for p in raw]))


def test_span_labels_and_names(store):
    write_all(store, a_trace(), a_trace(service="scheduler"))
    lone = payloads.event("rpc", "start", payloads.new_id(),
                          payloads.new_id(), payloads.new_id(), 0,
                          project=None, service=None)
    store.write_spans(partial_spans(lone))
    assert store.span_labels() == [(None, None), ("cinder", "volume"),
                                   ("nova", "api"), ("nova", "scheduler")]
    assert store.span_names(("nova", "api")) == ["db", "wsgi"]
    assert store.span_names(("cinder", "volume")) == ["cinder-volume"]
    assert store.span_names((None, None)) == ["rpc"]
    assert store.span_names(("nova", "compute")) == []


def test_find_traces_newest_matching_span_first(store):
    old, middle, new = (a_trace(start_ms=ms) for ms in (0, 1000, 2000))
    write_all(store, old, new, middle)
    search = base.SpanSearch(label=("nova", "api"))
    assert store.find_traces(search, 10) == [new[0], middle[0], old[0]]
    assert store.find_traces(search, 2) == [new[0], middle[0]]
    at = payloads.EPOCH + datetime.timedelta(milliseconds=1000)
    assert store.find_traces(base.SpanSearch(
        label=("nova", "api"), since=at, until=at), 10) == [middle[0]]
    assert store.find_traces(base.SpanSearch(
        label=("nova", "api"), until=at), 10) == [middle[0], old[0]]
    assert store.find_traces(base.SpanSearch(
        label=("cinder", "volume"), name="cinder-volume"), 10) == [
        new[0], middle[0], old[0]]
    assert store.find_traces(base.SpanSearch(
        label=("cinder", "api")), 10) == []


def test_find_traces_by_span_duration(store):
    base_id = payloads.new_id()
    raw = [*payloads.call("db", base_id, base_id, 0, 10),
           *payloads.call("wsgi", base_id, base_id, 20, 20.5)]
    other, other_raw = a_trace(start_ms=100)  # wsgi 100 ms, db 10 ms
    store.write_spans(partial_spans(*raw, *other_raw))
    label = ("nova", "api")

    def found(**bounds):
        return store.find_traces(base.SpanSearch(label=label, **bounds), 10)

    assert found(min_duration_us=10_000) == [other, base_id]
    assert found(min_duration_us=10_001) == [other]
    assert found(max_duration_us=500) == [base_id]
    assert found(name="db", min_duration_us=10_000,
                 max_duration_us=10_000) == [other, base_id]
    open_id = payloads.new_id()
    start, _ = payloads.call("wsgi", open_id, open_id, 500, 600)
    store.write_spans(partial_spans(start))
    assert found(name="wsgi") == [open_id, other, base_id]
    assert open_id not in found(name="wsgi", max_duration_us=10**9)


def test_service_links_count_calls_and_errors(store):
    first, second = a_trace(start_ms=0, error=True), a_trace(start_ms=500)
    late = a_trace(start_ms=10_000)
    write_all(store, first, second, late)
    at = payloads.EPOCH

    links = store.service_links(at, at + datetime.timedelta(seconds=1))
    assert links == [base.ServiceLink(("nova", "api"), ("cinder", "volume"),
                                      calls=2, errors=1)]
    assert store.service_links(at + datetime.timedelta(seconds=5),
                               at + datetime.timedelta(seconds=20)) == [
        base.ServiceLink(("nova", "api"), ("cinder", "volume"), 1, 0)]
    assert store.service_links(at - datetime.timedelta(days=1),
                               at - datetime.timedelta(seconds=1)) == []


def test_list_traces_by_longest_duration(store):
    short, long = a_trace(), a_trace(start_ms=1000)
    store.write_spans(partial_spans(*short[1]))
    store.write_spans(partial_spans(*long[1][:-1]))  # root still open: 90 ms
    assert [t.base_id for t in store.list_traces(base.TraceFilter(
        max_duration_ms=90))] == [long[0]]
    assert [t.base_id for t in store.list_traces(base.TraceFilter(
        min_duration_ms=90, max_duration_ms=100))] == [long[0], short[0]]


def test_search_values_are_never_operators(store):
    write_all(store, a_trace())
    for hostile in ("%", "' OR '1'='1", '{"$ne": null}', "$ne", ".*"):
        assert store.span_names((hostile, "api")) == []
        assert store.find_traces(base.SpanSearch(
            label=("nova", hostile)), 10) == []
    assert store.span_names(({"$ne": None}, "api")) == []
    assert store.find_traces(base.SpanSearch(
        label=("nova", "api"), name={"$ne": None}), 10) == []
