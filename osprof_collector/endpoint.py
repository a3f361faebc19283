"""The batch notification endpoint: parse → pair → write → ack or requeue."""

import contextlib
import datetime
import logging
import threading
import time

import oslo_messaging

from osprof_collector import events
from osprof_collector import operations
from osprof_collector import spans
from osprof_collector.storage import base as storage_base

LOG = logging.getLogger(__name__)
MS = datetime.timedelta(milliseconds=1)


class Stats:
    """Counters a worker reports in its statistics line and heartbeat."""

    FIELDS = storage_base.COUNTERS

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.FIELDS, 0)
        self.last_write = None  # time.time() of the last successful write
        self.operations = operations.Operations()

    def add(self, **increments):
        with self._lock:
            for field, value in increments.items():
                self.counts[field] += value

    def wrote(self, span_count):
        with self._lock:
            self.counts["spans_written"] += span_count
            self.last_write = time.time()

    def line(self):
        with self._lock:
            counts = " ".join(f"{k}={v}" for k, v in self.counts.items())
            last = self.last_write
        age = "never" if last is None else f"{time.time() - last:.0f}s ago"
        return f"{counts} last_write={age}"

    def snapshot(self):
        """A copy of the counts, and the last write as naive UTC or None."""
        with self._lock:
            counts, last = dict(self.counts), self.last_write
        if last is not None:
            last = datetime.datetime.fromtimestamp(
                last, datetime.UTC).replace(tzinfo=None)
        return counts, last


class Backoff:
    """Paces a worker's store writes.

    A worker writes one batch at a time: the batches waiting for their turn
    stay unacknowledged (the prefetch bounds them). After a failure, the
    next attempt waits a pause that doubles from `initial` up to `maximum`,
    so an unavailable store sees a few attempts a minute, not a burst of
    every batch in hand followed by a redelivery loop.
    """

    def __init__(self, initial=0.5, maximum=30.0, stopping=None):
        self.initial = initial
        self.maximum = maximum
        self.delay = 0.0  # 0: the store works
        self.stopping = stopping or threading.Event()
        self._next_attempt = 0.0
        self._turn = threading.Lock()

    @contextlib.contextmanager
    def turn(self):
        """Yield True when a write may be tried, False when stopping."""
        while not self._turn.acquire(timeout=0.2):
            if self.stopping.is_set():
                yield False
                return
        try:
            pause = self._next_attempt - time.monotonic()
            yield not (pause > 0 and self.stopping.wait(pause))
        finally:
            self._turn.release()

    # Both are called during a turn(), which no other write shares.

    def failed(self):
        self.delay = min(max(self.delay * 2, self.initial), self.maximum)
        self._next_attempt = time.monotonic() + self.delay
        return self.delay

    def succeeded(self):
        self.delay = 0.0


class RateLimitedLog:
    """Log at most `burst` messages per `period` seconds, then a summary."""

    def __init__(self, logger, period=60.0, burst=10):
        self.logger = logger
        self.period = period
        self.burst = burst
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._logged = 0
        self._suppressed = 0

    def warning(self, msg, *args):
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.period:
                if self._suppressed:
                    self.logger.warning("%d similar messages suppressed",
                                        self._suppressed)
                self._window_start, self._logged = now, 0
                self._suppressed = 0
            if self._logged >= self.burst:
                self._suppressed += 1
                return
            self._logged += 1
        self.logger.warning(msg, *args)


class ProfilerEndpoint:
    """Receives batches of 'info' notifications on the profiler topic."""

    def __init__(self, store, stats, max_info_bytes=65536, backoff=None):
        self.store = store
        self.stats = stats
        self.max_info_bytes = max_info_bytes
        self.backoff = backoff or Backoff()
        self.invalid_log = RateLimitedLog(LOG)

    def info(self, messages):
        valid = []
        for message in messages:
            event = self._parse(message.get("payload"))
            if isinstance(event, events.InvalidEvent):
                self.invalid_log.warning(
                    "Dropped invalid notification from %s (%s): %s",
                    _printable(message.get("publisher_id")),
                    _printable(message.get("event_type")), event.reason)
            else:
                valid.append(event)
        self.stats.add(received=len(messages),
                       invalid=len(messages) - len(valid))
        if not valid:
            return oslo_messaging.NotificationResult.HANDLED
        partial_spans = spans.pair(valid)
        with self.backoff.turn() as may_write:
            if not may_write:  # stopping while the store fails
                self.stats.add(requeued=len(messages))
                return oslo_messaging.NotificationResult.REQUEUE
            try:
                self.store.write_spans(partial_spans)
            except Exception as exc:  # whatever failed, nothing is lost
                delay = self.backoff.failed()
                self.stats.add(store_errors=1, requeued=len(messages))
                LOG.error("Store write failed, requeueing %d notifications;"
                          " next attempt in %.1f s: %s", len(messages),
                          delay, exc, exc_info=not isinstance(
                              exc, storage_base.StorageError))
                return oslo_messaging.NotificationResult.REQUEUE
            self.backoff.succeeded()
        self.stats.wrote(len(partial_spans))
        self._count_operations(partial_spans)
        return oslo_messaging.NotificationResult.HANDLED

    def _count_operations(self, stored_spans):
        """Count the calls whose stop this batch stored. A stop whose
        start came in an earlier batch (or to another worker) takes the
        start from the store: leaving those calls out would leave out the
        long ones most."""
        finished = [s for s in stored_spans if s.finished_at is not None]
        unpaired = [s.trace_id for s in finished if s.started_at is None]
        starts = {}
        if unpaired:
            try:
                starts = self.store.get_start_times(unpaired)
            except Exception as exc:  # counting must never stop the work
                LOG.warning("Start times of %d spans unreadable, their "
                            "calls are counted without a duration: %s",
                            len(unpaired), exc)
        for span in finished:
            started = span.started_at or starts.get(span.trace_id)
            self.stats.operations.observe(
                span.service, span.name, span.error is not None,
                None if started is None else (span.finished_at - started) / MS)

    def _parse(self, payload):
        try:
            return events.parse(payload, self.max_info_bytes)
        except Exception as exc:  # a parser bug must not poison the queue
            LOG.exception("Unexpected error parsing a notification")
            return events.InvalidEvent(f"unparsable: {type(exc).__name__}")


def _printable(value, limit=120):
    return repr(value)[:limit]
