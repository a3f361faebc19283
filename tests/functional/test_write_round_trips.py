"""A write costs the store the same few statements (SQL) or commands
(MongoDB) whatever number of traces its batch touches: the work a trace
needs is done for all of a batch's traces at once."""

import pymongo
from pymongo import monitoring
import pytest
import sqlalchemy as sa

from osprof_collector import storage
from tests.functional.conftest import MONGODB_URL
from tests.functional.test_storage_contract import partial_spans
from tests import payloads

URL_FIXTURES = {"postgresql": "postgres_url", "mysql": "mysql_url"}
SPANS = 240  # a batch of the collector's default size: 480 events


def halves(traces):
    """The start and the stop events of SPANS spans in that many traces
    (a root call and calls under it), as two batches."""
    starts, stops = [], []
    per_trace = SPANS // traces
    for _ in range(traces):
        base_id = payloads.new_id()
        root = payloads.call("wsgi", base_id, base_id, 0, 100)
        calls = [root] + [
            payloads.call("db", base_id, root[0]["trace_id"], n, n + 1)
            for n in range(1, per_trace)]
        starts.extend(start for start, _stop in calls)
        stops.extend(stop for _start, stop in calls)
    return starts, stops


class SQLCounter:
    """Counts what the driver's connections send to the database: every
    statement SQLite runs (each row of an executemany too), every
    execute() of a psycopg2 or PyMySQL cursor (a round trip: PyMySQL's
    executemany calls it once a page)."""

    def __init__(self, driver):
        self.count = 0
        engine = driver.engine
        sa.event.listen(engine, "connect", self._watch)
        engine.dispose()  # the connections to come are watched

    def _watch(self, dbapi_conn, _record):
        module = type(dbapi_conn).__module__
        if module.startswith("sqlite3"):
            dbapi_conn.set_trace_callback(self._counted)
        elif module.startswith("psycopg2"):
            dbapi_conn.cursor_factory = self._cursor_class(
                dbapi_conn.cursor_factory or _psycopg2_cursor())
        else:  # PyMySQL
            dbapi_conn.cursorclass = self._cursor_class(
                dbapi_conn.cursorclass)

    def _counted(self, _statement=None):
        self.count += 1

    def _cursor_class(self, base):
        counter = self

        class CountingCursor(base):
            def execute(self, *args, **kwargs):
                counter._counted()
                return super().execute(*args, **kwargs)

        return CountingCursor


def _psycopg2_cursor():
    import psycopg2.extensions
    return psycopg2.extensions.cursor


class MongoCounter:
    """Counts the commands the driver sends: through a CommandListener on
    a real server, or calls reaching the mongomock collections."""

    def __init__(self, driver):
        self.count = 0
        if isinstance(driver.client, pymongo.MongoClient):
            return  # the listener given to the client counts
        for name in ("spans", "traces"):
            setattr(driver, name, _CountingCollection(
                getattr(driver, name), self))


class _CountingCollection:
    COMMANDS = {"bulk_write", "aggregate", "count_documents", "find",
                "find_one", "update_one", "update_many", "insert_one",
                "insert_many", "replace_one", "delete_many"}

    def __init__(self, collection, counter):
        self._collection = collection
        self._counter = counter

    def __getattr__(self, name):
        if name in self.COMMANDS:
            self._counter.count += 1
        return getattr(self._collection, name)


class _Listener(monitoring.CommandListener):
    def __init__(self):
        self.counter = None

    def started(self, event):
        if self.counter is not None:
            self.counter.count += 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture(params=["sqlite", "postgresql", "mysql", "mongomock",
                        "mongodb"])
def counted_store(request, tmp_path):
    """A fresh store of that kind, and a counter of its round trips."""
    name = request.param
    if name == "mongomock":
        from tests import mongomock_adapter
        driver = mongomock_adapter.driver_factory()(ttl=0)
        yield driver, MongoCounter(driver)
        driver.close()
        return
    if name == "mongodb":
        if not MONGODB_URL:
            pytest.skip("real MongoDB: set OSPROF_COLLECTOR_TEST_MONGODB_URL")
        from osprof_collector.storage import mongodb
        url = f"{MONGODB_URL.rstrip('/')}/osprof_test_{payloads.new_id()[:8]}"
        listener = _Listener()
        client = pymongo.MongoClient(url, event_listeners=[listener])
        driver = mongodb.MongoDBDriver(url, ttl=0, client=client)
        listener.counter = counter = MongoCounter(driver)
        yield driver, counter
        client.drop_database(driver.database.name)
        client.close()
        return
    if name == "sqlite":
        url = f"sqlite:///{tmp_path}/osprof.db"
    else:
        url = request.getfixturevalue(URL_FIXTURES[name])
    driver = storage.get_driver(url, ttl=0)
    yield driver, SQLCounter(driver)
    driver.close()


def _round_trips(store, counter, batch):
    before = counter.count
    store.write_spans(partial_spans(*batch))
    return counter.count - before


def test_a_write_costs_the_same_for_one_trace_or_many(counted_store):
    store, counter = counted_store
    one_trace = halves(1)
    # 60 short traces of 4 spans, 120 of 2: more than the 100 statements
    # psycopg2 sends a round trip when it runs a statement per row.
    short = halves(SPANS // 4)
    shorter = halves(SPANS // 2)
    # A first trace warms the connection up (pool, schema checks).
    for warm_up in halves(1):
        _round_trips(store, counter, warm_up)
    # First the starts (new spans, new traces), then the stops (spans
    # and traces that are stored already).
    for part in (0, 1):
        alone = _round_trips(store, counter, one_trace[part])
        for many in (short, shorter):
            spread = _round_trips(store, counter, many[part])
            assert spread <= alone, (part, alone, spread)
    # What was counted is the write: the store did store it all.
    summaries = store.list_traces(limit=1000)
    assert len(summaries) == 2 + SPANS // 4 + SPANS // 2
    assert {s.span_count for s in summaries} == {SPANS, 4, 2}
    assert {s.root_name for s in summaries} == {"wsgi"}
    assert {s.duration_ms for s in summaries} == {100, SPANS}


def test_sql_writes_are_a_few_statements_a_batch(sql_store_counted):
    """On PostgreSQL and MySQL every statement is a round trip: a batch
    of many traces still takes a handful."""
    store, counter = sql_store_counted
    starts, stops = halves(SPANS // 2)
    store.write_spans(partial_spans(*halves(1)[0]))  # warms up
    for batch in (starts, stops):
        assert _round_trips(store, counter, batch) <= 8


@pytest.fixture(params=["postgresql", "mysql"])
def sql_store_counted(request):
    driver = storage.get_driver(request.getfixturevalue(
        URL_FIXTURES[request.param]), ttl=0)
    yield driver, SQLCounter(driver)
    driver.close()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def any_sql_store_counted(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/osprof.db"
    else:
        url = request.getfixturevalue(URL_FIXTURES[request.param])
    driver = storage.get_driver(url, ttl=0)
    yield driver, SQLCounter(driver)
    driver.close()


def test_stops_of_stored_root_spans_read_no_spans_again(
        any_sql_store_counted):
    """The root's name is read again from the stored spans only when a
    batch may change it: stops whose starts are stored cannot, so the
    stops' batch costs what the starts' did."""
    store, counter = any_sql_store_counted
    starts, stops = halves(SPANS // 4)
    store.write_spans(partial_spans(*halves(1)[0]))  # warms up
    for_starts = _round_trips(store, counter, starts)
    assert _round_trips(store, counter, stops) == for_starts
    assert {s.root_name for s in store.list_traces(limit=1000)} == {"wsgi"}
