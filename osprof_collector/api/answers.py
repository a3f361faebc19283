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

import orjson


class Answers:

    def __init__(self, store, max_bytes):
        self.store = store
        self.max_bytes = max_bytes
        self._kept = collections.OrderedDict()  # key: (span_count, body)
        self._bytes = 0
        self._lock = threading.Lock()

    def body(self, kind, base_id, document):
        """The JSON body of the answer of this kind about the trace: the
        encoded document(spans) of its spans, or a kept one; None if the
        store has no such trace (or base_id is None: not a trace id).
        """
        if base_id is None:
            return None
        key = (kind, base_id)
        summary = self.store.get_trace(base_id) if self.max_bytes else None
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                if summary is not None and kept[0] == summary.span_count:
                    self._kept.move_to_end(key)  # the most recently sent
                    return kept[1]
                self._remove(key)
        spans = self.store.get_spans(base_id)
        if not spans:
            return None
        body = orjson.dumps(document(spans))
        # The summary was read first: a span written since then makes the
        # counts differ, and the answer is not kept.
        if (summary is not None and len(body) <= self.max_bytes
                and len(spans) == summary.span_count
                and all(span.started_at is not None
                        and span.finished_at is not None for span in spans)):
            with self._lock:
                self._remove(key)  # made by two requests at once
                self._kept[key] = (summary.span_count, body)
                self._bytes += len(body)
                while self._bytes > self.max_bytes:  # least recent first
                    self._remove(next(iter(self._kept)))
        return body

    def _remove(self, key):
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._bytes -= len(kept[1])
