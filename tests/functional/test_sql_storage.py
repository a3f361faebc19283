"""What the SQL driver must do beyond the storage contract."""

import time

import psycopg2
import sqlalchemy as sa

from osprof_collector import storage
from tests.functional.test_storage_contract import a_trace
from tests.functional.test_storage_contract import partial_spans


def _span_table_counts(dsn):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT n_tup_ins, seq_scan FROM pg_stat_user_tables "
                    "WHERE relname = 'osprof_spans'")
        return cur.fetchone()


def test_postgresql_writes_never_scan_the_whole_span_table(postgres_url):
    # A new table has no statistics (nor has any table while autovacuum
    # is off): PostgreSQL would then read a batch's traces by scanning all
    # the spans, and every write would cost the size of the store.
    dsn = sa.engine.make_url(postgres_url).set(
        drivername="postgresql").render_as_string(hide_password=False)
    # The schema's index builds scan the table: counted before, with the
    # first batch (the counts show once the rows written do).
    first = _write_batches(postgres_url, 1)
    _inserted, scans_before = _wait_for_counts(dsn, inserted=first)
    written = first + _write_batches(postgres_url, 5)
    inserted, scans_after = _wait_for_counts(dsn, inserted=written)
    assert inserted == written
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


def _wait_for_counts(dsn, inserted):
    """(rows inserted, sequential scans) of the span table, once the
    statistics show that many rows inserted (or after 30 s)."""
    deadline = time.monotonic() + 30
    counts = _span_table_counts(dsn)
    while counts[0] < inserted and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = _span_table_counts(dsn)
    return counts
