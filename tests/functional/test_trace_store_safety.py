"""osprof-trace never makes a store, and purges only what it is told to."""

import os
import pty
import select
import subprocess
import time

import pytest
import sqlalchemy as sa

from osprof_collector import storage
from tests import payloads
from tests.functional.conftest import BIN_DIR
from tests.functional.test_trace_cli import at
from tests.functional.test_trace_cli import write

TRACE = os.path.join(BIN_DIR, "osprof-trace")
ANY_ID = "4c9a3d6e-2f4b-4a44-9c4e-0f3e3a1c2b7d"
# Every command, each of which needs an existing store.
COMMANDS = [["list"], ["show", ANY_ID], ["stats"], ["status"],
            ["latency", "--service", "api"], ["analyze", ANY_ID],
            ["compare", ANY_ID, ANY_ID], ["purge", "--older-than", "1d",
                                          "--yes"],
            ["purge", "--older-than", "1d", "--dry-run"]]


def trace(url, *args):
    result = subprocess.run([TRACE, "--connection", url, *args],
                            capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_mistyped_sqlite_path_creates_no_file(tmp_path, command):
    path = tmp_path / "typo.db"
    url = f"sqlite:///{path}"
    assert trace(url, *command) == (
        1, "", f"no osprof-collector store at {url}\n")
    assert not path.exists()


def test_an_sqlite_file_that_is_no_store_is_refused(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()  # as earlier versions left behind after a typo
    url = f"sqlite:///{path}"
    assert trace(url, "list") == (
        1, "", f"no osprof-collector store at {url}\n")
    assert path.stat().st_size == 0


def test_a_postgresql_database_without_a_store_gets_no_tables(postgres_url):
    masked = storage.mask_password(postgres_url)
    assert ":***@" in masked
    for command in COMMANDS:
        assert trace(postgres_url, *command) == (
            1, "", f"no osprof-collector store at {masked}\n"), command
    engine = sa.create_engine(postgres_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_a_store_the_collector_made_is_read(sqlite_url):
    storage.get_driver(sqlite_url).close()  # what the collector does
    code, out, err = trace(sqlite_url, "list", "-f", "json")
    assert (code, out, err) == (0, "[]\n", "")


@pytest.fixture
def old_and_new(sqlite_url):
    """A store with a trace 10 days old and one 5 minutes old."""
    store = storage.get_driver(sqlite_url)
    old_id, new_id = payloads.new_id(), payloads.new_id()
    write(store, payloads.call("wsgi", old_id, old_id, at(14400),
                               at(14400) + 10))
    write(store, payloads.call("wsgi", new_id, new_id, at(5), at(5) + 10))
    yield store, old_id, new_id
    store.close()


def test_purge_dry_run_counts_and_removes_nothing(sqlite_url, old_and_new):
    store, old_id, _new_id = old_and_new
    code, out, err = trace(sqlite_url, "purge", "--older-than", "1d",
                           "--dry-run")
    assert (code, err) == (0, "")
    assert out.startswith("would remove 1 trace whose last event was before ")
    assert out.endswith(" (dry run: nothing removed)\n")
    assert store.get_trace(old_id) is not None
    code, out, _ = trace(sqlite_url, "purge", "--older-than", "30d",
                         "--dry-run")
    assert (code, out.split()[:3]) == (0, ["would", "remove", "0"])


def test_purge_without_a_terminal_needs_yes(sqlite_url, old_and_new):
    store, old_id, new_id = old_and_new
    code, out, err = trace(sqlite_url, "purge", "--older-than", "1d")
    assert (code, out) == (2, "")
    assert err == ("osprof-trace purge: error: no terminal to confirm on: "
                   "add --yes to remove, or --dry-run to count\n")
    assert store.get_trace(old_id) is not None
    code, out, err = trace(sqlite_url, "purge", "--older-than", "1d", "--yes")
    assert (code, err) == (0, "")
    assert out.startswith("removed 1 trace whose last event was before ")
    assert store.get_trace(old_id) is None
    assert store.get_trace(new_id) is not None


def on_a_terminal(url, answer, *args):
    """Run osprof-trace on a pseudo-terminal, answer its question; return
    (exit status, everything the terminal showed)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([TRACE, "--connection", url, *args],
                               stdin=terminal, stdout=terminal,
                               stderr=terminal, close_fds=True)
    os.close(terminal)
    shown = b""
    answered = False
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, shown
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the process closed the terminal
                chunk = b""
            if not chunk:
                break
            shown += chunk
        if not answered and shown.endswith(b"[y/N] "):
            os.write(controller, answer)
            answered = True
    os.close(controller)
    return process.wait(timeout=60), shown.decode().replace("\r\n", "\n")


def test_purge_asks_on_a_terminal_and_no_keeps_everything(sqlite_url,
                                                          old_and_new):
    store, old_id, _new_id = old_and_new
    code, shown = on_a_terminal(sqlite_url, b"n\n", "purge",
                                "--older-than", "1d")
    question, result = shown.splitlines()
    assert question.startswith("remove 1 trace whose last event was before ")
    assert question.endswith("? [y/N] n")  # the terminal echoes the answer
    assert (code, result) == (1, "nothing removed")
    assert store.get_trace(old_id) is not None
    code, shown = on_a_terminal(sqlite_url, b"\n", "purge", "--older-than",
                                "1d")  # the default is no
    assert (code, shown.splitlines()[-1]) == (1, "nothing removed")
    assert store.get_trace(old_id) is not None


def test_purge_asks_on_a_terminal_and_yes_removes(sqlite_url, old_and_new):
    store, old_id, new_id = old_and_new
    code, shown = on_a_terminal(sqlite_url, b"yes\n", "purge",
                                "--older-than", "1d")
    question, result = shown.splitlines()[0], shown.splitlines()[-1]
    assert question.startswith("remove 1 trace whose last event was before ")
    assert code == 0
    assert result.startswith("removed 1 trace whose last event was before ")
    assert store.get_trace(old_id) is None
    assert store.get_trace(new_id) is not None
    # nothing old enough: nothing to ask
    code, shown = on_a_terminal(sqlite_url, b"", "purge", "--older-than",
                                "1d")
    assert code == 0 and shown.startswith("removed 0 traces whose last ")
