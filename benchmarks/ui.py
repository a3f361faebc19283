"""The web UI's first paint of a 10,000-span trace in headless Chromium.

    python benchmarks/ui.py [--spans 10000] [--baseline-spans 100]
                            [--runs 5] [--stores sqlite,postgresql]

For each store it writes two traces through the storage driver (benchmarks/
api.py's: a wsgi root and db calls below it), one of --spans spans and a
baseline one of --baseline-spans, starts the real osprof-api process and
opens /#/trace/<base_id> in Debian's headless Chromium (through selenium
and chromedriver, as the tests do), --runs times each. First rows: the
page's performance.now() when the waterfall's first rows are in the DOM,
from the start of the navigation (the page's own load, the trace's JSON
request, drawing). It also prints that JSON request's share (Resource
Timing), the same GET from this process, when the analysis (read after
the first paint) is shown, and the time the page takes to collapse and
expand the root span (its whole subtree) once drawn. It does so twice:
with an osprof-api that reads and exports the trace at every load (as at
a trace's first view, trace_cache_size = 0), then with one that sends
its kept answers again (a trace opened again: the first of the --runs
loads makes them).
"""

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time

import api
from stores import Stores

from osprof_collector import storage

# The tests' Chromium: same binary, driver and flags.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from tests.functional import browser  # noqa: E402

FIRST_ROWS = "return Number(document.body.dataset.waterfallMs);"
ANALYSED = "return Number(document.body.dataset.analysedMs);"
JSON_SHARE = """
const entry = performance.getEntriesByType("resource").find(
  e => e.name.includes("/api/osprof/traces/"));
return entry ? entry.responseEnd - entry.startTime : null;
"""
TOGGLE_ROOT = """
const toggle = document.querySelector('.row[data-index="0"] .toggle');
const started = performance.now();
toggle.click();  // collapse: the waterfall is laid out again at once
toggle.ownerDocument.querySelector('.row[data-index="0"] .toggle').click();
return performance.now() - started;
"""


def page_load(driver, url, base_id):
    driver.get("about:blank")
    driver.get(f"{url}/#/trace/{base_id}")
    # Once the analysis is in too: the next load has the server to itself.
    browser.wait(driver, lambda d: browser.body_data(d, "analysed") ==
                 base_id, timeout=120)
    return (driver.execute_script(FIRST_ROWS),
            driver.execute_script(JSON_SHARE),
            driver.execute_script(ANALYSED),
            driver.execute_script(TOGGLE_ROOT))


def measure(driver, server, base_id, runs):
    loads = [page_load(driver, f"http://127.0.0.1:{server.port}", base_id)
             for _ in range(runs)]
    get_s = api.best_of(runs, lambda: server.get(
        f"/api/osprof/traces/{base_id}"))
    first, share, analysed, toggle = (statistics.median(values)
                                      for values in zip(*loads))
    return first, share, get_s * 1000, analysed, toggle


def bench(kind, url, workdir, driver, span_count, baseline_count, runs):
    store = storage.get_driver(url, ttl=0)
    end = datetime.datetime.utcnow().replace(microsecond=0)
    ids = {}
    for count in (baseline_count, span_count):
        base_id, raw = api.trace(count, end, api.LABELS[0], api.LABELS[1])
        api.write(store, raw)
        ids[count] = base_id
    store.close()
    for answers, options in (("read at every load", {"trace_cache_size": 0}),
                             ("answers kept", {})):
        server = api.Api(workdir, url, **options)
        try:
            figures = {count: measure(driver, server, base_id, runs)
                       for count, base_id in ids.items()}
        finally:
            server.close()
        for count, (first, share, get_ms, analysed, toggle) in \
                figures.items():
            print(f"{kind}, {answers}: {count:,} spans: first rows "
                  f"{first:.0f} ms (median of {runs}); the trace's JSON "
                  f"{share:.0f} ms of it (GET from this process, best of "
                  f"{runs}: {get_ms:.0f} ms); analysis shown at "
                  f"{analysed:.0f} ms; collapse and expand the root "
                  f"{toggle:.1f} ms", flush=True)
        ratio = figures[span_count][0] / figures[baseline_count][0]
        print(f"{kind}, {answers}: first rows, {span_count:,} spans / "
              f"{baseline_count:,} spans: {ratio:.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10000)
    parser.add_argument("--baseline-spans", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stores", default="sqlite")
    args = parser.parse_args()
    stores = Stores()
    profile = tempfile.mkdtemp(prefix="osprof-bench-chromium-")
    driver = browser.chromium(profile)
    try:
        for kind in args.stores.split(","):
            started = time.perf_counter()
            bench(kind, stores.fresh(kind), stores.workdir, driver,
                  args.spans, args.baseline_spans, args.runs)
            print(f"{kind}: done in {time.perf_counter() - started:.0f} s",
                  flush=True)
    finally:
        driver.quit()
        stores.cleanup()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
