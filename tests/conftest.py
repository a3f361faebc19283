import os
import uuid

import psycopg2
import pytest
import sqlalchemy as sa

# tools/run-tests.sh creates this role (CREATEDB, password login), so the
# suite runs the same under trust and password authentication.
POSTGRES_ADMIN_DSN = os.environ.get(
    "OSPROF_COLLECTOR_TEST_POSTGRES_DSN",
    "host=127.0.0.1 port=5432 user=osprof password=osprof dbname=postgres")
POSTGRES_URL = os.environ.get(
    "OSPROF_COLLECTOR_TEST_POSTGRES_URL",
    "postgresql+psycopg2://osprof:osprof@127.0.0.1:5432/{dbname}")


def _postgres_admin(sql):
    conn = psycopg2.connect(POSTGRES_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def postgres_url():
    """A PostgreSQL database of this test's own, dropped afterwards."""
    dbname = f"osprof_test_{uuid.uuid4().hex[:12]}"
    _postgres_admin(f"CREATE DATABASE {dbname}")
    yield POSTGRES_URL.format(dbname=dbname)
    _postgres_admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


# tools/run-tests.sh creates this user, allowed to create osprof_test_*
# databases.
MYSQL_ADMIN = os.environ.get("OSPROF_COLLECTOR_TEST_MYSQL_ADMIN",
                             "osprof:osprof@127.0.0.1:3306")
MYSQL_URL = os.environ.get(
    "OSPROF_COLLECTOR_TEST_MYSQL_URL",
    "mysql+pymysql://osprof:osprof@127.0.0.1:3306/{dbname}")


@pytest.fixture
def mysql_url():
    """A MySQL/MariaDB database of this test's own, dropped afterwards."""
    dbname = f"osprof_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"mysql+pymysql://{MYSQL_ADMIN}/")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {dbname} CHARACTER SET utf8mb4")
    yield MYSQL_URL.format(dbname=dbname)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {dbname}")
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/osprof.db"
