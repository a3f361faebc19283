"""The contract every storage driver keeps, and what the query side gets."""

import abc
import contextlib
import dataclasses
import datetime


class StorageError(Exception):
    """The store could not do what was asked (unreachable, refused...)."""


class ConfigurationError(StorageError):
    """The store URL cannot work, however often it is retried."""


class NoStoreError(StorageError):
    """A reader found no store at the URL: the collector has never made
    one there (a mistyped URL, the wrong database)."""

    def __init__(self, masked_url):
        super().__init__(f"no osprof-collector store at {masked_url}")


@dataclasses.dataclass
class TraceSummary:
    """One trace (base_id) as kept up to date while its spans arrive."""

    base_id: str
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    span_count: int
    services: list[str]
    projects: list[str]
    error: bool
    root_name: str | None
    # Some span has no start or no stop (yet): its duration is unknown.
    # list_traces() reads it from the spans of the listed traces; None
    # where it was not read (get_trace() reads the summary only).
    incomplete: bool | None = None

    @property
    def duration_ms(self):
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at) / datetime.timedelta(
            milliseconds=1)


@dataclasses.dataclass
class TraceFilter:
    service: str | None = None
    project: str | None = None
    name: str | None = None  # root span name
    since: datetime.datetime | None = None  # trace started at or after
    until: datetime.datetime | None = None  # trace started before
    errors_only: bool = False
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None


# A span's labels as the trace searches of the HTTP API see them: its
# (project, service), either possibly None.
Label = tuple[str | None, str | None]


def label_order(label):
    """Sort key of a (project, service) label: by project, then service,
    None before any name."""
    return tuple((value is not None, value or "") for value in label)


def all_text(*values):
    """Whether every value is a string or None: a search for anything
    else finds nothing (never an operator, never a type error)."""
    return all(value is None or isinstance(value, str) for value in values)


@dataclasses.dataclass
class SpanSearch:
    """Traces having at least one span like this (find_traces())."""

    label: Label  # the span's (project, service)
    name: str | None = None
    since: datetime.datetime | None = None  # span started at or after
    until: datetime.datetime | None = None  # span started at or before
    min_duration_us: int | None = None  # closed spans only, when set
    max_duration_us: int | None = None


@dataclasses.dataclass
class ServiceLink:
    """Calls from spans of one label to child spans of another."""

    parent: Label
    child: Label
    calls: int
    errors: int  # child spans that ended in an error


# The percentiles span_latency() gives, each by linear interpolation
# between the two closest ranks: PostgreSQL's percentile_cont, numpy's
# default. With n sorted durations x[0..n-1], percentile p is
# x[lo] + (h - lo) * (x[lo + 1] - x[lo]) where h = (n - 1) * p, lo = floor(h).
PERCENTILES = (0.5, 0.95, 0.99)


@dataclasses.dataclass
class SpanLatency:
    """Durations of the closed spans of one name, in milliseconds."""

    name: str
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def slowest_first(latencies):
    """The order span_latency() returns: highest p95 first, then name."""
    return sorted(latencies, key=lambda row: (-row.p95_ms, row.name))


# The counters every worker keeps, reports in its log and heartbeat.
COUNTERS = ("received", "spans_written", "invalid", "requeued",
            "store_errors")


@dataclasses.dataclass
class Heartbeat:
    """What one collector worker last said about itself."""

    worker: str  # "<host>/<worker_id>": one record per worker
    host: str
    pid: int
    started_at: datetime.datetime  # naive UTC, as every time below
    updated_at: datetime.datetime
    counts: dict[str, int]  # the worker's counters since it started
    last_write: datetime.datetime | None  # last successful span write
    # operations.Operations.snapshot(): calls, errors and durations per
    # (service, span name) since it started; None from an older collector.
    operations: list[dict] | None = None


