"""What the SQL driver must do beyond the storage contract."""

import datetime
import threading
import time

import psycopg2
import pytest
import sqlalchemy as sa

from osprof_collector import storage
from osprof_collector.storage import base
from osprof_collector.storage import sql
from tests.functional.test_storage_contract import a_trace
from tests.functional.test_storage_contract import partial_spans
from tests import payloads


def _span_table_counts(dsn, counter="seq_scan"):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT n_tup_ins, {counter} FROM pg_stat_user_tables "
                    f"WHERE relname = 'osprof_spans'")
        return cur.fetchone()


def _dsn(url):
    return sa.engine.make_url(url).set(drivername="postgresql") \
        .render_as_string(hide_password=False)


def test_postgresql_writes_never_scan_the_whole_span_table(postgres_url):
    # A new table has no statistics (nor has any table while autovacuum
    # is off): PostgreSQL would then read a batch's traces by scanning all
    # the spans, and every write would cost the size of the store.
    dsn = _dsn(postgres_url)
    # The schema's index builds scan the table: counted before, with the
    # first batch (the counts show once the rows written do).
    first = _write_batches(postgres_url, 1)
    _inserted, scans_before = _wait_for_counts(dsn, inserted=first)
    written = first + _write_batches(postgres_url, 5)
    inserted, scans_after = _wait_for_counts(dsn, inserted=written)
    assert inserted == written
    assert scans_after == scans_before


def test_postgresql_list_never_scans_the_whole_span_table(postgres_url):
    # list reads which of its traces are incomplete from their spans;
    # without statistics PostgreSQL guessed that their ids match a fifth
    # of the table and scanned all of it (a quarter of a second with a
    # million spans).
    dsn = _dsn(postgres_url)
    written = _write_batches(postgres_url, 2)
    _inserted, scans_before = _wait_for_counts(dsn, inserted=written)
    store = storage.get_driver(postgres_url)
    try:
        assert len(store.list_traces(limit=20)) == 20
    finally:
        store.close()  # its connection reports its statistics
    time.sleep(1)  # what the statistics show lags a little
    _inserted, scans_after = _wait_for_counts(dsn, inserted=written)
    assert scans_after == scans_before


def _write_batches(url, batches):
    """Write batches of 20 traces; return the spans written."""
    store = storage.get_driver(url, ttl=0)
    written = 0
    try:
        for _ in range(batches):
            raw = [p for _ in range(20) for p in a_trace()[1]]
            store.write_spans(partial_spans(*raw))
            written += len(raw) // 2
    finally:
        store.close()  # its connections report their statistics
    return written


def _wait_for_counts(dsn, inserted, counter="seq_scan"):
    """(rows inserted, counter) of the span table, once the statistics
    show that many rows inserted (or after 30 s)."""
    deadline = time.monotonic() + 30
    counts = _span_table_counts(dsn, counter)
    while counts[0] < inserted and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = _span_table_counts(dsn, counter)
    return counts


def test_a_write_reads_the_spans_of_its_batch_not_all_of_its_traces(
        postgres_url):
    # A long trace arrives over many batches: were each write to read all
    # of its spans again (to refresh its summary), writing it would cost
    # the square of its size.
    dsn = _dsn(postgres_url)
    base_id = payloads.new_id()
    root = payloads.call("wsgi", base_id, base_id, 0, 5000)
    children = [p for n in range(2000) for p in payloads.call(
        "db", base_id, root[0]["trace_id"], n, n + 1)]
    store = storage.get_driver(postgres_url, ttl=0)
    try:
        store.write_spans(partial_spans(root[0], *children[:-2]))
    finally:
        store.close()
    _inserted, fetched_before = _wait_for_counts(dsn, 2000, "idx_tup_fetch")
    store = storage.get_driver(postgres_url, ttl=0)
    try:
        store.write_spans(partial_spans(*children[-2:]))  # one more call
        assert store.get_trace(base_id).span_count == 2001
    finally:
        store.close()
    _inserted, fetched_after = _wait_for_counts(dsn, 2001, "idx_tup_fetch")
    # get_trace reads the summary, not the spans: what was fetched from
    # the span table is the write's, a few rows, not 2,001.
    assert fetched_after - fetched_before < 10


@pytest.mark.parametrize("database", ["sqlite", "postgres", "mysql"])
def test_the_collector_adds_the_operations_column_to_an_older_table(
        database, request):
    url = request.getfixturevalue(f"{database}_url")
    engine = sa.create_engine(url)
    before = sa.MetaData()  # the workers table as it first was
    sa.Table(sql.workers_table.name, before, *(
        sa.Column(c.name, c.type, primary_key=c.primary_key,
                  nullable=c.nullable)
        for c in sql.workers_table.columns if c.name != "operations"))
    before.create_all(engine)
    engine.dispose()
    store = storage.get_driver(url, ttl=0)  # as the collector opens it
    moment = datetime.datetime(2026, 1, 1, 12, 0, 0, 5)
    heartbeat = base.Heartbeat(
        worker="n/0", host="n", pid=1, started_at=moment, updated_at=moment,
        counts={}, last_write=None,
        operations=[{"service": "api", "name": "wsgi", "calls": 1}])
    store.write_heartbeat(heartbeat)
    assert store.get_heartbeats() == [heartbeat]
    store.close()


def test_postgresql_workers_starting_together_prepare_the_schema_once(
        postgres_url):
    # Workers of a new collector open the new database at the same moment:
    # each must get its store, none a duplicate-table error.
    starting = threading.Barrier(6)
    failures = []

    def open_store():
        starting.wait()
        try:
            storage.get_driver(postgres_url, ttl=0).close()
        except base.StorageError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with psycopg2.connect(_dsn(postgres_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_indexes "
                    "WHERE indexname = 'osprof_spans_label_name_started'")
        assert cur.fetchone() == (1,)


def _payload_types(dsn):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT column_name, data_type FROM "
                    "information_schema.columns WHERE table_name = "
                    "'osprof_spans' AND column_name LIKE '%payload'")
        return dict(cur.fetchall())


def test_postgresql_payloads_are_json_and_older_jsonb_stores_still_work(
        postgres_url):
    # json keeps the payload text as written: no conversion on every
    # write and back on every read, as JSONB makes.
    dsn = _dsn(postgres_url)
    base_id, raw = a_trace()
    store = storage.get_driver(postgres_url, ttl=0)
    try:
        store.write_spans(partial_spans(*raw))
        assert _payload_types(dsn) == {"start_payload": "json",
                                       "stop_payload": "json"}
        expected = sorted(store.get_spans(base_id), key=lambda s: s.trace_id)
        # A store an earlier version made, with JSONB payloads.
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM osprof_spans; DELETE FROM osprof_traces;"
                        "ALTER TABLE osprof_spans ALTER COLUMN start_payload "
                        "TYPE jsonb, ALTER COLUMN stop_payload TYPE jsonb")
    finally:
        store.close()
    store = storage.get_driver(postgres_url, ttl=0)
    try:
        # stop first: the upsert fills the start into the stored row
        store.write_spans(partial_spans(*raw[::-1][:3]))
        store.write_spans(partial_spans(*raw[::-1][3:]))
        assert _payload_types(dsn) == {"start_payload": "jsonb",
                                       "stop_payload": "jsonb"}
        assert sorted(store.get_spans(base_id),
                      key=lambda s: s.trace_id) == expected
        assert store.get_trace(base_id).span_count == 3
    finally:
        store.close()
