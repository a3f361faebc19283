"""A fresh, throw-away store per measurement (SQLite file or PostgreSQL
database of the test role that tools/run-tests.sh creates)."""

import shutil
import tempfile
import uuid

import psycopg2

PG_ADMIN = "host=127.0.0.1 user=osprof password=osprof dbname=postgres"
PG_URL = "postgresql+psycopg2://osprof:osprof@127.0.0.1:5432/{}"


class Stores:

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="osprof-bench-")
        self.databases = []

    def fresh(self, kind):
        """The URL of a new, empty store of that kind."""
        name = f"osprof_bench_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            return f"sqlite:///{self.workdir}/{name}.db"
        _postgres(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return PG_URL.format(name)

    def cleanup(self):
        for name in self.databases:
            _postgres(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        shutil.rmtree(self.workdir, ignore_errors=True)


def _postgres(sql):
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()
