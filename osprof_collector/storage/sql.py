"""SQL storage (SQLite, PostgreSQL, MySQL/MariaDB) through SQLAlchemy 2."""

import collections
import dataclasses
import datetime
import logging
import os
import time

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite

from osprof_collector import spans as spans_mod
from osprof_collector.storage import base
from osprof_collector.storage import mask_password

LOG = logging.getLogger(__name__)

# MySQL's DATETIME drops microseconds unless asked to keep them.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql",
                                       "mariadb")
# PostgreSQL's json, not JSONB: payloads are only written and read whole,
# never queried inside, and json keeps the text as given where JSONB
# converts it on every write and back on every read (a 10,000-span trace
# read 97-124 ms → 60 ms, its rows written 450-540 → 280-300 ms). Stores
# made with JSONB keep it: both read and write the same.
Payload = sa.JSON(none_as_null=True)
Uuid = sa.String(36)

metadata = sa.MetaData()

spans_table = sa.Table(
    "osprof_spans", metadata,
    sa.Column("trace_id", Uuid, primary_key=True),
    sa.Column("base_id", Uuid, nullable=False, index=True),
    sa.Column("parent_id", Uuid, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("project", sa.Text),
    sa.Column("service", sa.Text),
    sa.Column("host", sa.Text),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp),
    sa.Column("error_type", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("start_payload", Payload),
    sa.Column("stop_payload", Payload),
)
# span_latency() reads one service's spans over a time range. MySQL indexes
# a TEXT column only by a prefix.
spans_by_service = sa.Index(
    "osprof_spans_service_started", spans_table.c.service,
    spans_table.c.started_at, mysql_length={"service": 255})
# The HTTP API lists labels and span names by walking this index, and
# finds the newest spans of a name through it.
spans_by_label = sa.Index(
    "osprof_spans_label_name_started", spans_table.c.service,
    spans_table.c.project, spans_table.c.name, spans_table.c.started_at,
    mysql_length={"service": 191, "project": 191, "name": 191})

# Per-trace summary, kept exact by write_spans(): listing reads only this.
# services and projects are stored as "|a|b|" so one LIKE finds a member.
traces_table = sa.Table(
    "osprof_traces", metadata,
    sa.Column("base_id", Uuid, primary_key=True),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp, index=True),
    sa.Column("duration_ms", sa.Float),
    sa.Column("span_count", sa.Integer, nullable=False, default=0),
    sa.Column("services", sa.Text, nullable=False, default="|"),
    sa.Column("projects", sa.Text, nullable=False, default="|"),
    sa.Column("error", sa.Boolean, nullable=False, default=False),
    sa.Column("root_name", sa.Text),
)
# Newest first, in list_traces()'s exact order, so LIMIT stops early.
sa.Index("osprof_traces_newest", traces_table.c.started_at.desc(),
         traces_table.c.base_id)

