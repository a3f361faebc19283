"""Rate, errors and durations of each operation, counted at ingest.

An operation is a (service, span name) pair. Each worker counts, from its
start, the calls it stored the stop of, those that failed, and a histogram
of their durations, so that Prometheus can graph them (render/prometheus.py)
without reading spans. The counts travel in the worker's heartbeat.
"""

import bisect
import threading

# Upper bounds of the duration buckets, in milliseconds (Prometheus'
# default buckets, which are in seconds); a last one, +Inf, holds the rest.
BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
# Span names come from code, so they are few; a bound keeps a stream of
# made-up names from growing a worker's memory and Prometheus' series.
MAX_OPERATIONS = 1000
OTHER = "(other)"  # the name counted under once the bound is reached


class Operations:
    """Per-operation counters of one worker, since it started."""

    def __init__(self, max_operations=MAX_OPERATIONS):
        self.max_operations = max_operations
        self._lock = threading.Lock()
        self._counts = {}  # (service, name) -> _Counts

    def observe(self, service, name, error, duration_ms):
        """One finished call; duration_ms None when its start is unknown
        (its stop came first): counted, but in no bucket."""
        key = (service or "?", name)
        with self._lock:
            counts = self._counts.get(key)
            if counts is None:
                if len(self._counts) >= self.max_operations:
                    key = (key[0], OTHER)
                counts = self._counts.setdefault(key, _Counts())
            counts.calls += 1
            counts.errors += bool(error)
            if duration_ms is None:
                counts.untimed += 1
            else:
                counts.sum_ms += duration_ms
                counts.buckets[bisect.bisect_left(BUCKETS_MS,
                                                  duration_ms)] += 1

    def snapshot(self):
        """The counts as plain data, sorted, for a heartbeat."""
        with self._lock:
            return [{"service": service, "name": name, "calls": c.calls,
                     "errors": c.errors, "untimed": c.untimed,
                     "sum_ms": c.sum_ms, "buckets": list(c.buckets)}
                    for (service, name), c in sorted(self._counts.items())]


class _Counts:
    __slots__ = ("calls", "errors", "untimed", "sum_ms", "buckets")

    def __init__(self):
        self.calls = self.errors = self.untimed = 0
        self.sum_ms = 0.0
        self.buckets = [0] * (len(BUCKETS_MS) + 1)  # per bucket, not summed