class StorageDriver(abc.ABC):
    """A store of spans, of the per-trace summaries built from them, and of
    the heartbeats of the collector workers.

    write_spans() is an idempotent merge: writing the same partial spans
    again, or in any order, or from several processes at once, leaves
    exactly one span per trace_id and an exact summary per base_id.
    """

    def __init__(self, url, ttl=None, create=True):
        """Open the store at url.

        create=True (the collector) makes the schema where it is missing.
        create=False (readers: osprof-trace, the HTTP API) opens only a
        store the collector made, and creates nothing, not even an empty
        database file: NoStoreError if there is none.
        """
        self.url = url
        # Seconds to keep a trace; 0 keeps everything. None, for readers
        # such as osprof-trace: leave the retention the collector set.
        self.ttl = ttl

    @classmethod
    def check_url(cls, url):
        """Raise ConfigurationError if url can never work (bad syntax, a
        client library not installed), without connecting."""

    @classmethod
    def check_writable(cls, url):
        """Raise ConfigurationError if a writer could never create the
        store there (a file in a missing directory), without connecting."""

    @abc.abstractmethod
    def write_spans(self, spans):
        """Merge partial spans (spans.Span) into the store."""

    @abc.abstractmethod
    def get_spans(self, base_id):
        """All spans of one trace, as spans.Span, in no particular order."""

    @abc.abstractmethod
    def get_span(self, trace_id):
        """One span (spans.Span) by its trace_id, or None."""

    @abc.abstractmethod
    def get_start_times(self, trace_ids):
        """{trace_id: started_at} of those spans stored with a start."""

    @abc.abstractmethod
    def get_trace(self, base_id):
        """The TraceSummary of one trace, or None; read from the summary
        alone (incomplete is None: see list_traces())."""

    @abc.abstractmethod
    def list_traces(self, trace_filter=None, limit=20):
        """TraceSummary list, newest first, answered from the summaries;
        incomplete from one query over the spans of the listed traces
        only, through their base_id index."""

    @abc.abstractmethod
    def span_latency(self, service, name=None, project=None, since=None,
                     until=None):
        """SpanLatency per span name (only name's when given) over the
        closed spans of service, slowest_first().

        Filters: project; since / until bound the span's start (naive UTC,
        since included, until excluded). Spans without a start or a stop
        are left out. Computed by the store, never by loading spans.
        """

    @abc.abstractmethod
    def span_labels(self):
        """Every (project, service) some span has, sorted by label_order().

        Answered from an index, a few lookups per label, never by reading
        every span.
        """

    @abc.abstractmethod
    def span_names(self, label):
        """The sorted names of the spans of one (project, service)."""

    @abc.abstractmethod
    def newest_spans(self, search):
        """(base_id, started_at, finished_at) of the spans of
        search.label, of search.name if set, started within since and
        until, newest start first: an iterator read lazily from an
        index, so that a caller stops it once it has enough."""

    def find_traces(self, search, limit):
        """The base_ids of the traces with a span like search, newest
        matching span first, at most limit of them."""
        found = {}  # in insertion order
        with contextlib.closing(self.newest_spans(search)) as spans:
            for base_id, started_at, finished_at in spans:
                if base_id in found or not _lasts(search, started_at,
                                                  finished_at):
                    continue
                found[base_id] = None
                if len(found) == limit:
                    break
        return list(found)

    @abc.abstractmethod
    def service_links(self, since, until):
        """ServiceLink per (parent label, child label) pair that differ,
        counted over the spans of the traces started within since and
        until (both included), sorted by parent then child label_order();
        computed by the store."""

    @abc.abstractmethod
    def purge(self, older_than):
        """Remove traces whose last event is older than a naive UTC date.

        Returns how many traces were removed.
        """

    @abc.abstractmethod
    def count_older_than(self, older_than):
        """How many traces purge(older_than) would remove now."""

    @abc.abstractmethod
    def stats(self):
        """Totals of the store, as a dict: traces, spans, error_traces,
        first_event, last_event (naive UTC or None) and spans_per_service
        ({service: spans})."""

    @abc.abstractmethod
    def write_heartbeat(self, heartbeat):
        """Insert or replace the Heartbeat of heartbeat.worker."""

    @abc.abstractmethod
    def get_heartbeats(self):
        """Every stored Heartbeat, ordered by worker."""

    # Whether the store drops expired traces by itself (a TTL index).
    expires_natively = False

    def expire(self, now=None):
        """Purge what [storage] ttl no longer keeps; returns the count."""
        if not self.ttl or self.expires_natively:
            return 0
        now = now or datetime.datetime.utcnow()
        return self.purge(now - datetime.timedelta(seconds=self.ttl))

    def close(self):
        """Release connections."""


def _lasts(search, started_at, finished_at):
    """Whether a span's duration is within the search's bounds."""
    if search.min_duration_us is None and search.max_duration_us is None:
        return True
    if started_at is None or finished_at is None:
        return False
    duration = (finished_at - started_at) // datetime.timedelta(
        microseconds=1)
    return ((search.min_duration_us is None
             or duration >= search.min_duration_us)
            and (search.max_duration_us is None
                 or duration <= search.max_duration_us))