# One row per collector worker, replaced by each of its heartbeats.
workers_table = sa.Table(
    "osprof_workers", metadata,
    sa.Column("worker", sa.String(255), primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("last_write", Timestamp),
    sa.Column("operations", sa.JSON),
)

# The key of the advisory lock that schema preparation takes on PostgreSQL.
SCHEMA_LOCK_KEY = int.from_bytes(b"osprof", "big")
DEADLOCK_ATTEMPTS = 5
# PostgreSQL deadlock and serialization failure; MySQL deadlock and lock
# wait timeout.
DEADLOCK_CODES = {"40P01", "40001", 1213, 1205}
# Planner settings on PostgreSQL, which may guess wrong while a table has
# no statistics (a new store, autovacuum behind). A write may guess that
# an IN (...) of its batch's ids matches half the table and scan all of
# it. A search reads only the first rows of the newest spans: in an
# index's order, not all of them fetched and sorted. Reads of some traces'
# spans (service links, list's incomplete flags) go through the base_id
# index in a nested loop, instead of scanning, hash- or merge-joining
# every span, with no JIT compiling and no parallel workers starting for
# longer than the lookups take (without parallel workers, the planner
# picked a hash join that read all the spans).
POSTGRESQL_WRITE_SETTINGS = ("SET LOCAL enable_seqscan = off",)
POSTGRESQL_SEARCH_SETTINGS = ("SET LOCAL enable_sort = off",)
POSTGRESQL_BY_TRACE_SETTINGS = (
    "SET LOCAL enable_seqscan = off", "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off", "SET LOCAL jit = off",
    "SET LOCAL max_parallel_workers_per_gather = 0")
SPAN_COLUMNS = [c.name for c in spans_table.columns]
MERGED_COLUMNS = [c for c in SPAN_COLUMNS if c != "trace_id"]
SUMMARY_COLUMNS = [c.name for c in traces_table.columns]


class CursorStatements:
    """Statements run through the DB-API cursor itself.

    SQLAlchemy's per-row parameter processing cost the collector more than
    the database's own work, and it compiles a multi-row statement anew
    for every number of rows; here a row is a tuple in column order.
    """

    def __init__(self, dialect):
        self.dbapi = dialect.loaded_dbapi
        self.mark = "?" if self.dbapi.paramstyle == "qmark" else "%s"
        # SQLite keeps times as text, in SQLAlchemy's own format.
        self.time = _sqlite_time if dialect.name == "sqlite" else _same

    def _run(self, conn, sql, params, many=False, fetch=False):
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
            return cursor.fetchall() if fetch else None
        except self.dbapi.Error as exc:
            # What SQLAlchemy would have raised (the callers handle it).
            raise sa_exc.DBAPIError.instance(
                sql, None, exc, self.dbapi.Error) from None
        finally:
            cursor.close()


class SpanRowWriter(CursorStatements):
    """Finds and upserts span rows, with their JSON encoded once by
    orjson. Known values stay: a new row only fills what is still NULL.
    """

    def __init__(self, dialect):
        super().__init__(dialect)
        mark = self.mark
        columns = ", ".join(SPAN_COLUMNS)
        insert = f"INSERT INTO {spans_table.name} ({columns}) VALUES "
        if dialect.name in ("mysql", "mariadb"):
            merge = "ON DUPLICATE KEY UPDATE " + ", ".join(
                f"{c} = coalesce({c}, VALUES({c}))" for c in MERGED_COLUMNS)
        else:
            merge = "ON CONFLICT (trace_id) DO UPDATE SET " + ", ".join(
                f"{c} = coalesce({spans_table.name}.{c}, excluded.{c})"
                for c in MERGED_COLUMNS)
        self.by_column = dialect.name == "postgresql"
        if self.by_column:
            # All the rows in one array literal a column, which the server
            # unnests: its parser reads a dozen strings, not a VALUES list
            # of a dozen expressions a row (the server's CPU for a batch
            # of short traces' spans -29 %, the client's -35 %).
            arrays = ", ".join(f"%s::{_pg_type(c)}[]"
                               for c in spans_table.columns)
            # It also says which rows it inserted (a row it inserted has
            # no xmax yet): no SELECT of the stored ones first.
            self.sql = (f"INSERT INTO {spans_table.name} ({columns}) "
                        f"SELECT * FROM unnest({arrays}) {merge} "
                        f"RETURNING trace_id, xmax = 0")
        else:
            # sqlite3 runs one prepared statement for every row, PyMySQL
            # rewrites it into one multi-row INSERT.
            row = "(" + ", ".join([mark] * len(SPAN_COLUMNS)) + ")"
            self.sql = f"{insert}{row} {merge}"

    def row(self, span):
        error = span.error or {}
        moment = self.time
        return (span.trace_id, span.base_id, span.parent_id, span.name,
                span.project, span.service, span.host,
                moment(span.started_at), moment(span.finished_at),
                error.get("etype"), _text(error.get("message")),
                span.start_json or _json(span.start_payload),
                span.stop_json or _json(span.stop_payload))

    def stored(self, conn, trace_ids):
        """The set of these trace_ids that have a row already."""
        found = set()
        for some in _chunks(trace_ids):
            marks = ", ".join([self.mark] * len(some))
            sql = (f"SELECT trace_id FROM {spans_table.name} "
                   f"WHERE trace_id IN ({marks})")
            found.update(row[0] for row in self._run(conn, sql, some,
                                                     fetch=True))
        return found

    def upsert(self, conn, rows):
        """Upsert the rows; return the trace_ids that had none before."""
        if self.by_column:
            columns = [_pg_array(values) for values in zip(*rows)]
            return {trace_id for trace_id, inserted in self._run(
                conn, self.sql, columns, fetch=True) if inserted}
        trace_ids = [row[0] for row in rows]
        stored = self.stored(conn, trace_ids)
        self._run(conn, self.sql, rows, many=True)
        return set(trace_ids) - stored


# A summary row as SummaryRowWriter.lock() returns it.
StoredSummary = collections.namedtuple("StoredSummary", SUMMARY_COLUMNS)


class SummaryRowWriter(CursorStatements):
    """Locks the summary rows of a batch's traces, then writes them back:
    a statement for every 500 traces, whatever the batch holds."""

    def __init__(self, dialect):
        super().__init__(dialect)
        table = traces_table.name
        columns = ", ".join(SUMMARY_COLUMNS)
        # A new summary: no span counted yet.
        self.new_row = f"({self.mark}, 0, '|', '|', FALSE)"
        self.lock_sql = (f"INSERT INTO {table} (base_id, span_count, "
                         f"services, projects, error) VALUES ")
        self.write_sql = f"INSERT INTO {table} ({columns}) VALUES "
        self.row_marks = "(" + ", ".join(
            [self.mark] * len(SUMMARY_COLUMNS)) + ")"
        updated = SUMMARY_COLUMNS[1:]
        if dialect.name in ("mysql", "mariadb"):
            # INSERT IGNORE would take shared locks that the FOR UPDATE
            # then upgrades: two writers deadlock. A no-op update locks
            # at once.
            self.lock_end = (" ON DUPLICATE KEY UPDATE "
                             "base_id = VALUES(base_id)")
            self.select_sql = (f"SELECT {columns} FROM {table} WHERE "
                               f"base_id IN (%s) ORDER BY base_id FOR UPDATE")
            self.write_end = " ON DUPLICATE KEY UPDATE " + ", ".join(
                f"{c} = VALUES({c})" for c in updated)
        else:
            # A no-op update of an existing row locks it, and RETURNING
            # gives it back with the rows the same statement inserts.
            self.lock_end = (f" ON CONFLICT (base_id) DO UPDATE SET "
                             f"span_count = {table}.span_count "
                             f"RETURNING {columns}")
            self.select_sql = None
            self.write_end = " ON CONFLICT (base_id) DO UPDATE SET " + \
                ", ".join(f"{c} = excluded.{c}" for c in updated)
        self.read_time = (_sqlite_datetime if dialect.name == "sqlite"
                          else _same)

    def lock(self, conn, base_ids):
        """{base_id: StoredSummary} of these traces, their rows created
        if new, and locked.

        Writers of the same trace queue up here, in base_id order (no
        deadlock: base_ids come sorted): each then folds its batch into
        what the one before it committed, so the summaries stay exact.
        """
        found = {}
        read_time = self.read_time
        for chunk in _chunks(base_ids):
            sql = (self.lock_sql + ", ".join([self.new_row] * len(chunk))
                   + self.lock_end)
            if self.select_sql is None:
                rows = self._run(conn, sql, chunk, fetch=True)
            else:
                self._run(conn, sql, chunk)
                marks = ", ".join([self.mark] * len(chunk))
                rows = self._run(conn, self.select_sql % marks, chunk,
                                 fetch=True)
            for base_id, started, finished, *rest in rows:
                found[base_id] = StoredSummary(
                    base_id, read_time(started), read_time(finished), *rest)
        return found

    def write(self, conn, summaries):
        """Replace the locked rows by these (tuples in column order)."""
        for chunk in _chunks(summaries):
            sql = (self.write_sql + ", ".join([self.row_marks] * len(chunk))
                   + self.write_end)
            self._run(conn, sql, [value for row in chunk for value in row])


class SpanRowReader(CursorStatements):
    """Reads one trace's span rows through the DB-API cursor itself.

    SQLAlchemy's per-row result processing cost a trace of 10,000 spans
    more than the query. Payloads are decoded by orjson, the engine's
    deserializer: the PostgreSQL drivers apply it to json (and the JSONB of
    older stores) themselves, SQLite's and MySQL's JSON text is decoded
    here. SQLite's times, text in SQLAlchemy's format, are parsed by
    datetime.fromisoformat.
    """

    def __init__(self, dialect):
        super().__init__(dialect)
        select = f"SELECT {', '.join(SPAN_COLUMNS)} FROM {spans_table.name}"
        self.sql = f"{select} WHERE base_id = {self.mark}"
        self.one_sql = f"{select} WHERE trace_id = {self.mark}"
        self.read_time = (_sqlite_datetime if dialect.name == "sqlite"
                          else _same)
        self.read_payload = (_same if dialect.name == "postgresql"
                             else _parse_json)

    def rows(self, conn, base_id):
        return self._run(conn, self.sql, (base_id,), fetch=True)

    def span_rows(self, conn, trace_id):
        return self._run(conn, self.one_sql, (trace_id,), fetch=True)

    def spans(self, rows):
        """The Spans of rows in SPAN_COLUMNS order."""
        moment, payload = self.read_time, self.read_payload
        # Positional arguments, in Span's field order: a tenth faster
        # than keywords and a call per row.
        return [spans_mod.Span(
                    trace_id, base_id, parent_id, name, project, service,
                    host, moment(started_at), moment(finished_at),
                    None if error_type is None else {
                        "etype": error_type, "message": error_message},
                    payload(start_payload), payload(stop_payload))
                for (trace_id, base_id, parent_id, name, project, service,
                     host, started_at, finished_at, error_type,
                     error_message, start_payload, stop_payload) in rows]


class SQLDriver(base.StorageDriver):

    def __init__(self, url, ttl=None, create=True):
        super().__init__(url, ttl, create)
        self.engine = _create_engine(url, create)
        self.dialect = self.engine.dialect.name
        self._span_rows = SpanRowWriter(self.engine.dialect)
        self._summary_rows = SummaryRowWriter(self.engine.dialect)
        self._span_reads = SpanRowReader(self.engine.dialect)
        if not create:
            self._check_store()
            return
        try:
            with self.engine.begin() as conn:
                _lock_schema(conn)
                metadata.create_all(conn)
                if ttl is not None:
                    # create_all() adds no index to a table an older
                    # version made; the collector builds it, never a
                    # reader, whose CREATE INDEX would hold the
                    # collector's writes meanwhile.
                    spans_by_service.create(conn, checkfirst=True)
                    _add_missing_columns(conn)
                    spans_by_label.create(conn, checkfirst=True)
        except sa_exc.SQLAlchemyError as exc:
            self.engine.dispose()
            error = self._error("cannot prepare the schema", exc)
            if _is_refusal(exc):
                error = base.ConfigurationError(str(error))
            raise error from None

    def _check_store(self):
        """NoStoreError unless the collector's tables are there; creates
        nothing (SQLite would create a missing file on connecting)."""
        no_store = base.NoStoreError(mask_password(self.url))
        path = self.engine.url.database
        if self.dialect == "sqlite" and (
                not path or path == ":memory:"
                or (not path.startswith("file:")
                    and not os.path.isfile(path))):
            self.engine.dispose()
            raise no_store
        try:
            tables = set(sa.inspect(self.engine).get_table_names())
        except sa_exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise self._error("cannot read the schema", exc) from None
        if not {spans_table.name, traces_table.name} <= tables:
            self.engine.dispose()
            raise no_store

    @classmethod
    def check_url(cls, url):
        _create_engine(url).dispose()  # connects to nothing

    @classmethod
    def check_writable(cls, url):
        engine = _create_engine(url)
        try:
            if engine.dialect.name == "sqlite":
                _check_sqlite_path(url, engine.url.database)
        finally:
            engine.dispose()

    def _error(self, what, exc):
        reason = getattr(exc, "orig", None) or exc
        reason = str(reason).strip().splitlines()[0] if str(reason) else ""
        return base.StorageError(
            f"{mask_password(self.url)}: {what}: {type(exc).__name__}: "
            f"{reason}")

    def close(self):
        self.engine.dispose()

    # -- writing ---------------------------------------------------------

    def write_spans(self, partial_spans):
        merged = spans_mod.merge_by_trace_id(partial_spans)
        if not merged:
            return
        by_trace = {}
        for span in merged:
            by_trace.setdefault(span.base_id, []).append(span)
        rows = [self._span_rows.row(s) for s in merged]
        # A batch costs the same few statements however many traces it
        # touches: each one below handles all of them at once.
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    _plan_with(conn, POSTGRESQL_WRITE_SETTINGS)
                    summaries = self._summary_rows.lock(conn,
                                                        sorted(by_trace))
                    # Spans stored already (the other half came before,
                    # or this is a redelivery) do not count again.
                    new = self._span_rows.upsert(conn, rows)
                    self._write_summaries(conn, summaries, by_trace, new)
                return
            except sa_exc.DBAPIError as exc:
                # InnoDB's gap locks can deadlock concurrent upserts of
                # unrelated rows; the transaction is safe to run again.
                if not _is_deadlock(exc) or attempt == DEADLOCK_ATTEMPTS:
                    raise self._error("write failed", exc) from None
                time.sleep(0.01 * attempt)
            except sa_exc.SQLAlchemyError as exc:
                raise self._error("write failed", exc) from None

    def _write_summaries(self, conn, summaries, by_trace, new):
        """Fold each trace's spans of this batch into its summary."""
        roots = self._roots(conn, summaries, by_trace, new)
        moment = self._summary_rows.time
        rows = []
        for base_id, group in by_trace.items():
            old = summaries[base_id]
            # A trace runs from the earliest moment any of its events
            # tells to the latest, whatever the order they come in.
            started_at = _earliest(old.started_at,
                                   min(s.first_seen for s in group))
            finished_at = _latest(old.finished_at,
                                  max(s.last_seen for s in group))
            rows.append((  # in SUMMARY_COLUMNS order
                base_id, moment(started_at), moment(finished_at),
                _ms(started_at, finished_at),
                old.span_count + sum(s.trace_id in new for s in group),
                _join({*_split(old.services),
                       *(s.service for s in group if s.service)}),
                _join({*_split(old.projects),
                       *(s.project for s in group if s.project)}),
                bool(old.error) or any(s.error for s in group),
                roots.get(base_id, old.root_name)))
        self._summary_rows.write(conn, rows)

    @staticmethod
    def _roots(conn, summaries, by_trace, new):
        """{base_id: name of its earliest-started top-level span}, for the
        traces where this batch brings a top-level span."""
        best = {}
        stored = []
        for base_id, group in by_trace.items():
            top = [s for s in group if s.parent_id == base_id]
            if not top:
                continue
            if summaries[base_id].root_name is None:
                # No top-level span was stored before (it would have
                # named the root): this batch has them all.
                best[base_id] = min((s.started_at or datetime.datetime.max,
                                     s.name) for s in top)
            elif any(s.started_at is not None or s.trace_id in new
                     for s in top):
                stored.append(base_id)
            # Else the batch brings only stops of top-level spans stored,
            # and weighed, before: the root stays.
        s = spans_table.c
        for chunk in _chunks(stored):
            # The spans stored before count too: read again.
            for base_id, name, started_at in conn.execute(
                    sa.select(s.base_id, s.name, s.started_at).where(
                        s.base_id.in_(chunk), s.parent_id == s.base_id)):
                candidate = (started_at or datetime.datetime.max, name)
                if base_id not in best or candidate < best[base_id]:
                    best[base_id] = candidate
        return {base_id: name for base_id, (_, name) in best.items()}

    def write_heartbeat(self, heartbeat):
        table = workers_table
        if self.dialect in ("postgresql", "sqlite"):
            module = postgresql if self.dialect == "postgresql" else sqlite
            stmt = module.insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=["worker"],
                set_={c.name: stmt.excluded[c.name] for c in table.columns})
        else:
            stmt = mysql.insert(table)
            stmt = stmt.on_duplicate_key_update(
                {c.name: stmt.inserted[c.name] for c in table.columns})
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, dataclasses.asdict(heartbeat))
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("heartbeat write failed", exc) from None

    # -- reading ---------------------------------------------------------

    def get_spans(self, base_id):
        try:
            with self.engine.connect() as conn:
                rows = self._span_reads.rows(conn, base_id)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        return self._span_reads.spans(rows)

    def get_span(self, trace_id):
        if not isinstance(trace_id, str):
            return None
        try:
            with self.engine.connect() as conn:
                rows = self._span_reads.span_rows(conn, trace_id)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        found = self._span_reads.spans(rows)
        return found[0] if found else None

    def get_start_times(self, trace_ids):
        s = spans_table.c
        found = {}
        try:
            with self.engine.connect() as conn:
                for start in range(0, len(trace_ids), 500):  # bind limits
                    found.update(conn.execute(
                        sa.select(s.trace_id, s.started_at).where(
                            s.trace_id.in_(trace_ids[start:start + 500]),
                            s.started_at.is_not(None))).all())
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        return found

    def get_trace(self, base_id):
        try:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(traces_table).where(
                    traces_table.c.base_id == base_id,
                    traces_table.c.span_count > 0)).first()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        return _row_summary(row) if row else None

    def list_traces(self, trace_filter=None, limit=20):
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(self.list_query(trace_filter,
                                                    limit)).all()
                return self._summaries(conn, rows)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None

    @staticmethod
    def _summaries(conn, rows):
        """TraceSummary of each summary row, incomplete read from the
        spans of these traces only, through the base_id index."""
        incomplete = set()
        s = spans_table.c
        base_ids = [row.base_id for row in rows]
        if base_ids:
            _plan_with(conn, POSTGRESQL_BY_TRACE_SETTINGS)
        for start in range(0, len(base_ids), 500):
            incomplete.update(conn.execute(
                sa.select(s.base_id).distinct().where(
                    s.base_id.in_(base_ids[start:start + 500]),
                    sa.or_(s.started_at.is_(None),
                           s.finished_at.is_(None)))).scalars())
        return [_row_summary(row, row.base_id in incomplete) for row in rows]

    def list_query(self, trace_filter=None, limit=20):
        """The SELECT list_traces() runs (benchmarks EXPLAIN it)."""
        f = trace_filter or base.TraceFilter()
        t = traces_table.c
        query = sa.select(traces_table).where(t.span_count > 0)
        if f.service is not None:
            query = query.where(t.services.contains(f"|{f.service}|",
                                                    autoescape=True))
        if f.project is not None:
            query = query.where(t.projects.contains(f"|{f.project}|",
                                                    autoescape=True))
        if f.name is not None:
            query = query.where(t.root_name == f.name)
        if f.since is not None:
            query = query.where(t.started_at >= f.since)
        if f.until is not None:
            query = query.where(t.started_at < f.until)
        if f.errors_only:
            query = query.where(t.error.is_(True))
        if f.min_duration_ms is not None:
            query = query.where(t.duration_ms >= f.min_duration_ms)
        if f.max_duration_ms is not None:
            query = query.where(t.duration_ms <= f.max_duration_ms)
        return query.order_by(t.started_at.desc(), t.base_id).limit(limit)

    def stats(self):
        t = traces_table.c
        s = spans_table.c
        try:
            with self.engine.connect() as conn:
                totals = conn.execute(sa.select(
                    sa.func.count(), sa.func.coalesce(sa.func.sum(
                        t.span_count), 0),
                    sa.func.coalesce(sa.func.sum(
                        sa.case((t.error.is_(True), 1), else_=0)), 0),
                    sa.func.min(t.started_at), sa.func.max(t.finished_at))
                    .where(t.span_count > 0)).one()
                per_service = conn.execute(
                    sa.select(s.service, sa.func.count())
                    .group_by(s.service)).all()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        return {"traces": totals[0], "spans": int(totals[1]),
                "error_traces": totals[2], "first_event": totals[3],
                "last_event": totals[4],
                "spans_per_service": {service or "?": count
                                      for service, count in per_service}}

    def span_latency(self, service, name=None, project=None, since=None,
                     until=None):
        s = spans_table.c
        conditions = [s.service == service, s.started_at.is_not(None),
                      s.finished_at.is_not(None)]
        for column, value in ((s.name, name), (s.project, project)):
            if value is not None:
                conditions.append(column == value)
        if since is not None:
            conditions.append(s.started_at >= since)
        if until is not None:
            conditions.append(s.started_at < until)
        if self.dialect == "postgresql":
            query = self._latency_percentile_cont(conditions)
        else:
            query = self._latency_window(conditions)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        # The mean from the exact sum: MySQL's AVG keeps 4 decimals.
        return base.slowest_first(
            base.SpanLatency(span_name, count, float(total) / count / 1000,
                             *(float(v) / 1000 for v in values))
            for span_name, count, total, *values in rows)

    def _duration_us(self):
        return duration_us(self.dialect)

    def _latency_percentile_cont(self, conditions):
        """PostgreSQL: its ordered-set aggregate, per name in one pass."""
        s = spans_table.c
        duration = self._duration_us()
        return (sa.select(
            s.name, sa.func.count(), sa.func.sum(duration),
            *(sa.func.percentile_cont(p).within_group(duration)
              for p in base.PERCENTILES),
            sa.func.max(duration))
            .where(*conditions).group_by(s.name))

    def _latency_window(self, conditions):
        """SQLite and MySQL/MariaDB have no percentile aggregate that all
        their versions share, but window functions (SQLite 3.25, MySQL 8,
        MariaDB 10.2): rank each duration within its name, then keep the
        one or two rows around each percentile, weighted by how close
        they are (linear interpolation). Only durations leave the table.
        """
        s = spans_table.c
        duration = self._duration_us()
        ranked = sa.select(
            s.name, duration.label("us"),
            sa.func.row_number().over(partition_by=s.name,
                                      order_by=duration).label("nth"),
            sa.func.count().over(partition_by=s.name).label("n"),
        ).where(*conditions).subquery()
        r = ranked.c

        def percentile(p):
            # how far this row (0-based) is from the percentile's position
            distance = sa.func.abs(r.nth - 1 - (r.n - 1) * p)
            return sa.func.sum(sa.case((distance < 1, r.us * (1 - distance)),
                                       else_=0))

        return (sa.select(r.name, sa.func.count(), sa.func.sum(r.us),
                          *(percentile(p) for p in base.PERCENTILES),
                          sa.func.max(r.us))
                .group_by(r.name))

    def span_labels(self):
        s = spans_table.c
        try:
            with self.engine.connect() as conn:
                labels = [(project, service)
                          for service in _distinct(conn, s.service, [])
                          for project in _distinct(
                              conn, s.project, [_equals(s.service, service)])]
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        return sorted(labels, key=base.label_order)

    def span_names(self, label):
        s = spans_table.c
        project, service = label
        if not base.all_text(project, service):
            return []
        try:
            with self.engine.connect() as conn:
                return _distinct(conn, s.name, [_equals(s.service, service),
                                                _equals(s.project, project)])
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None

    def newest_spans(self, search):
        project, service = search.label
        if not base.all_text(project, service, search.name):
            return
        try:
            with self.engine.begin() as conn:
                _plan_with(conn, POSTGRESQL_SEARCH_SETTINGS)
                rows = conn.execution_options(
                    stream_results=True, yield_per=200).execute(
                        newest_spans_query(search, self.dialect))
                yield from rows
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None

    def service_links(self, since, until):
        query = service_links_query(since, until)
        try:
            with self.engine.begin() as conn:
                _plan_with(conn, POSTGRESQL_BY_TRACE_SETTINGS)
                rows = conn.execute(query).all()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        return sorted(
            (base.ServiceLink((pp, ps), (cp, cs), calls, int(errors))
             for pp, ps, cp, cs, calls, errors in rows),
            key=lambda link: (base.label_order(link.parent),
                              base.label_order(link.child)))

    def get_heartbeats(self):
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(workers_table).order_by(
                    workers_table.c.worker)).all()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None
        return [base.Heartbeat(**row._mapping) for row in rows]

    def count_older_than(self, older_than):
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).where(
                    _older_than(older_than))).scalar_one()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("read failed", exc) from None

    def purge(self, older_than):
        t = traces_table.c
        old = sa.select(t.base_id).where(_older_than(older_than))
        try:
            with self.engine.begin() as conn:
                base_ids = conn.execute(old).scalars().all()
                for start in range(0, len(base_ids), 500):
                    chunk = base_ids[start:start + 500]
                    conn.execute(spans_table.delete().where(
                        spans_table.c.base_id.in_(chunk)))
                    conn.execute(traces_table.delete().where(
                        t.base_id.in_(chunk)))
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("purge failed", exc) from None
        return len(base_ids)


