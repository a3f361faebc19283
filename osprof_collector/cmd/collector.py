"""osprof-collector: the daemon's entry point."""

import contextlib
from importlib import metadata
import io
import re
import sys

import cotyledon
from cotyledon import oslo_config_glue
from oslo_config import cfg
from oslo_log import log
import oslo_messaging
from oslo_messaging import opts as messaging_opts
import pbr.version

from osprof_collector import broker
from osprof_collector import exits
from osprof_collector import opts
from osprof_collector import service
from osprof_collector import storage

LOG = log.getLogger(__name__)
PROJECT = "osprof-collector"
TRANSPORT_DRIVERS = "oslo.messaging.drivers"  # entry point group


def prepare(argv):
    """The configuration, every value checked; UsageError if it cannot
    work."""
    conf = cfg.ConfigOpts()
    log.register_options(conf)
    opts.register_opts(conf)
    # Register oslo.messaging's own options now so that their defaults can
    # be adjusted before the workers create their transports.
    for group, group_opts in messaging_opts.list_opts():
        conf.register_opts(group_opts, group=group)
    said = io.StringIO()  # what argparse says of a bad command line
    try:
        with contextlib.redirect_stderr(said):
            conf(argv, project=PROJECT, prog=PROJECT,
                 version=pbr.version.VersionInfo(PROJECT).version_string())
        _check_values(conf)
    except cfg.ConfigFilesNotFoundError as exc:
        raise UsageError(
            f"configuration file not found: {', '.join(exc.config_files)}")
    except cfg.Error as exc:
        raise UsageError(str(exc).strip().splitlines()[0]) from None
    except SystemExit as exc:
        if exc.code in (0, None):  # --help, --version
            raise
        # Its last line says what is wrong; the usage above it is --help's.
        lines = said.getvalue().strip().splitlines() or ["bad arguments"]
        raise UsageError(lines[-1].removeprefix(f"{PROJECT}: ")) from None
    log.setup(conf, PROJECT)
    if conf.oslo_messaging_rabbit.rabbit_qos_prefetch_count == 0:
        # Unbounded prefetch would pull a whole backlog into memory.
        conf.set_default("rabbit_qos_prefetch_count",
                         2 * conf.collector.batch_size,
                         group="oslo_messaging_rabbit")
    return conf


class UsageError(Exception):
    """A command line or configuration that cannot work: exit status 2."""


def _check_values(conf):
    """Read every option once: oslo.config checks a value only when it is
    read, and a worker reading a bad one would die after the fork."""
    for name in list(conf):
        value = _read(conf, name, "DEFAULT")
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for option in list(value):
                _read(value, option, name)


def _read(namespace, option, group):
    try:
        return namespace[option]
    except cfg.ConfigFileValueError as exc:
        reason = str(exc).rpartition(" is not valid: ")[2]
        for python_words, ours in NOT_A_NUMBER:
            reason = re.sub(python_words, ours, reason)
        raise UsageError(f"invalid value for [{group}] {option}: "
                         f"{reason}") from None


# What int() and float() say of a bad value, in an operator's words.
NOT_A_NUMBER = [
    (r"^invalid literal for int\(\) with base 10: (.*)$",
     r"\1 is not a whole number"),
    (r"^could not convert string to float: (.*)$", r"\1 is not a number"),
]


def main(argv=None):
    try:
        conf = prepare(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        if exc.args[0]:
            exits.report(None, exc.args[0])
        return exits.USAGE
    try:
        # A wrong store or broker URL is a configuration error: say it
        # before forking.
        storage.check_url(conf.storage.connection, writer=True)
        _check_transport_url(conf)
    except (UsageError, storage.ConfigurationError) as exc:
        exits.report(conf, str(exc))
        return exits.USAGE
    return _supervise(conf)


def _check_transport_url(conf):
    url = broker.transport_url(conf)
    try:
        scheme = oslo_messaging.TransportURL.parse(conf, url).transport
    except (oslo_messaging.InvalidTransportURL, ValueError) as exc:
        reason = re.sub(*NOT_A_NUMBER[0], str(exc))
        raise UsageError(f"invalid transport_url "
                         f"{storage.mask_password(url)}: {reason}") from None
    # Names only: loading every driver would import (and log the failure
    # of) optional ones such as kafka.
    drivers = sorted({entry.name for entry in metadata.entry_points(
        group=TRANSPORT_DRIVERS)})
    if scheme not in drivers:
        raise UsageError(f"no oslo.messaging driver for transport_url scheme "
                         f"{scheme!r}; installed: {', '.join(drivers)}")


def _supervise(conf):
    """Run the workers until SIGTERM, or until one meets a fatal error:
    then stop them all and exit with that error's status."""
    manager = cotyledon.ServiceManager()
    fatal = []

    def on_dead_worker(service_id, worker_id, status):
        if status in exits.FATAL and not fatal:
            fatal.append(status)
            LOG.error("Stopping the collector: worker %s met a fatal error "
                      "(exit status %s)", worker_id, status)
            manager.shutdown()  # no respawn: it returns once stopping

    manager.register_hooks(on_dead_worker=on_dead_worker)
    manager.add(service.CollectorWorker, workers=conf.collector.workers,
                args=(conf,))
    oslo_config_glue.setup(manager, conf)
    try:
        manager.run()
    except SystemExit:  # how cotyledon's master ends
        if fatal:
            return fatal[0]
        raise
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
