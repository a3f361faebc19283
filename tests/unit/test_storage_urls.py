import time

import pytest

from osprof_collector import storage


@pytest.mark.parametrize("url,masked", [
    ("postgresql://osprof:s3cr%40t@db:5432/osprof",
     "postgresql://osprof:***@db:5432/osprof"),
    ("mongodb://admin:pw@m1:27017,m2:27017/osprofiler?replicaSet=rs0",
     "mongodb://admin:***@m1:27017,m2:27017/osprofiler?replicaSet=rs0"),
    ("sqlite:////var/lib/osprof/traces.db",
     "sqlite:////var/lib/osprof/traces.db"),
    ("mysql+pymysql://user@db/osprof", "mysql+pymysql://user@db/osprof"),
])
def test_mask_password(url, masked):
    assert storage.mask_password(url) == masked


@pytest.mark.parametrize("url,message", [
    ("redis://u:secret@h/0", "no storage driver for scheme 'redis'"),
    ("mysql://u:secret@h/x", "the Python module 'MySQLdb' this URL needs"),
    ("mongodb://u:secret@h:99999/x", "invalid MongoDB URL"),
    ("mongodb://u:secret@/x", "invalid MongoDB URL"),
    ("postgresql+nosuchdriver://u:secret@h/x", "postgresql+nosuchdriver"),
])
def test_urls_that_can_never_work_are_configuration_errors(url, message):
    with pytest.raises(storage.ConfigurationError) as caught:
        storage.check_url(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)
    started = time.monotonic()
    with pytest.raises(storage.ConfigurationError):
        storage.connect(url)  # not retried: it would never succeed
    assert time.monotonic() - started < 5


def test_unreachable_store_is_retried_then_reported():
    url = "postgresql://osprof:secret@127.0.0.1:1/none"
    storage.check_url(url)  # well-formed
    started = time.monotonic()
    with pytest.raises(storage.StorageError) as caught:
        storage.connect(url, max_attempts=3, max_interval=0.1)
    assert time.monotonic() - started >= 0.1  # it waited between attempts
    assert "osprof:***@127.0.0.1:1" in str(caught.value)
    assert "secret" not in str(caught.value)
