"""Storage drivers, loaded through stevedore by the URL scheme."""

import logging
from urllib import parse

import stevedore
import tenacity

from osprof_collector.storage.base import ConfigurationError
from osprof_collector.storage.base import NoStoreError  # noqa: F401
from osprof_collector.storage.base import StorageError

LOG = logging.getLogger(__name__)
NAMESPACE = "osprof_collector.storage"


class UnknownDriverError(ConfigurationError):
    pass


def mask_password(url):
    """The URL with its password replaced by ***, safe for logs."""
    try:
        parts = parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parse.urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


# The ports the drivers' client libraries use when a URL names none.
DEFAULT_PORTS = {"mongodb": 27017, "postgresql": 5432, "mysql": 3306}


def address(url):
    """Where a store URL points, for log lines: its host:port (the default
    port when the URL names none), or its file for SQLite."""
    try:
        parts = parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        return parts.path[1:] or ":memory:"
    if scheme == "mongodb" and "," in parts.netloc:  # a replica set
        return parts.netloc.rpartition("@")[2]
    port = port or DEFAULT_PORTS.get(scheme)
    return f"{parts.hostname or 'localhost'}:{port}"


def available_drivers():
    return sorted(stevedore.ExtensionManager(NAMESPACE).names())


def _driver_class(url):
    scheme = parse.urlsplit(url).scheme
    if scheme not in available_drivers():
        raise UnknownDriverError(
            f"no storage driver for scheme {scheme!r} in "
            f"{mask_password(url)}; installed drivers: "
            f"{', '.join(available_drivers())}")
    return stevedore.DriverManager(NAMESPACE, scheme).driver


def check_url(url, writer=False):
    """Raise ConfigurationError unless the URL can work, without
    connecting: a driver serves its scheme and can use it (and, for a
    writer, could create the store where it says)."""
    driver = _driver_class(url)
    driver.check_url(url)
    if writer:
        driver.check_writable(url)


def get_driver(url, ttl=None):
    """Load and open the driver for the URL's scheme, creating the schema
    where it is missing: what the collector does."""
    return _driver_class(url)(url, ttl=ttl)


def open_existing(url):
    """Open the store at url for reading (osprof-trace, the HTTP API).

    Creates nothing: raises NoStoreError ("no osprof-collector store at
    URL", password masked) unless the collector has made a store there;
    StorageError if it cannot be reached; ConfigurationError for a URL that
    can never work. Retention is left as the collector set it.
    """
    return _driver_class(url)(url, create=False)


def connect(url, ttl=None, max_attempts=0, max_interval=30.0):
    """get_driver(), retried with exponential backoff while unreachable.

    max_attempts=0 retries forever (what a daemon started before its
    database wants); a ConfigurationError is never retried.
    """
    stop = (tenacity.stop_after_attempt(max_attempts) if max_attempts
            else tenacity.stop_never)

    def log_retry(state):
        # The error names the URL, password masked.
        LOG.warning("Storage at %s unreachable (%s); retrying in %.1f s",
                    address(url), state.outcome.exception(),
                    state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, StorageError)
            and not isinstance(exc, ConfigurationError)),
        wait=tenacity.wait_exponential(multiplier=0.5, max=max_interval),
        stop=stop, before_sleep=log_retry, reraise=True)
    return retrying(get_driver, url, ttl)
