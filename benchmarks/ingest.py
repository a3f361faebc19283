"""Ingest throughput of osprof-collector against oslo.messaging itself.

    python benchmarks/ingest.py [--events 30000] [--stores sqlite,postgresql]
        [--spans-per-trace 4,201]

On a RabbitMQ vhost of its own (created and deleted with rabbitmqctl, so run
it as root, like the tests), it fills the profiler queue with osprofiler
events from several real producer processes, then measures how fast that
backlog drains, for traces of each --spans-per-trace size (a wsgi span
and db spans under it: 4 is a short API request, 201 a long one):

1. baseline: bare oslo.messaging batch notification listeners (same batch
   size, prefetch and executor as the collector) that store nothing, in 1
   and 2 processes;
2. the osprof-collector daemon, until every span is durably stored, for each
   store and for 1 and 2 workers.

It prints events/s and the ratios collector/baseline and 2 workers/1 worker
(and 2 listener processes/1, how far oslo.messaging itself scales here),
from the medians of --rounds interleaved drains of each kind, and the CPU
time an event cost the drainer, RabbitMQ and PostgreSQL (what bounds the
scaling when they share the machine's cores).
Producers are stopped during every drain. With --backlog 1000000 it also
reports the peak RSS of a worker draining a backlog that large. PostgreSQL
needs the test role (tools/run-tests.sh creates it).
"""

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import kombu  # noqa: E402
from oslo_config import cfg  # noqa: E402
import oslo_messaging  # noqa: E402
import psutil  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from osprof_collector import storage  # noqa: E402
from osprof_collector.storage import sql  # noqa: E402
from stores import Stores  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.dirname(sys.executable)
RABBIT = "guest:guest@127.0.0.1:5672"
BATCH_SIZE = int(os.environ.get("BENCH_BATCH_SIZE", "500"))


def rabbitmqctl(*args):
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True,
                          capture_output=True, text=True).stdout


class Vhost:
    def __init__(self):
        self.name = f"osprof_bench_{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*",
                    ".*")
        self.url = f"rabbit://{RABBIT}/{self.name}"
        self._connection = None

    def depth(self):
        for line in rabbitmqctl("list_queues", "-p", self.name, "name",
                                "messages").splitlines():
            parts = line.split()
            if parts and parts[0] == "profiler.info":
                return int(parts[1])
        return 0

    def ready(self):
        """Messages waiting in profiler.info (not the unacknowledged
        ones), asked over one AMQP connection kept open: a connection per
        poll would cost the broker and this process CPU that the drain
        being measured needs."""
        if self._connection is None:
            self._connection = kombu.Connection(
                self.url.replace("rabbit://", "amqp://"))
        _name, ready, _consumers = \
            self._connection.default_channel.queue_declare(
                "profiler.info", passive=True)
        return ready

    def delete(self):
        if self._connection is not None:
            self._connection.release()
        rabbitmqctl("delete_vhost", self.name)


class CPUMeter:
    """CPU seconds used during a drain by the drainer, the broker and the
    database server: on two cores they share, these bound how far more
    workers can go."""

    SERVERS = {"rabbitmq": ("beam.smp",), "postgresql": ("postgres",)}

    def __init__(self, drainer_pids=()):
        self.drainer_pids = list(drainer_pids)
        self.start = self._sample()

    def _sample(self):
        sample = {"self": time.process_time()}
        for pid in self.drainer_pids:
            sample[("drainer", pid)] = _cpu_seconds(pid)
        for proc in psutil.process_iter(["name"]):
            for server, names in self.SERVERS.items():
                if proc.info["name"] in names:
                    sample[(server, proc.pid)] = _cpu_seconds(proc.pid)
        return sample

    def used(self):
        """{"drainer": s, "rabbitmq": s, "postgresql": s} since start; a
        process that started meanwhile counts from 0."""
        end = self._sample()
        used = {"drainer": 0.0, "rabbitmq": 0.0, "postgresql": 0.0}
        for key, seconds in end.items():
            if key != "self":
                used[key[0]] += seconds - self.start.get(key, 0.0)
        if not self.drainer_pids:  # the drainer is this process
            used["drainer"] = end["self"] - self.start["self"]
        return used


def _cpu_seconds(pid):
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def fill(vhost, events, spans_per_trace, producers=4):
    """Send about `events` events in traces of spans_per_trace spans from
    real osprofiler processes; return the exact number sent and the spans
    expected."""
    traces_each = max(1, round(events / (2 * spans_per_trace * producers)))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.functional.producer", vhost.url,
         "openstack", f"service{n}", f"siblings:{spans_per_trace}",
         str(traces_each)],
        cwd=ROOT, stdout=subprocess.DEVNULL) for n in range(producers)]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("a producer failed")
    spans = traces_each * producers * spans_per_trace
    sent = 2 * spans
    deadline = time.monotonic() + 60
    while vhost.depth() < sent:  # the broker has every event queued
        if time.monotonic() > deadline:
            raise SystemExit(f"queue holds {vhost.depth()} of {sent}")
        time.sleep(0.2)
    return sent, spans


