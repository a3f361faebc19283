"""CPU time an event costs the collector's own work, stage by stage.

    python benchmarks/write_path.py [--events 20000] [--batch-sizes 200,500]
        [--spans-per-trace 4,201]

Real osprofiler events (the producer's "siblings" scenario: a wsgi span
and db spans under it, 4 and 201 spans a trace by default) go through what
a worker does with a batch, without the broker: parse, pair, write to a
fresh store. It prints, for each trace size, store and batch size, the CPU
µs an event costs each stage and the wall µs of the write (which also
waits on the database). --profile FILE keeps a cProfile of the writes.
PostgreSQL needs the test role (tools/run-tests.sh creates it).
"""

import argparse
import cProfile
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from osprof_collector import events  # noqa: E402
from osprof_collector import spans  # noqa: E402
from osprof_collector import storage  # noqa: E402
from stores import Stores  # noqa: E402
from tests.functional import producer  # noqa: E402
from tests import osprofiler_reference  # noqa: E402


def sent_payloads(traces, spans_per_trace):
    """What osprofiler's messaging driver sends for that many traces."""
    payloads = []
    for n in range(traces):
        _base_id, sent = osprofiler_reference.capture(
            lambda: producer.siblings(producer.Recorder(), spans_per_trace),
            service=f"service{n % 4}")
        payloads.extend(sent)
    return payloads


def measure(store, payloads, batch_size, profiler=None):
    """CPU µs an event for parse, pair and write, and the write's wall µs."""
    cpu = dict.fromkeys(("parse", "pair", "write"), 0.0)
    write_wall = 0.0
    for start in range(0, len(payloads), batch_size):
        batch = payloads[start:start + batch_size]
        began = time.process_time()
        parsed = [events.parse(payload) for payload in batch]
        paired = time.process_time()
        partial_spans = spans.pair(parsed)
        writing, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.runcall(store.write_spans, partial_spans)
        else:
            store.write_spans(partial_spans)
        write_wall += time.perf_counter() - wall
        done = time.process_time()
        cpu["parse"] += paired - began
        cpu["pair"] += writing - paired
        cpu["write"] += done - writing
    per_event = 1e6 / len(payloads)
    return ({stage: seconds * per_event for stage, seconds in cpu.items()},
            write_wall * per_event)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000,
                        help="about this many events for each trace size")
    parser.add_argument("--batch-sizes", default="200,500")
    parser.add_argument("--spans-per-trace", default="4,201")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--profile", metavar="FILE",
                        help="also write a cProfile of the writes to FILE")
    args = parser.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    print("CPU µs an event by stage, and the write's wall µs:")
    stores = Stores()
    try:
        for spans_per_trace in map(int, args.spans_per_trace.split(",")):
            traces = max(1, round(args.events / (2 * spans_per_trace)))
            payloads = sent_payloads(traces, spans_per_trace)
            for kind in args.stores.split(","):
                for batch_size in map(int, args.batch_sizes.split(",")):
                    store = storage.get_driver(stores.fresh(kind), ttl=0)
                    try:
                        cpu, wall = measure(store, payloads, batch_size,
                                            profiler)
                    finally:
                        store.close()
                    print(f"  {len(payloads):,} events, traces of "
                          f"{spans_per_trace} spans, {kind}, batches of "
                          f"{batch_size}: " + ", ".join(
                              f"{stage} {us:.1f}"
                              for stage, us in cpu.items())
                          + f"; all {sum(cpu.values()):.1f}; write wall "
                            f"{wall:.1f}", flush=True)
    finally:
        stores.cleanup()
    if profiler:
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