# Columns added since a table was first made; create_all() adds tables only.
ADDED_COLUMNS = [(workers_table, workers_table.c.operations)]


def _plan_with(conn, settings):
    """Give this transaction those PostgreSQL planner settings (other
    databases have none to take)."""
    if conn.dialect.name == "postgresql":
        for setting in settings:
            conn.exec_driver_sql(setting)


def _lock_schema(conn):
    """On PostgreSQL, wait for any other process preparing the schema in
    its own transaction: workers starting together on a new database
    would otherwise race to create the same tables, and all but one fail
    (and retry) on a duplicate catalog entry. Released at commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
            SCHEMA_LOCK_KEY)))


def _add_missing_columns(conn):
    inspector = sa.inspect(conn)
    for table, column in ADDED_COLUMNS:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        if column.name not in present:
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN "
                                 f"{column.name} {kind}")


def duration_us(dialect):
    """A span's duration in microseconds, exact in every dialect."""
    s = spans_table.c
    if dialect == "postgresql":
        return sa.extract("epoch", s.finished_at - s.started_at) * 10**6
    if dialect == "sqlite":
        return _sqlite_us(s.finished_at) - _sqlite_us(s.started_at)
    return sa.func.timestampdiff(sa.text("MICROSECOND"), s.started_at,
                                 s.finished_at)


