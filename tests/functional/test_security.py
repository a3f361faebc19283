"""Secrets stay out of logs and errors; CLI input never becomes a query."""

import os
import subprocess
import uuid

import pytest

from tests.functional.conftest import BIN_DIR
from tests.functional.conftest import produce
from tests.functional.conftest import rabbitmqctl
from tests.functional.conftest import wait_until_stored
from tests.functional.test_trace_cli import cli  # noqa: F401 (fixture)
from tests.functional.test_trace_cli import dataset


def as_postgres(sql):
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q",
                    "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   cwd="/", stdout=subprocess.DEVNULL)


@pytest.fixture
def secrets(rabbit_url):
    """A RabbitMQ user and a PostgreSQL role with passwords of their own."""
    tag = uuid.uuid4().hex[:10]
    vhost = rabbit_url.rsplit("/", 1)[1]
    user, rabbit_pw = f"osprof_{tag}", f"RabbitPw{tag}"
    rabbitmqctl("add_user", user, rabbit_pw)
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    role, pg_pw, db = f"osprof_{tag}", f"PgPw{tag}", f"osprof_sec_{tag}"
    as_postgres(f"CREATE ROLE {role} LOGIN PASSWORD '{pg_pw}'")
    as_postgres(f"CREATE DATABASE {db} OWNER {role}")
    yield {"transport_url": f"rabbit://{user}:{rabbit_pw}@127.0.0.1:5672/"
                            f"{vhost}",
           "store_url": f"postgresql+psycopg2://{role}:{pg_pw}@127.0.0.1:5432"
                        f"/{db}",
           "unreachable_store_url": f"postgresql+psycopg2://{role}:"
                                    f"Wrong{tag}@127.0.0.1:5433/{db}",
           "wrong_transport_url": f"rabbit://{user}:Wrong{tag}@127.0.0.1:"
                                  f"5672/{vhost}",
           "passwords": [rabbit_pw, pg_pw, f"Wrong{tag}"]}
    as_postgres(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    as_postgres(f"DROP ROLE IF EXISTS {role}")
    rabbitmqctl("delete_user", user)


def test_passwords_never_reach_a_log_line_or_an_error(secrets,
                                                      collector_factory):
    debug = {"debug": True}
    # The store cannot be reached: retried and logged, masked.
    refused = collector_factory(secrets["transport_url"],
                                secrets["unreachable_store_url"],
                                default_options=debug).start(wait=False)
    refused.wait_for_log("unreachable", 2)
    assert refused.stop() == 0
    # The broker refuses the password.
    no_broker = collector_factory(secrets["wrong_transport_url"],
                                  secrets["store_url"],
                                  default_options=debug).start(wait=False)
    assert no_broker.wait_exit(60) == 78  # a refusal stops the daemon
    assert "ACCESS_REFUSED" in no_broker.log()
    # Everything right, in debug mode.
    working = collector_factory(secrets["transport_url"],
                                secrets["store_url"],
                                default_options=debug).start()
    traces = produce(secrets["transport_url"], ("nova", "api", "nested", 3))
    wait_until_stored(secrets["store_url"], traces)
    assert working.stop() == 0
    trace_cli = subprocess.run([os.path.join(BIN_DIR, "osprof-trace"),
                                "--connection",
                                secrets["unreachable_store_url"], "list"],
                               capture_output=True, text=True)
    assert trace_cli.returncode == 1 and "***" in trace_cli.stderr
    assert "***" in refused.log()
    assert "DEBUG" in working.log()  # debug logging was really on
    for text in (refused.log(), refused.stderr(), no_broker.log(),
                 no_broker.stderr(), working.log(), working.stderr(),
                 trace_cli.stderr, trace_cli.stdout):
        for password in secrets["passwords"]:
            assert password not in text


HOSTILE = ["' OR '1'='1", "'; DROP TABLE osprof_spans; --", "%", "_", "*",
           ".*", '{"$ne": null}', '{"$gt": ""}', "$where", "a\tb",
           "nova' --", "\\", "|", "||", "null", "true"]


def test_cli_input_never_becomes_a_query(cli):  # noqa: F811
    run, store = cli
    ids = dataset(store)
    for text in HOSTILE:
        for option in ("--service", "--project", "--name"):
            code, out, err = run("list", option, text, "-f", "value")
            assert (code, out) == (0, ""), (option, text, err)
        code, out, err = run("show", text)
        assert code == 1 and out == "" and "invalid trace id" in err
    # only the asked trace comes back
    code, out, _ = run("show", ids["quick"], "--format", "json")
    assert code == 0 and ids["quick"] in out and ids["error"] not in out
    assert run("list", "-f", "value", "-c", "base_id")[1].split() == [
        ids["quick"], ids["error"], ids["api"], ids["old"]]
