"""An OpenStack-like service traced by the real osprofiler library.

Run as its own process: it sends through osprofiler's messaging driver to
the given transport URL and control exchange, then prints one JSON line per
trace describing the spans it emitted (trace_id, parent_id, name), so the
tests know exactly what the collector must store.

    python -m tests.functional.producer URL EXCHANGE SERVICE SCENARIO COUNT \
        [PAUSE [STOP_FILE]]

SCENARIO "siblings:N" sends traces of N spans (siblings alone: 201).

With STOP_FILE it sends COUNT traces, then goes on until that file exists,
so that a test can be sure the stream is still flowing while it acts.
"""

import json
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from oslo_config import cfg  # noqa: E402
import oslo_messaging  # noqa: E402
from osprofiler import notifier  # noqa: E402
from osprofiler import profiler  # noqa: E402

HMAC_KEY = "SECRET_KEY"


class Recorder:
    """Remembers every span opened while a trace runs."""

    def __init__(self):
        self.spans = []

    def call(self, name, info=None, fail=False):
        return _Call(self, name, info, fail)


class _Call:
    def __init__(self, recorder, name, info, fail):
        self.recorder, self.name, self.info = recorder, name, info
        self.fail = fail

    def __enter__(self):
        profiler.start(self.name, info=dict(self.info or {}))
        current = profiler.get()
        self.recorder.spans.append({"name": self.name,
                                    "trace_id": current.get_id(),
                                    "parent_id": current.get_parent_id(),
                                    "closed": True})
        return self

    def __exit__(self, etype, value, tb):
        stop_info = None
        if etype is not None:
            stop_info = {"etype": etype.__name__, "message": str(value)}
        profiler.stop(info=stop_info)
        return False


def nested(rec):
    with rec.call("wsgi", {"request": {"path": "/v2.1/servers",
                                       "method": "POST"}}):
        with rec.call("db", {"db": {"statement": "SELECT 1",
                                    "params": {}}}):
            pass
        with rec.call("rpc"):
            for n in range(3):
                with rec.call("db", {"db": {"statement": f"SELECT {n}"}}):
                    pass


def siblings(rec, spans=201):
    """A wsgi span and spans - 1 db spans under it."""
    with rec.call("wsgi"):
        for n in range(spans - 1):
            with rec.call("db", {"db": {"statement": f"SELECT {n}"}}):
                pass


def dashes(rec):
    with rec.call("cinder-volume-manager"):
        with rec.call("os-brick-connector"):
            pass


@profiler.trace("compute-fail", info={"note": "raises"})
def _fails(rec):
    current = profiler.get()
    rec.spans.append({"name": "compute-fail", "trace_id": current.get_id(),
                      "parent_id": current.get_parent_id(), "closed": True,
                      "error": "ValueError"})
    raise ValueError("no valid host was found")


def raises(rec):
    with rec.call("wsgi"):
        try:
            _fails(rec)
        except ValueError:
            pass


def unfinished(rec):
    with rec.call("wsgi"):
        profiler.start("never-stops")
        current = profiler.get()
        rec.spans.append({"name": "never-stops",
                          "trace_id": current.get_id(),
                          "parent_id": current.get_parent_id(),
                          "closed": False})
        current._name.pop()  # drop it without sending its stop
        current._trace_stack.pop()


# Text that would run if a page built HTML from it: each sets a marker
# on the page's body that a test looks for.
HOSTILE = [
    "<script>document.body.dataset.pwned='script'</script>",
    "<img src=x onerror=\"document.body.dataset.pwned='img'\">",
    "</script><script>document.body.dataset.pwned='close'</script>",
    "javascript:document.body.dataset.pwned='url'",
]


def hostile(rec):
    """Span names, info keys and values, SQL statements and error
    messages made of HOSTILE text."""
    with rec.call("wsgi", {"request": {"path": HOSTILE[3],
                                       "method": "GET"}}):
        for n, text in enumerate(HOSTILE):
            try:
                with rec.call(f"db{n}-{text}", {
                        "db": {"statement": f"SELECT '{text}'",
                               "params": {text: text}},
                        text: text}):
                    raise ValueError(text)
            except ValueError:
                pass


SCENARIOS = {f.__name__: f for f in (nested, siblings, dashes, raises,
                                     unfinished, hostile)}


def main(url, exchange, service, scenario, count, pause=0.0,
         stop_file=None):
    conf = cfg.ConfigOpts()
    conf([], project="producer")
    oslo_messaging.get_notification_transport(conf, url=url).cleanup()
    conf.set_override("control_exchange", exchange)
    notifier.set(notifier.create("messaging://", project=exchange,
                                 service=service, host=f"{service}-host",
                                 conf=conf, transport_url=url, context={}))
    # "siblings:N" is the siblings scenario with N spans a trace.
    scenario, _, spans = scenario.partition(":")
    arguments = (int(spans),) if spans else ()
    sent = 0
    while sent < count or (stop_file and not os.path.exists(stop_file)):
        rec = Recorder()
        profiler.init(HMAC_KEY)
        SCENARIOS[scenario](rec, *arguments)
        base_id = profiler.get().get_base_id()
        profiler.clean()
        print(json.dumps({"base_id": base_id, "service": service,
                          "project": exchange, "spans": rec.spans}),
              flush=True)
        sent += 1
        time.sleep(pause)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
         int(sys.argv[5]), float(sys.argv[6]) if len(sys.argv) > 6 else 0.0,
         sys.argv[7] if len(sys.argv) > 7 else None)
