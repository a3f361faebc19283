"""The broker a collector consumes from, as its log lines name it."""

import logging

import oslo_messaging

# oslo.messaging's RabbitMQ driver logs its connection retries without the
# broker they are for: "Connection failed: <error> (retrying in N seconds)".
RETRY_LOGGER = "oslo.messaging._drivers.impl_rabbit"
RETRY_MESSAGE = "Connection failed: %s (retrying in %s seconds)"


def transport_url(conf):
    """The URL the notification transport uses, as oslo.messaging picks
    it: [oslo_messaging_notifications] transport_url, else [DEFAULT]."""
    return (conf.oslo_messaging_notifications.transport_url
            or conf.transport_url)


def address(conf):
    """Every host:port of the transport URL, with user and no password,
    e.g. "rabbit://guest:***@10.0.0.5:5672/vhost"."""
    url = oslo_messaging.TransportURL.parse(conf, transport_url(conf))
    hosts = ",".join(
        (f"{h.username}:***@" if h.username else "")
        + f"{h.hostname or 'localhost'}:{h.port or 5672}"
        for h in url.hosts) or "localhost:5672"
    return f"{url.transport or 'rabbit'}://{hosts}/{url.virtual_host or ''}"


class _NameTheBroker(logging.Filter):
    def __init__(self, where):
        super().__init__()
        self.where = where

    def filter(self, record):
        if record.msg == RETRY_MESSAGE:
            record.msg = "Broker %s unreachable: %s; retrying in %s s"
            record.args = (self.where, *record.args)
        return True


def name_the_broker_in_retry_lines(conf):
    """Make oslo.messaging's connection retry lines say which broker."""
    logging.getLogger(RETRY_LOGGER).addFilter(_NameTheBroker(address(conf)))
