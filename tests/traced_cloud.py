"""A small cloud traced by the real osprofiler library, for the analyses.

An API service ("api" on node-1) handles a request: it queries its
database through SQLAlchemy with osprofiler's sqlalchemy tracing (one
query per instance: an N+1 loop), calls a volume service ("volume" on
node-2, behind osprofiler's WSGI middleware) twice over HTTP with
osprofiler's requests tracing, and makes an RPC call to a compute service
("compute" on node-3). Each service runs in a thread of its own; the
events of each are labelled with its service and host, and the clock of
node-3 can be set off by a known number of milliseconds.
"""

import contextlib
import copy
import datetime
import threading
from wsgiref import simple_server

from osprofiler import notifier
from osprofiler import profiler
from osprofiler import requests as traced_requests
from osprofiler import sqlalchemy as traced_sqlalchemy
from osprofiler import web
import requests
from requests import adapters
import sqlalchemy as sa

HMAC_KEY = "SECRET_KEY"
TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%f"
_labels = threading.local()  # project, service, host, skew of a thread


class Labels:
    def __init__(self, project, service, host, skew_ms=0.0):
        self.project, self.service, self.host = project, service, host
        self.skew = datetime.timedelta(milliseconds=skew_ms)

    def apply(self, payload):
        payload = copy.deepcopy(payload)
        payload["project"], payload["service"] = self.project, self.service
        payload["info"]["host"] = self.host
        if self.skew:
            moment = datetime.datetime.strptime(payload["timestamp"],
                                                TIMESTAMP) + self.skew
            payload["timestamp"] = moment.strftime(TIMESTAMP)
        return payload


@profiler.trace_cls("rpc")
class ComputeManager:
    """The server side of the RPC call, on the compute host."""

    def build_and_run_instance(self, name):
        with profiler.Trace("hypervisor-spawn", info={"instance": name}):
            pass


@profiler.trace_cls("rpc")
class ComputeAPI:
    """The client side: the call waits for the compute service's answer,
    which carries the trace ids as an RPC context does."""

    def __init__(self, compute_labels):
        self.compute_labels = compute_labels

    def build_and_run_instance(self, name):
        current = profiler.get()
        context = (current.get_base_id(), current.get_id())
        worker = threading.Thread(target=self._serve, args=(context, name))
        worker.start()
        worker.join()

    def _serve(self, context, name):
        _labels.current = self.compute_labels
        profiler.init(HMAC_KEY, base_id=context[0], parent_id=context[1])
        try:
            ComputeManager().build_and_run_instance(name)
        finally:
            profiler.clean()


def volume_app(environ, start_response):
    with profiler.Trace("volume-lookup"):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def volume_service(labels):
    server = simple_server.make_server(
        "127.0.0.1", 0, web.WsgiMiddleware(volume_app, hmac_keys=HMAC_KEY,
                                           enabled=True),
        handler_class=_QuietHandler)

    def serve():
        _labels.current = labels
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _database(instances):
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE instances (id INTEGER PRIMARY KEY,"
                             " project TEXT, name TEXT)")
        conn.exec_driver_sql("CREATE TABLE volumes (id INTEGER PRIMARY KEY,"
                             " instance_id INTEGER)")
        for n in range(1, instances + 1):
            conn.exec_driver_sql("INSERT INTO instances VALUES (?, ?, ?)",
                                 (n, "demo", f"vm-{n}"))
            conn.exec_driver_sql("INSERT INTO volumes VALUES (?, ?)", (n, n))
    traced_sqlalchemy.add_tracing(sa, engine, "db")
    return engine


def list_servers(engine, volume_url, compute_labels):
    """The traced request of the API service."""
    with profiler.Trace("wsgi", info={"request": {
            "path": "/v2.1/servers", "query": "", "method": "POST",
            "scheme": "http"}}):
        with engine.connect() as conn:
            ids = [row[0] for row in conn.execute(sa.text(
                "SELECT id, name FROM instances WHERE project = :project"),
                {"project": "demo"})]
            for instance_id in ids:
                conn.execute(sa.text("SELECT id FROM volumes "
                                     "WHERE instance_id = :id"),
                             {"id": instance_id})
        with requests.Session() as session:
            session.trust_env = False  # no proxy between us and ourselves
            for _ in range(2):
                session.get(f"{volume_url}/v3/volumes").raise_for_status()
        ComputeAPI(compute_labels).build_and_run_instance("vm-1")


def capture(instances=6, compute_skew_ms=0.0):
    """Run the request once; return its base_id and every payload sent."""
    sent = []
    lock = threading.Lock()
    api = Labels("nova", "api", "node-1")
    volume = Labels("cinder", "volume", "node-2")
    compute = Labels("nova", "compute", "node-3", compute_skew_ms)

    def notify(info, context=None):
        with lock:
            sent.append(_labels.current.apply(info))

    engine = _database(instances)
    previous_notifier = notifier.get()
    previous_send = adapters.HTTPAdapter.send
    _labels.current = api
    notifier.set(notify)
    traced_requests.enable()
    try:
        with volume_service(volume) as volume_url:
            profiler.init(HMAC_KEY)
            try:
                list_servers(engine, volume_url, compute)
                base_id = profiler.get().get_base_id()
            finally:
                profiler.clean()
    finally:
        adapters.HTTPAdapter.send = previous_send
        notifier.set(previous_notifier)
        engine.dispose()
    return base_id, sent
