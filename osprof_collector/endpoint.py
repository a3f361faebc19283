"""The batch notification endpoint: parse → pair → write → ack or requeue."""

import logging
import threading
import time

import oslo_messaging

from osprof_collector import events
from osprof_collector import spans
from osprof_collector.storage import base as storage_base

LOG = logging.getLogger(__name__)


class Stats:
    """Counters a worker reports in its periodic statistics line."""

    FIELDS = ("received", "spans_written", "invalid", "requeued",
              "store_errors")

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.FIELDS, 0)
        self.last_write = None  # time.time() of the last successful write

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


class Backoff:
    """Exponential pause after store failures, shared by a worker's threads.

    Every batch that fails waits out the current delay before it is handed
    back to the broker, so an unavailable store sees a few attempts a
    minute instead of a redelivery loop.
    """

    def __init__(self, initial=0.5, maximum=30.0):
        self.initial = initial
        self.maximum = maximum
        self.delay = 0.0
        self._lock = threading.Lock()

    def failed(self):
        with self._lock:
            self.delay = min(max(self.delay * 2, self.initial), self.maximum)
            return self.delay

    def succeeded(self):
        with self._lock:
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

    def __init__(self, store, stats, max_info_bytes=65536, backoff=None,
                 stopping=None):
        self.store = store
        self.stats = stats
        self.max_info_bytes = max_info_bytes
        self.backoff = backoff or Backoff()
        self.stopping = stopping or threading.Event()
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
        try:
            self.store.write_spans(partial_spans)
        except Exception as exc:  # whatever failed, the batch is not lost
            delay = self.backoff.failed()
            self.stats.add(store_errors=1, requeued=len(messages))
            LOG.error("Store write failed, requeueing %d notifications "
                      "after %.1f s: %s", len(messages), delay, exc,
                      exc_info=not isinstance(exc,
                                              storage_base.StorageError))
            self.stopping.wait(delay)
            return oslo_messaging.NotificationResult.REQUEUE
        self.backoff.succeeded()
        self.stats.wrote(len(partial_spans))
        return oslo_messaging.NotificationResult.HANDLED

    def _parse(self, payload):
        try:
            return events.parse(payload, self.max_info_bytes)
        except Exception as exc:  # a parser bug must not poison the queue
            LOG.exception("Unexpected error parsing a notification")
            return events.InvalidEvent(f"unparsable: {type(exc).__name__}")


def _printable(value, limit=120):
    return repr(value)[:limit]
