"""How osprof-collector ends: its exit statuses and the errors that stop it.

A fatal error is one that no retry mends (the broker refuses the
credentials, the store's path cannot be used) or one the operator asked
not to retry past ([storage] max_retries). The worker that meets it says
so in one line and exits with its status; the master then stops every
worker and exits with the same status, so that systemd sees the failure
instead of a worker respawned again and again.
"""

import logging
import sys

OK = 0
USAGE = 2  # bad command line or configuration, found before any worker
UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: the store stayed unreachable
CONFIG = 78  # sysexits EX_CONFIG: the broker or the store refused the setup
FATAL = (UNAVAILABLE, CONFIG)

LOG = logging.getLogger(__name__)
PROG = "osprof-collector"


class FatalError(Exception):
    """An error that stops the whole daemon with `status`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def report(conf, message):
    """Say `message` once: on stderr, and in the log file if there is one
    (without one, the log is stderr already, e.g. the journal)."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    if conf is not None and conf.log_file:
        LOG.error("%s", message)