class _Counter:
    """A bare listener's endpoint: counts what it receives into a shared
    total, and says when that reaches the target."""

    def __init__(self, total, target, done):
        self.total = total
        self.target = target
        self.done = done

    def info(self, messages):
        with self.total.get_lock():
            self.total.value += len(messages)
            if self.total.value >= self.target:
                self.done.set()
        return oslo_messaging.NotificationResult.HANDLED


def _bare_listener(url, total, target, done, consuming):
    """One baseline process: listen until the shared total reaches the
    target (the collector's batch size, prefetch and executor)."""
    conf = cfg.ConfigOpts()
    conf([], project="osprof-bench")
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    conf.set_override("rabbit_qos_prefetch_count", 2 * BATCH_SIZE,
                      group="oslo_messaging_rabbit")
    listener = oslo_messaging.get_batch_notification_listener(
        transport, [oslo_messaging.Target(topic="profiler",
                                          exchange="openstack")],
        [_Counter(total, target, done)], executor="threading",
        allow_requeue=True, batch_size=BATCH_SIZE, batch_timeout=1.0)
    listener.start()
    consuming.release()
    done.wait(600)
    listener.stop()
    listener.wait()
    transport.cleanup()


def drain_baseline(vhost, events, processes):
    """Seconds for `processes` bare listeners to receive every event, from
    the moment they all consume, and the CPUMeter's figures."""
    context = multiprocessing.get_context("spawn")
    total, done = context.Value("q", 0), context.Event()
    consuming = context.Semaphore(0)
    children = [context.Process(target=_bare_listener, args=(
        vhost.url, total, events, done, consuming))
        for _ in range(processes)]
    for child in children:
        child.start()
    for _ in children:
        consuming.acquire()
    started = time.monotonic()
    meter = CPUMeter([child.pid for child in children])
    done.wait(600)
    elapsed = time.monotonic() - started
    cpu = meter.used()
    for child in children:
        child.join(120)
    return elapsed, cpu


