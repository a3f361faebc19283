"""Every configuration option of osprof-collector, and list_opts()."""

from oslo_config import cfg

DEFAULT_EXCHANGES = ["openstack", "nova", "cinder", "glance", "neutron",
                     "keystone", "heat", "swift", "trove", "manila", "ironic",
                     "magnum", "octavia", "designate", "barbican", "placement",
                     "senlin", "sahara", "zaqar", "aodh", "ceilometer"]
HEARTBEAT_INTERVAL = 30

collector_opts = [
    cfg.ListOpt("topics", default=["profiler"],
                help="Notification topics to consume; osprofiler sends to "
                     "'profiler' (queue profiler.info)."),
    cfg.ListOpt("exchanges", default=DEFAULT_EXCHANGES,
                help="Control exchanges to bind the topics on: each "
                     "OpenStack service sends to its own control_exchange."),
    cfg.StrOpt("pool",
               help="Listener pool name. Unset: consume the shared "
                    "<topic>.info queue that the senders declare. Set: a "
                    "queue of its own, named after the pool and bound to "
                    "the same routing keys, to run beside another consumer "
                    "without taking its messages."),
    cfg.IntOpt("batch_size", default=500, min=1,
               help="Notifications handed to the store in one write. "
                    "Larger batches cost fewer transactions per event; the "
                    "broker's prefetch, 2 x batch_size unless set, bounds "
                    "a worker's memory."),
    cfg.FloatOpt("batch_timeout", default=1.0, min=0.01,
                 help="Seconds to wait for a batch to fill before writing "
                      "what has arrived."),
    cfg.IntOpt("workers", default=1, min=1,
               help="Worker processes, each with its own connection to the "
                    "broker and to the store."),
    cfg.IntOpt("max_info_bytes", default=65536, min=1024, max=4194304,
               help="Largest JSON size of an event's info (and of any "
                    "other entry beside osprofiler's own) kept in the "
                    "store; bigger ones keep their small entries and say "
                    "what was cut under 'osprof_truncated'."),
    cfg.IntOpt("stats_interval", default=60, min=0,
               help="Seconds between the one-line statistics log of each "
                    "worker; 0 disables it."),
    cfg.IntOpt("heartbeat_interval", default=HEARTBEAT_INTERVAL, min=1,
               help="Seconds between two heartbeats of each worker: a "
                    "record in the store with its counters, which "
                    "'osprof-trace status' shows."),
    cfg.FloatOpt("requeue_backoff_max", default=30.0, min=0.1,
                 help="Longest pause, in seconds, between two write "
                      "attempts of a worker while the store fails; the "
                      "pause doubles on each failure from 0.5 s. A failed "
                      "batch goes back to the broker at once; the others "
                      "wait, unacknowledged, for their turn."),
]

storage_opts = [
    cfg.StrOpt("connection", default="mongodb://localhost:27017/osprofiler",
               secret=True,
               help="Store URL; its scheme picks the driver: mongodb, "
                    "sqlite, postgresql[+driver], mysql[+driver]."),
    cfg.IntOpt("ttl", default=0, min=0,
               help="Seconds to keep a trace after its last event; 0 keeps "
                    "traces forever. MongoDB's TTL indexes remove each span "
                    "this long after its own last event."),
    cfg.IntOpt("purge_interval", default=3600, min=60,
               help="Seconds between two purges of expired traces when ttl "
                    "is set and the store has no TTL index of its own (SQL "
                    "stores); worker 0 does it."),
    cfg.IntOpt("max_retries", default=0, min=0,
               help="Attempts to reach the store at start before giving "
                    "up: the daemon then exits with status 69. 0 retries "
                    "forever."),
    cfg.FloatOpt("retry_interval_max", default=30.0, min=0.1,
                 help="Longest pause, in seconds, between attempts to reach "
                      "the store; pauses grow exponentially up to it."),
]


api_opts = [
    cfg.HostAddressOpt("host", default="127.0.0.1",
                       help="Address osprof-api listens on. Trace payloads "
                            "hold SQL statements and request parameters: "
                            "listening beyond the loopback with "
                            "auth_strategy = noauth logs a warning."),
    cfg.PortOpt("port", default=9411,
                help="Port osprof-api listens on; 9411 is Zipkin's, so "
                     "that Grafana's default Zipkin URL works."),
    cfg.StrOpt("auth_strategy", default="noauth",
               choices=[("noauth", "no authentication"),
                        ("keystone", "Keystone tokens, checked by "
                                     "keystonemiddleware's auth_token")],
               help="How requests are authenticated."),
    cfg.ListOpt("admin_roles", default=["admin"],
                help="With auth_strategy = keystone: the roles a token "
                     "needs to read traces (which hold every project's "
                     "SQL statements and request parameters)."),
    cfg.StrOpt("connection", secret=True,
               help="Store URL to read; unset: [storage] connection."),
    cfg.IntOpt("query_lookback", default=86400, min=1,
               help="Seconds back from endTs (or from now) that a trace "
                    "search covers when it gives no lookback, as Zipkin's "
                    "QUERY_LOOKBACK."),
    cfg.IntOpt("trace_cache_size", default=64, min=0,
               help="MiB of answers about closed traces (every span "
                    "started and stopped) that each osprof-api process "
                    "keeps, to send again while no span is added to the "
                    "trace: a trace of 10,000 spans is read and exported "
                    "in a few hundred milliseconds, and Grafana and the "
                    "web UI ask for it more than once. 0 keeps none."),
]


def register_opts(conf):
    conf.register_opts(collector_opts, group="collector")
    conf.register_opts(storage_opts, group="storage")
    conf.register_opts(api_opts, group="api")


def list_opts():
    return [
        ("collector", collector_opts),
        ("storage", storage_opts),
        ("api", api_opts),
    ]