def service_links_query(since, until):
    """The SELECT service_links() runs (benchmarks EXPLAIN it): the spans
    of the traces started in the window, joined to their parent span."""
    t = traces_table.c
    child = spans_table.alias("child")
    parent = spans_table.alias("parent")
    c, p = child.c, parent.c
    different = sa.or_(sa.not_(_same_value(c.service, p.service)),
                       sa.not_(_same_value(c.project, p.project)))
    return (
        sa.select(p.project, p.service, c.project, c.service,
                  sa.func.count(),
                  sa.func.sum(sa.case((c.error_type.is_not(None), 1),
                                      else_=0)))
        .select_from(traces_table)
        .join(child, c.base_id == t.base_id)
        .join(parent, p.trace_id == c.parent_id)
        .where(t.started_at >= since, t.started_at <= until, different)
        .group_by(p.project, p.service, c.project, c.service))


def newest_spans_query(search, dialect):
    """The SELECT newest_spans() streams (benchmarks EXPLAIN it).

    Durations are compared in the database, so that a search for a rare
    duration does not carry every span of the service to the caller.
    """
    s = spans_table.c
    project, service = search.label
    query = sa.select(s.base_id, s.started_at, s.finished_at).where(
        _equals(s.service, service), _equals(s.project, project),
        s.started_at.is_not(None))
    if search.name is not None:
        query = query.where(s.name == search.name)
    if search.since is not None:
        query = query.where(s.started_at >= search.since)
    if search.until is not None:
        query = query.where(s.started_at <= search.until)
    if search.min_duration_us is not None:
        query = query.where(duration_us(dialect) >= search.min_duration_us)
    if search.max_duration_us is not None:
        query = query.where(duration_us(dialect) <= search.max_duration_us)
    return query.order_by(s.started_at.desc())