def start_collector(vhost, store_url, workers, workdir):
    """Start osprof-collector on the vhost; return its process and log."""
    log = os.path.join(workdir, f"collector-{uuid.uuid4().hex[:6]}.log")
    config = os.path.join(workdir, "collector.conf")
    with open(config, "w") as out:
        out.write(f"[DEFAULT]\ntransport_url = {vhost.url}\n"
                  f"log_file = {log}\n[collector]\nexchanges = openstack\n"
                  f"workers = {workers}\nbatch_size = {BATCH_SIZE}\n"
                  f"stats_interval = 0\n[storage]\n"
                  f"connection = {store_url}\n")
    process = subprocess.Popen(
        [os.path.join(BIN_DIR, "osprof-collector"), "--config-file",
         config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, log


def drain_collector(vhost, store_url, spans, workers, workdir):
    """Seconds from the moment the workers consume until the store holds
    every span with its stop event, and the CPUMeter's figures."""
    process, log = start_collector(vhost, store_url, workers, workdir)
    store = storage.get_driver(store_url)
    try:
        while _log_count(log, "consuming topics") < workers:
            time.sleep(0.01)
        started = time.monotonic()
        meter = CPUMeter(_children(process.pid))
        # Cheap polls of the broker while most of the backlog is queued;
        # the store is counted only for the last, unacknowledged part.
        while vhost.ready() > 0:
            time.sleep(0.1)
        while _complete(store) < spans:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        cpu = meter.used()
    finally:
        process.terminate()
        process.wait(120)
        store.close()
    return elapsed, cpu


def backlog_rss(vhost, store_url, workdir, seconds):
    """Peak RSS of the one worker draining the queue, sampled twice a
    second for `seconds` (or until done); returns (MiB, events drained)."""
    depth = vhost.depth()
    process, _log = start_collector(vhost, store_url, 1, workdir)
    peak_kib = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for pid in _children(process.pid):
                peak_kib = max(peak_kib, _status_kib(pid, "VmHWM"))
            if vhost.ready() == 0:
                break
            time.sleep(0.5)
        drained = depth - vhost.depth()
    finally:
        process.terminate()
        process.wait(300)
    return peak_kib / 1024, drained


def _children(pid):
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def _status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def _log_count(path, text):
    try:
        with open(path) as log:
            return log.read().count(text)
    except FileNotFoundError:
        return 0


def _complete(store):
    """Spans stored with their stop event (the last of each pair)."""
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(
            sql.spans_table.c.finished_at.is_not(None))).scalar()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--spans-per-trace", default="4,201",
                        help="trace sizes to measure, each with its own "
                             "baseline (default: 4,201)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="drains of each kind, interleaved; the "
                             "figures are their medians (default: 3)")
    parser.add_argument("--backlog", type=int, default=0,
                        help="also measure the peak RSS of a worker "
                             "draining a backlog of this many events "
                             "(e.g. 1000000) of the largest traces")
    parser.add_argument("--backlog-seconds", type=int, default=300)
    args = parser.parse_args()
    workers = [int(n) for n in args.workers.split(",")]
    sizes = [int(n) for n in args.spans_per_trace.split(",")]
    # The baseline runs as many listener processes as the collector
    # workers, so that each scaling compares with oslo.messaging's own.
    kinds = [(size, kind, n) for size in sizes
             for kind in ("baseline", *args.stores.split(","))
             for n in workers]
    vhost = Vhost()
    stores = Stores()
    workdir = stores.workdir
    rates = {kind: [] for kind in kinds}
    cpu = {kind: [] for kind in rates}  # CPU µs an event, per part
    sent = {}
    try:
        # Rounds interleave the baseline and the collector, so that what
        # the machine does meanwhile weighs on both alike.
        for n in range(1, args.rounds + 1):
            for size, kind, processes in kinds:
                sent[size], spans = fill(vhost, args.events, size)
                if kind == "baseline":
                    elapsed, used = drain_baseline(vhost, sent[size],
                                                   processes)
                else:
                    elapsed, used = drain_collector(
                        vhost, stores.fresh(kind), spans, processes,
                        workdir)
                rates[size, kind, processes].append(sent[size] / elapsed)
                cpu[size, kind, processes].append(
                    {part: seconds / sent[size] * 1e6
                     for part, seconds in used.items()})
            print(f"round {n}: " + ", ".join(
                f"{_label(k)} {r[-1]:,.0f}" for k, r in rates.items()),
                flush=True)
        median = {k: statistics.median(r) for k, r in rates.items()}
        print(f"medians of {args.rounds} drains (events/s); the collector "
              f"against the baseline of as many processes, and 2 / 1:")
        for size, kind, processes in kinds:
            print("  " + _rate_line(median, size, kind, processes),
                  flush=True)
        print("CPU time an event, medians in µs (drainer: the listener or "
              "the collector's workers), and the rate at which they would "
              "keep both cores busy:")
        for kind in rates:
            parts = {part: statistics.median(c[part] for c in cpu[kind])
                     for part in cpu[kind][0]}
            total = sum(parts.values())
            print(f"  {_label(kind)}: " + ", ".join(
                f"{part} {us:.0f}" for part, us in parts.items())
                + f"; all {total:.0f}, 2-core bound "
                  f"{2e6 / total:,.0f} events/s", flush=True)
        if args.backlog:
            started = time.monotonic()
            queued, _spans = fill(vhost, args.backlog, max(sizes))
            print(f"backlog: {queued:,} events queued in "
                  f"{time.monotonic() - started:.0f} s", flush=True)
            peak, drained = backlog_rss(vhost, stores.fresh("sqlite"),
                                        workdir, args.backlog_seconds)
            print(f"backlog: worker peak RSS {peak:.0f} MiB while draining "
                  f"{drained:,} of {queued:,} queued events", flush=True)
    finally:
        vhost.delete()
        stores.cleanup()


def _rate_line(median, size, kind, processes):
    """One kind's median rate, with its ratios to the same size's
    baseline and, for 2 processes, to its own 1."""
    rate = median[size, kind, processes]
    what = ("baseline (bare oslo.messaging listener)" if kind == "baseline"
            else f"collector {kind}")
    line = (f"{size}-span traces, {what}, "
            f"{processes} {'processes' if kind == 'baseline' else 'workers'}"
            f": {rate:,.0f}")
    baseline = median.get((size, "baseline", processes))
    if kind != "baseline" and baseline:
        line += f", {rate / baseline:.2f} x baseline"
    one = median.get((size, kind, 1))
    if processes == 2 and one:
        line += f", 2 / 1 = {rate / one:.2f}"
        bare = median.get((size, "baseline", 2), 0) / median.get(
            (size, "baseline", 1), 1)
        if kind != "baseline" and bare:
            line += f" ({rate / one / bare:.2f} x the baseline's 2 / 1)"
    return line


def _label(kind):
    size, name, processes = kind
    return (f"{size}-span {name}/{processes}"
            f"{'p' if name == 'baseline' else 'w'}")


if __name__ == "__main__":
    main()
