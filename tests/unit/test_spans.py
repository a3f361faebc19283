import itertools

from hypothesis import given
from hypothesis import strategies as st

from osprof_collector import events
from osprof_collector import spans
from tests import payloads


def a_trace():
    base_id = payloads.new_id()
    root = payloads.call("wsgi", base_id, base_id, 0, 50)
    child = payloads.call("db", base_id, root[0]["trace_id"], 10, 20,
                          stop_info={"etype": "DBError", "message": "gone"})
    return [*root, *child]


def complete(raw):
    return {s.trace_id: s for s in spans.pair(events.parse(p) for p in raw)}


def test_pairing_one_batch():
    raw = a_trace()
    result = complete(raw)
    assert len(result) == 2
    root = result[raw[0]["trace_id"]]
    assert root.start_payload == raw[0] and root.stop_payload == raw[1]
    assert root.started_at == payloads.EPOCH and not root.is_open
    child = result[raw[2]["trace_id"]]
    assert child.error == {"etype": "DBError", "message": "gone"}
    assert child.parent_id == raw[0]["trace_id"]


def test_every_order_gives_the_same_spans():
    raw = a_trace()
    expected = complete(raw)
    for order in itertools.permutations(raw):
        assert complete(order) == expected


@given(st.randoms(use_true_random=False), st.integers(1, 4))
def test_batches_duplicates_and_any_order_merge_to_the_same_spans(rnd, copies):
    """Split the events (with redeliveries) into random batches, pair each
    batch, then merge the partial spans as a store would."""
    raw = a_trace() + a_trace()
    expected = complete(raw)
    deliveries = raw * copies
    rnd.shuffle(deliveries)
    cuts = sorted(rnd.sample(range(1, len(deliveries)), 3))
    batches = [deliveries[a:b] for a, b in
               zip([0, *cuts], [*cuts, len(deliveries)])]
    partial = [s for batch in batches
               for s in spans.pair(events.parse(p) for p in batch)]
    rnd.shuffle(partial)
    assert {s.trace_id: s for s in spans.merge_by_trace_id(partial)} \
        == expected


def test_stop_alone_is_a_span_without_start():
    raw = a_trace()
    [span] = spans.pair([events.parse(raw[1])])
    assert span.started_at is None and span.finished_at is not None
    assert span.last_seen == span.finished_at


def test_merge_does_not_change_its_inputs():
    raw = a_trace()
    start = spans.from_event(events.parse(raw[0]))
    stop = spans.from_event(events.parse(raw[1]))
    [merged] = spans.merge_by_trace_id([start, stop])
    assert start.finished_at is None and merged.finished_at is not None