def _distinct(conn, column, conditions):
    """The distinct values of an indexed column where conditions hold,
    None first: one index lookup per value (a loose index scan) instead of
    reading every row."""
    values = []
    if conn.execute(sa.select(sa.literal(1)).where(
            *conditions, column.is_(None)).limit(1)).first():
        values.append(None)
    value = conn.execute(sa.select(sa.func.min(column)).where(
        *conditions)).scalar()
    while value is not None:
        values.append(value)
        value = conn.execute(sa.select(sa.func.min(column)).where(
            *conditions, column > value)).scalar()
    return values


def _equals(column, value):
    return column.is_(None) if value is None else column == value


def _same_value(a, b):
    """a = b where NULL equals NULL (IS NOT DISTINCT FROM)."""
    return sa.or_(a == b, sa.and_(a.is_(None), b.is_(None)))


def _older_than(moment):
    """The traces purge() removes: last event before moment."""
    return traces_table.c.finished_at < moment


def _create_engine(url, create=True):
    # orjson: payloads are encoded on every write and decoded on every
    # read, several times faster than with the json module.
    kwargs = {"json_deserializer": orjson.loads,
              "json_serializer": lambda value: orjson.dumps(value).decode()}
    # A server may have dropped a pooled connection: each checkout (each
    # batch a worker writes) tries it first. A SQLite file cannot.
    kwargs["pool_pre_ping"] = not url.startswith("sqlite")
    try:
        if (url.startswith("sqlite")
                and "timeout" not in sa.engine.make_url(url).query):
            # Several workers write the same file: wait for the lock
            # (sqlite:///FILE?timeout=SECONDS says how long).
            kwargs["connect_args"] = {"timeout": 60}
        engine = sa.create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise base.ConfigurationError(
            f"{mask_password(url)}: the Python module {exc.name!r} this URL "
            f"needs is not installed") from None
    except sa_exc.ArgumentError as exc:
        raise base.ConfigurationError(
            f"{mask_password(url)}: invalid URL: {exc}") from None
    if engine.dialect.name == "sqlite" and create:
        # The collector's settings: WAL stays with the file once set, and a
        # reader changes no file, not even one that holds no store.
        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            # A batch dirties pages all over the span indexes (trace ids
            # are random): checkpointing every 40 MB of WAL instead of 4
            # copies each hot page back a tenth as often (a fifth of a
            # short trace's write).
            dbapi_conn.execute("PRAGMA wal_autocheckpoint=10000")
    return engine


