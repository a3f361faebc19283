"""10,000 malformed notifications and raw junk, interleaved with real
traces, through a real collector: nothing dies, nothing valid is lost."""

import json
import subprocess
import time

import kombu
from oslo_config import cfg
import oslo_messaging

from osprof_collector import events
from osprof_collector import storage
from tests.functional import malformed
from tests.functional.conftest import finish_producers
from tests.functional.conftest import start_producer
from tests.functional.conftest import wait_until_stored
from tests.functional.test_collector import assert_stored_exactly
from tests.functional.test_faults import figures
from tests.functional.test_faults import worker_counts
from tests import payloads

MALFORMED = 10000
RAW_BODIES = [b"not json at all", b"\xff\xfe\x00garbage", b"[1, 2, 3]",
              b'"a string"', b"{}", b'{"oslo.version": "2.0", '
              b'"oslo.message": "{broken"}',
              json.dumps({"priority": "INFO", "payload": "x"}).encode(),
              b"{" * 100000]


def hostile_but_valid():
    """Well-formed events whose info is huge or deeply nested: stored,
    with the excess cut and marked."""
    base_id = payloads.new_id()
    huge = payloads.call("db", base_id, base_id, 0, 1)
    huge[0]["info"]["db"] = {"statement": "x" * (1024 * 1024)}
    deep_info = leaf = {}
    for _ in range(250):
        leaf["d"] = {}
        leaf = leaf["d"]
    deep = payloads.call("rpc", base_id, base_id, 2, 3)
    deep[0]["info"]["nested"] = deep_info
    return base_id, [*huge, *deep]


def queue_depth(rabbit_url):
    vhost = rabbit_url.rsplit("/", 1)[1]
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages",
         "messages_unacknowledged"], capture_output=True, text=True,
        check=True).stdout
    return {line.split()[0]: (int(line.split()[1]), int(line.split()[2]))
            for line in out.splitlines() if line.strip()
            and not line.startswith("name")}


def test_malformed_flood_with_real_traces(rabbit_url, sqlite_url,
                                          collector_factory):
    collector = collector_factory(rabbit_url, sqlite_url, workers=2,
                                  batch_size=200).start()
    producers = [start_producer(rabbit_url, "nova", "api", "nested", 40,
                                0.05),
                 start_producer(rabbit_url, "cinder", "volume", "raises",
                                40, 0.05)]
    transport = oslo_messaging.get_notification_transport(cfg.ConfigOpts(),
                                                          url=rabbit_url)
    notifier = oslo_messaging.Notifier(transport, publisher_id="fuzz",
                                       driver="messaging",
                                       topics=["profiler"])
    started = time.monotonic()
    for n, payload in enumerate(malformed.corpus(MALFORMED)):
        notifier.info({}, "profiler.fuzz", payload)
        if n == MALFORMED // 2:
            base_id, hostile = hostile_but_valid()
            for event in hostile:
                notifier.info({}, "profiler.api", event)
    with kombu.Connection(rabbit_url.replace("rabbit://", "amqp://")) as conn:
        producer = conn.Producer()
        for body in RAW_BODIES:
            producer.publish(body, exchange="openstack",
                             routing_key="profiler.info",
                             content_type="application/json",
                             content_encoding="utf-8", declare=[])
    transport.cleanup()
    traces = finish_producers(producers)
    wait_until_stored(sqlite_url, traces, timeout=300)
    assert_stored_exactly(sqlite_url, traces)

    store = storage.get_driver(sqlite_url)
    stored = {s.name: s for s in store.get_spans(base_id)}
    assert set(stored) == {"db", "rpc"}
    cut = stored["db"].start_payload["info"][events.TRUNCATED_KEY]
    assert cut["keys"] == ["db"] and cut["original_bytes"] > 1024 * 1024
    assert events.TRUNCATED_KEY in stored["rpc"].start_payload["info"]
    store.close()

    deadline = time.monotonic() + 120
    while queue_depth(rabbit_url).get("profiler.info") != (0, 0):
        assert time.monotonic() < deadline, queue_depth(rabbit_url)
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    assert collector.process.poll() is None
    assert collector.stop() == 0
    log = collector.log()
    assert log.count("storing in") == 2  # no worker was restarted
    counts = worker_counts(log)
    valid_events = 2 * sum(len(t["spans"]) for t in traces) + 4
    # One raw body is a bare (unwrapped) oslo message with priority info:
    # oslo.messaging delivers it and it is counted; the others cannot be
    # decoded, and oslo.messaging logs and drops them before any endpoint.
    assert counts["invalid"] == MALFORMED + 1
    assert counts["received"] == MALFORMED + 1 + valid_events
    assert counts["requeued"] == 0 and counts["store_errors"] == 0
    figures("bad-input", malformed=MALFORMED, raw_bodies=len(RAW_BODIES),
            valid_events=valid_events, invalid_counted=counts["invalid"],
            worker_restarts=0, queue_left=0, seconds=round(elapsed, 1))
