"""Storage drivers, loaded through stevedore by the URL scheme."""

import logging
from urllib import parse

import stevedore
import tenacity

from osprof_collector.storage.base import StorageError

LOG = logging.getLogger(__name__)
NAMESPACE = "osprof_collector.storage"


class UnknownDriverError(StorageError):
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


def available_drivers():
    return sorted(stevedore.ExtensionManager(NAMESPACE).names())


def check_url(url):
    """Raise UnknownDriverError unless a driver serves the URL's scheme."""
    scheme = parse.urlsplit(url).scheme
    if scheme not in available_drivers():
        raise UnknownDriverError(
            f"no storage driver for scheme {scheme!r} in "
            f"{mask_password(url)}; installed drivers: "
            f"{', '.join(available_drivers())}")
    return scheme


def get_driver(url, ttl=0):
    """Load and open the driver for the URL's scheme."""
    manager = stevedore.DriverManager(NAMESPACE, check_url(url),
                                      invoke_on_load=True,
                                      invoke_args=(url,),
                                      invoke_kwds={"ttl": ttl})
    return manager.driver


def connect(url, ttl=0, max_attempts=0, max_interval=30.0):
    """get_driver(), retried with exponential backoff while unreachable.

    max_attempts=0 retries forever (what a daemon started before its
    database wants); UnknownDriverError is never retried.
    """
    stop = (tenacity.stop_after_attempt(max_attempts) if max_attempts
            else tenacity.stop_never)

    def log_retry(state):
        LOG.warning("Storage %s unreachable (%s); retrying in %.1f s",
                    mask_password(url), state.outcome.exception(),
                    state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, StorageError)
            and not isinstance(exc, UnknownDriverError)),
        wait=tenacity.wait_exponential(multiplier=0.5, max=max_interval),
        stop=stop, before_sleep=log_retry, reraise=True)
    return retrying(get_driver, url, ttl)
