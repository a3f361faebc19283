"""Answers about closed traces, kept to be sent again.

Reading and exporting a trace of 10,000 spans takes a few hundred
milliseconds, and Grafana and the web UI ask for the same trace again and
again (a page opened twice, its analysis after its waterfall, a compare
view). A trace is closed when every one of its spans has its start and its
stop: then only a new span can change what any answer says of it, and a
new span changes the span count of the trace's summary. So an answer made
from a closed trace is sent again for as long as the summary counts the
spans it was made from, at the cost of reading that one summary row.

Answers are kept per process, up to a number of bytes, the least recently
sent dropped first.
"""

import collections
import threading


class Answers:

    def __init__(self, store, max_bytes):
        self.store = store
        self.max_bytes = max_bytes
        self._kept = collections.OrderedDict()  # key: (span_count, body)
        self._bytes = 0
        self._lock = threading.Lock()

    def body(self, kind, base_id, make):
        """The body of the answer of this kind about the trace: make(spans)
        of its spans, or a kept one; None if the store has no such trace
        (or base_id is None: not a trace id).
        """
        if base_id is None:
            return None
        key = (kind, base_id)
        if self.max_bytes <= 0:
            return self._made(make, self.store.get_spans(base_id))
        summary = self.store.get_trace(base_id)
        if summary is None:
            self._drop(key)
            return None
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == summary.span_count:
                self._kept.move_to_end(key)
                return kept[1]
        spans = self.store.get_spans(base_id)
        body = self._made(make, spans)
        # The summary read first: a span written since then makes the
        # counts differ, and the answer is not kept.
        if body is not None and len(spans) == summary.span_count and all(
                span.started_at is not None and span.finished_at is not None
                for span in spans):
            self._keep(key, summary.span_count, body)
        return body

    @staticmethod
    def _made(make, spans):
        return make(spans) if spans else None

    def _keep(self, key, span_count, body):
        if len(body) > self.max_bytes:
            return
        with self._lock:
            self._remove(key)
            self._kept[key] = (span_count, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                self._remove(next(iter(self._kept)))

    def _drop(self, key):
        with self._lock:
            self._remove(key)

    def _remove(self, key):
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._bytes -= len(kept[1])