def _chunks(items, size=500):
    """items in slices a statement can take: a statement may hold only so
    many parameters (32,766 in SQLite, 65,535 in PostgreSQL), and
    batch_size has no maximum."""
    return [items[n:n + size] for n in range(0, len(items), size)]


def _pg_type(column):
    """The PostgreSQL type a column's array is sent as (text is assigned
    to varchar, json to an older store's jsonb)."""
    if isinstance(column.type, sa.DateTime):
        return "timestamp"
    return "json" if isinstance(column.type, sa.JSON) else "text"


def _pg_array(values):
    """PostgreSQL's text form of a one-dimensional array of these values
    (None, str, or naive datetime, whose str() the server reads)."""
    return "{" + ",".join(
        "NULL" if value is None else
        '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values) + "}"


def _sqlite_us(column):
    """Microseconds since the UNIX epoch of a time SQLAlchemy stores as
    'YYYY-MM-DD HH:MM:SS.ffffff': SQLite's date functions keep only
    milliseconds, so the microseconds are read from the text."""
    seconds = sa.func.strftime("%s", sa.func.substr(column, 1, 19))
    micros = sa.func.substr(column, 21, 6)
    return (sa.cast(seconds, sa.Integer) * 10**6
            + sa.cast(micros, sa.Integer))


def _sqlite_time(moment):
    return None if moment is None else moment.isoformat(" ", "microseconds")


def _sqlite_datetime(text):
    return None if text is None else datetime.datetime.fromisoformat(text)


def _same(value):
    return value


def _json(value):
    return None if value is None else orjson.dumps(value).decode()


def _parse_json(text):
    return None if text is None else orjson.loads(text)


def _row_summary(row, incomplete=None):
    return base.TraceSummary(
        base_id=row.base_id, started_at=row.started_at,
        finished_at=row.finished_at, span_count=row.span_count,
        services=_split(row.services), projects=_split(row.projects),
        error=bool(row.error), root_name=row.root_name,
        incomplete=incomplete)


def _text(value):
    return None if value is None else str(value)


# Errors that say the URL itself is wrong, whatever the retries: PostgreSQL
# refusing the role, password or database (SQLSTATE class 28, 3D000);
# MySQL denying access or not knowing the database.
REFUSAL_SQLSTATES = ("28000", "28P01", "3D000")
REFUSAL_MYSQL_CODES = {1044, 1045, 1049, 1698}
# libpq reports a refusal at connection time without a SQLSTATE.
REFUSAL_TEXTS = ("password authentication failed", "does not exist",
                 "no pg_hba.conf entry")


def _is_refusal(exc):
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    code = (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            or (orig.args[0] if orig.args else None))
    if code in REFUSAL_SQLSTATES or code in REFUSAL_MYSQL_CODES:
        return True
    text = str(orig)
    return "FATAL" in text and any(t in text for t in REFUSAL_TEXTS)


def _check_sqlite_path(url, path):
    """A SQLite file must be creatable: its directory must exist."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise base.ConfigurationError(
            f"{mask_password(url)}: directory {directory} does not exist")
    if not os.access(path if os.path.exists(path) else directory,
                     os.W_OK):
        raise base.ConfigurationError(
            f"{mask_password(url)}: {path} is not writable")


def _is_deadlock(exc):
    orig = exc.orig
    code = (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            or (orig.args[0] if orig.args else None))
    return code in DEADLOCK_CODES


def _earliest(a, b):
    return b if a is None or (b is not None and b < a) else a


def _latest(a, b):
    return b if a is None or (b is not None and b > a) else a


def _ms(first, last):
    if first is None or last is None:
        return None
    return (last - first).total_seconds() * 1000.0


def _join(values):
    return "|" + "".join(f"{v}|" for v in sorted(values))


def _split(joined):
    return [v for v in joined.split("|") if v]
