"""osprof-collector: the daemon's entry point."""

import sys

import cotyledon
from cotyledon import oslo_config_glue
from oslo_config import cfg
from oslo_log import log
import oslo_messaging
from oslo_messaging import opts as messaging_opts
import pbr.version

from osprof_collector import opts
from osprof_collector import service
from osprof_collector import storage

LOG = log.getLogger(__name__)
PROJECT = "osprof-collector"


def prepare(argv):
    conf = cfg.ConfigOpts()
    log.register_options(conf)
    opts.register_opts(conf)
    # Register oslo.messaging's own options now so that their defaults can
    # be adjusted before the workers create their transports.
    for group, group_opts in messaging_opts.list_opts():
        conf.register_opts(group_opts, group=group)
    conf(argv, project=PROJECT, prog=PROJECT,
         version=pbr.version.VersionInfo(PROJECT).version_string())
    log.setup(conf, PROJECT)
    if conf.oslo_messaging_rabbit.rabbit_qos_prefetch_count == 0:
        # Unbounded prefetch would pull a whole backlog into memory.
        conf.set_default("rabbit_qos_prefetch_count",
                         2 * conf.collector.batch_size,
                         group="oslo_messaging_rabbit")
    return conf


def main(argv=None):
    conf = prepare(sys.argv[1:] if argv is None else argv)
    try:
        # A wrong store URL is a configuration error: say it before forking.
        storage.check_url(conf.storage.connection)
        oslo_messaging.get_notification_transport(conf).cleanup()
    except (storage.ConfigurationError,
            oslo_messaging.InvalidTransportURL) as exc:
        print(f"osprof-collector: {exc}", file=sys.stderr)
        if conf.log_file:
            LOG.error("%s", exc)
        return 2
    manager = cotyledon.ServiceManager()
    manager.add(service.CollectorWorker, workers=conf.collector.workers,
                args=(conf,))
    oslo_config_glue.setup(manager, conf)
    manager.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
