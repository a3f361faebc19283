"""One fixture per storage driver, for the contract suite."""

import os
import uuid

import pytest

from osprof_collector import storage

MONGODB_URL = os.environ.get("OSPROF_COLLECTOR_TEST_MONGODB_URL")
DRIVERS = ["sqlite", "postgresql", "mongomock", "mongodb"]


@pytest.fixture(params=DRIVERS)
def store_url_factory(request, tmp_path):
    """Return a callable opening a new driver on this test's own store."""
    name = request.param
    opened = []
    if name == "sqlite":
        url = f"sqlite:///{tmp_path}/osprof.db"
        factory = lambda: storage.get_driver(url)  # noqa: E731
    elif name == "postgresql":
        url = request.getfixturevalue("postgres_url")
        factory = lambda: storage.get_driver(url)  # noqa: E731
    elif name == "mongomock":
        from tests import mongomock_adapter
        factory = mongomock_adapter.driver_factory()
    else:
        if not MONGODB_URL:
            pytest.skip("real MongoDB: set OSPROF_COLLECTOR_TEST_MONGODB_URL")
        url = MONGODB_URL.rstrip("/") + f"/osprof_test_{uuid.uuid4().hex[:8]}"
        factory = lambda: storage.get_driver(url)  # noqa: E731

    def open_driver():
        driver = factory()
        opened.append(driver)
        return driver

    yield open_driver
    if name == "mongodb" and opened:
        opened[0].client.drop_database(opened[0].database.name)
    for driver in opened:
        driver.close()


@pytest.fixture
def store(store_url_factory):
    return store_url_factory()
