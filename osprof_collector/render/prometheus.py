"""The collector workers' heartbeats as Prometheus metrics.

Each worker's counters and per-operation counts (operations.py) are
exported with a `worker` label: several workers, processes or hosts never
overwrite one another, and a restarted worker's counters start again from
0, which Prometheus' rate() reads as a reset. Sum over `worker` for the
whole collector, e.g. sum by (service, name) (rate(
osprof_operation_calls_total[5m])).
"""

from prometheus_client import core
from prometheus_client import exposition
from prometheus_client import registry

from osprof_collector import operations
from osprof_collector.storage import base

CONTENT_TYPE = exposition.CONTENT_TYPE_LATEST

COUNTER_HELP = {
    "received": "Notifications received from the broker.",
    "spans_written": "Span records merged into the store.",
    "invalid": "Invalid notifications dropped.",
    "requeued": "Notifications handed back to the broker after a failed "
                "write.",
    "store_errors": "Failed store writes.",
}
WORKER = ["worker", "host"]
OPERATION = ["service", "name", "worker"]
# Bucket bounds as Prometheus spells them: seconds, then +Inf.
BOUNDS = [f"{ms / 1000:g}" for ms in operations.BUCKETS_MS] + ["+Inf"]


def render(heartbeats, now):
    """The exposition text of these heartbeats (now: naive UTC)."""
    metrics = registry.CollectorRegistry(auto_describe=False)
    metrics.register(_Heartbeats(heartbeats, now))
    return exposition.generate_latest(metrics)


class _Heartbeats(registry.Collector):

    def __init__(self, heartbeats, now):
        self.heartbeats = heartbeats
        self.now = now

    def collect(self):
        yield from self._worker_metrics()
        yield from self._operation_metrics()

    def _worker_metrics(self):
        families = {name: core.CounterMetricFamily(
            f"osprof_collector_{name}", COUNTER_HELP[name], labels=WORKER)
            for name in base.COUNTERS}
        heartbeat_age = core.GaugeMetricFamily(
            "osprof_collector_heartbeat_age_seconds",
            "Age of the worker's last heartbeat.", labels=WORKER)
        write_age = core.GaugeMetricFamily(
            "osprof_collector_last_write_age_seconds",
            "Age of the worker's last successful store write (absent "
            "before its first).", labels=WORKER)
        for heartbeat in self.heartbeats:
            labels = [heartbeat.worker, heartbeat.host]
            for name, family in families.items():
                family.add_metric(labels, heartbeat.counts.get(name, 0))
            heartbeat_age.add_metric(labels, self._age(heartbeat.updated_at))
            if heartbeat.last_write is not None:
                write_age.add_metric(labels,
                                     self._age(heartbeat.last_write))
        yield from families.values()
        yield heartbeat_age
        yield write_age

    def _operation_metrics(self):
        calls = core.CounterMetricFamily(
            "osprof_operation_calls", "Finished calls of an operation "
            "(service, span name), counted when their stop is stored.",
            labels=OPERATION)
        errors = core.CounterMetricFamily(
            "osprof_operation_errors", "Finished calls whose stop carries "
            "an exception.", labels=OPERATION)
        untimed = core.CounterMetricFamily(
            "osprof_operation_untimed_calls", "Finished calls whose start "
            "was not stored yet: counted, but not in the histogram.",
            labels=OPERATION)
        durations = core.HistogramMetricFamily(
            "osprof_operation_duration_seconds", "Durations of the finished "
            "calls of an operation.", labels=OPERATION)
        for heartbeat in self.heartbeats:
            for row in heartbeat.operations or ():
                labels = [row["service"], row["name"], heartbeat.worker]
                calls.add_metric(labels, row["calls"])
                errors.add_metric(labels, row["errors"])
                untimed.add_metric(labels, row["untimed"])
                cumulative, total = [], 0
                for bound, count in zip(BOUNDS, row["buckets"]):
                    total += count
                    cumulative.append((bound, total))
                durations.add_metric(labels, cumulative,
                                     row["sum_ms"] / 1000)
        yield from (calls, errors, untimed, durations)

    def _age(self, moment):
        return max(0.0, (self.now - moment).total_seconds())
