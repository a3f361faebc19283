"""osprof-api: serve the trace store over HTTP with a threaded server.

Good enough for a few Grafana users; behind uwsgi or mod_wsgi, use
osprof_collector.api.app:application instead.
"""

import contextlib
import io
import ipaddress
import signal
import socketserver
import sys
import threading
from wsgiref import simple_server

from oslo_config import cfg
from oslo_log import log

from osprof_collector.api import app
from osprof_collector.api import auth
from osprof_collector import storage

LOG = log.getLogger(__name__)
PROG = "osprof-api"


class ThreadedServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True  # a slow client does not hold up a stop


class QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):
        LOG.info("%s %s", self.address_string(), format % args)


def loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv=None):
    conf = _configuration(sys.argv[1:] if argv is None else argv)
    if conf is None:
        return 2
    log.setup(conf, app.PROJECT)
    try:
        storage.check_url(app.store_url(conf))
    except storage.ConfigurationError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        store = app.open_store(conf)
    except storage.StorageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if conf.api.auth_strategy == "noauth" and not loopback(conf.api.host):
        LOG.warning("Listening on %s with auth_strategy = noauth: anyone "
                    "who reaches it reads every trace, SQL statements and "
                    "request parameters included", conf.api.host)
    try:
        application = app.make_app(conf, store)
    except auth.ConfigurationError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        store.close()
        return 2
    try:
        server = simple_server.make_server(
            conf.api.host, conf.api.port, application,
            server_class=ThreadedServer, handler_class=QuietHandler)
    except OSError as exc:
        print(f"{PROG}: cannot listen on {conf.api.host}:{conf.api.port}: "
              f"{exc.strerror}", file=sys.stderr)
        store.close()
        return 1
    signal.signal(signal.SIGTERM, lambda *_: _stop(server))
    app.settle_memory()
    LOG.info("Serving %s on http://%s:%d/", storage.mask_password(
        app.store_url(conf)), *server.server_address[:2])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    return 0


def _configuration(argv):
    """The configuration, or None once one line has said what is wrong
    (argparse would print its usage first)."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return app.prepare(argv)
    except SystemExit as exc:
        if not exc.code:  # --help, --version
            sys.stderr.write(said.getvalue())
            raise
        lines = said.getvalue().strip().splitlines() or [str(exc.code)]
        print(lines[-1], file=sys.stderr)
    except cfg.Error as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
    return None


def _stop(server):
    # shutdown() waits for serve_forever() to end: not from its thread
    threading.Thread(target=server.shutdown).start()


if __name__ == "__main__":
    sys.exit(main())
