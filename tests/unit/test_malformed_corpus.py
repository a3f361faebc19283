from osprof_collector import events
from tests.functional import malformed


def test_every_payload_of_the_corpus_is_refused():
    reasons = set()
    for payload in malformed.corpus(10000):
        result = events.parse(payload)
        assert isinstance(result, events.InvalidEvent), payload
        reasons.add(result.reason.split(" ")[0])
    # every kind of breakage is represented
    assert {"missing", "payload", "name", "timestamp", "info",
            "base_id", "trace_id", "parent_id", "project",
            "service"} <= reasons


def test_corpus_is_repeatable():
    assert list(malformed.corpus(50)) == list(malformed.corpus(50))
