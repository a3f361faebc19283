"""osprof-trace through its installed entry point, on every store."""

import datetime
import json
import logging
import os
import statistics
import subprocess

import pytest

from osprof_collector import events
from osprof_collector import spans
from osprof_collector import storage
from osprof_collector.cmd import trace as trace_cmd
from osprof_collector.storage import base
from tests import osprofiler_reference as reference
from tests import payloads
from tests.functional.conftest import BIN_DIR
from tests.unit.test_query import a_request
from tests.unit.test_query import ten_thousand_spans

# The moment the datasets are written relative to: set anew by the cli
# fixture for every test, so that ages such as --since 1h hold however long
# the suite ran before.
NOW = datetime.datetime.utcnow().replace(microsecond=0)


def at(minutes_ago):
    """Milliseconds after payloads.EPOCH for a moment minutes_ago."""
    moment = NOW - datetime.timedelta(minutes=minutes_ago)
    return (moment - payloads.EPOCH) / datetime.timedelta(milliseconds=1)


def write(store, raw):
    store.write_spans([spans.from_event(events.parse(p)) for p in raw])


def dataset(store):
    """Four traces of known shape; returns their base_ids by role."""
    ids = {}
    ids["api"] = payloads.new_id()  # 2 h ago, 120 ms, nova/api
    write(store, payloads.call("wsgi", ids["api"], ids["api"], at(120),
                               at(120) + 120, service="api", project="nova"))
    ids["error"] = payloads.new_id()  # 30 min ago, cinder, fails
    root = payloads.call("wsgi", ids["error"], ids["error"], at(30),
                         at(30) + 40, service="volume", project="cinder")
    write(store, root + payloads.call(
        "cinder-volume", ids["error"], root[0]["trace_id"], at(30) + 5,
        at(30) + 30, stop_info={"etype": "VolumeError", "message": "busy"},
        service="volume", project="cinder"))
    ids["quick"] = payloads.new_id()  # 5 min ago, 2 ms, scheduler rpc
    write(store, payloads.call("rpc", ids["quick"], ids["quick"], at(5),
                               at(5) + 2, service="scheduler",
                               project="nova"))
    ids["old"] = payloads.new_id()  # 10 days ago
    write(store, payloads.call("wsgi", ids["old"], ids["old"], at(14400),
                               at(14400) + 10, service="api",
                               project="nova"))
    return ids


class Runner:
    """Runs osprof-trace: a real process for SQL stores, in-process for
    mongomock (whose data lives only in this process's memory)."""

    def __init__(self, url=None, store=None, capsys=None):
        self.url, self.store, self.capsys = url, store, capsys

    def __call__(self, *args, env=None):
        if self.url is not None:
            result = subprocess.run(
                [os.path.join(BIN_DIR, "osprof-trace"), "--connection",
                 self.url, *args], capture_output=True, text=True,
                timeout=120, env=env, stdin=subprocess.DEVNULL)
            return result.returncode, result.stdout, result.stderr
        app = trace_cmd.TraceApp()
        app._store = self.store
        self.store.close = lambda: None  # shared by the test, keep it open
        handlers = logging.root.handlers[:]  # cliff adds one per run
        try:
            code = app.run(list(args))
        except SystemExit as exc:
            code = exc.code
        finally:
            logging.root.handlers[:] = handlers
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture(params=["sqlite", "postgresql", "mongomock"])
def cli(request, capsys):
    global NOW
    NOW = datetime.datetime.utcnow().replace(microsecond=0)
    if request.param == "mongomock":
        from tests import mongomock_adapter
        store = mongomock_adapter.driver_factory()()
        yield Runner(store=store, capsys=capsys), store
        return
    url = request.getfixturevalue({"sqlite": "sqlite_url",
                                   "postgresql": "postgres_url"}
                                  [request.param])
    store = storage.get_driver(url)
    yield Runner(url=url), store
    store.close()


def test_show_tree_is_the_default(cli):
    run, store = cli
    ids = dataset(store)
    code, out, err = run("show", ids["error"])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"trace {ids['error']}: 2 spans, 40 ms")
    assert "1 error, 0 open, 0 start missing, 0 orphans" in lines[0]
    assert lines[1] == "└─ wsgi  volume@node-1  +0 ms  40 ms"
    assert lines[2] == ("   └─ cinder-volume  volume@node-1  +5 ms  25 ms  "
                        "[ERROR VolumeError: busy]")


def test_show_flags_open_spans_and_orphans(cli):
    run, store = cli
    base_id = payloads.new_id()
    root = payloads.call("wsgi", base_id, base_id, 0, 50)
    still_open = payloads.call("rpc", base_id, root[0]["trace_id"], 10,
                               20)[:1]  # its stop never came
    orphan = payloads.call("db", base_id, payloads.new_id(), 30, 35)
    write(store, root + still_open + orphan)
    code, out, err = run("show", base_id)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "3 spans, 50 ms" in lines[0]
    assert "1 open, 0 start missing, 1 orphan" in lines[0]
    assert lines[1:] == ["├─ wsgi  api@node-1  +0 ms  50 ms",
                         "│  └─ rpc  api@node-1  +10 ms  0 ms  [OPEN]",
                         "└─ db  api@node-1  +30 ms  5 ms  [ORPHAN]"]
    code, out, _ = run("show", base_id, "--format", "json")
    report = json.loads(out)
    assert (report["open_spans"], report["orphans"]) == (1, 1)
    wsgi, db = report["children"]
    assert (wsgi["open"], wsgi["orphan"]) == (False, False)
    assert (wsgi["children"][0]["open"], db["orphan"]) == (True, True)
    assert "exception" not in wsgi["children"][0]["info"]  # no stop yet


def test_show_every_format_and_out_file(cli, tmp_path):
    run, store = cli
    ids = dataset(store)
    for fmt in ("tree", "json", "html", "dot"):
        code, shown, _ = run("show", ids["error"], "--format", fmt)
        assert code == 0
        target = tmp_path / f"trace.{fmt}"
        code, out, err = run("show", ids["error"], "--format", fmt, "--out",
                             str(target))
        assert (code, out, err) == (0, "", "")
        assert target.read_text() == shown
    report = json.loads((tmp_path / "trace.json").read_text())
    assert report["children"][0]["children"][0]["info"]["name"] == \
        "cinder-volume"
    assert report["children"][0]["children"][0]["info"]["exception"] == \
        "VolumeError"
    assert (tmp_path / "trace.dot").read_text().startswith("digraph trace {")
    assert "<!DOCTYPE html>" in (tmp_path / "trace.html").read_text()


def test_show_json_is_osprofilers_report(cli):
    run, store = cli
    base_id, raw = reference.capture(lambda: a_request(True))
    write(store, raw)
    code, out, _ = run("show", base_id, "--format", "json")
    assert code == 0
    reference.assert_same_report(json.loads(out),
                                 reference.osprofiler_report(raw))


def test_show_errors_are_one_line(cli):
    run, store = cli
    dataset(store)
    unknown = payloads.new_id()
    assert run("show", unknown) == (1, "", f"trace {unknown} not found\n")
    for bad in ("nope", "' OR 1=1 --", '{"$ne": null}', unknown + "0"):
        code, out, err = run("show", bad)
        assert code == 1 and out == ""
        assert err.startswith(f"invalid trace id {bad!r}")
        assert err.count("\n") == 1
    code, out, err = run("show", unknown, "--format", "pdf")
    assert code == 2 and out == "" and err.count("\n") == 1
    code, out, err = run("show", unknown, "--out", "/nonexistent/dir/x")
    assert code == 1 and err == f"trace {unknown} not found\n"


def test_list_filters(cli):
    run, store = cli
    ids = dataset(store)

    def listed(*args):
        code, out, err = run("list", "-f", "json", *args)
        assert (code, err) == (0, "")
        return [row["base_id"] for row in json.loads(out)]

    newest_first = [ids["quick"], ids["error"], ids["api"], ids["old"]]
    assert listed() == newest_first
    assert listed("--limit", "2") == newest_first[:2]
    assert listed("--service", "volume") == [ids["error"]]
    assert listed("--service", "api") == [ids["api"], ids["old"]]
    assert listed("--project", "nova") == [ids["quick"], ids["api"],
                                           ids["old"]]
    assert listed("--name", "rpc") == [ids["quick"]]
    assert listed("--errors") == [ids["error"]]
    assert listed("--min-duration", "40") == [ids["error"], ids["api"]]
    assert listed("--since", "1h") == [ids["quick"], ids["error"]]
    assert listed("--since", "3h", "--until", "15m") == [ids["error"],
                                                         ids["api"]]
    since = (NOW - datetime.timedelta(days=1)).isoformat()
    assert listed("--since", since) == newest_first[:3]
    assert listed("--service", "%") == []


def test_list_formats(cli):
    run, store = cli
    ids = dataset(store)
    code, out, _ = run("list", "-f", "json", "--errors")
    [row] = json.loads(out)
    assert row["base_id"] == ids["error"]
    assert row["spans"] == 2 and row["duration_ms"] == 40
    assert row["services"] == ["volume"] and row["error"] is True
    started = datetime.datetime.fromisoformat(row["started_at"])
    assert abs(started - (NOW - datetime.timedelta(minutes=30))) < \
        datetime.timedelta(seconds=1)
    code, out, _ = run("list", "-f", "value", "-c", "base_id")
    assert out.split() == [ids["quick"], ids["error"], ids["api"], ids["old"]]
    code, out, _ = run("list")
    assert code == 0 and "| base_id" in out and ids["old"] in out


def test_list_bad_arguments_are_one_line(cli):
    run, _store = cli
    for args in (["--since", "yesterday"], ["--limit", "many"],
                 ["--min-duration", "slow"], ["--bogus"]):
        code, out, err = run("list", *args)
        assert code == 2 and out == "" and err.count("\n") == 1, args
    code, out, err = run("list", "--limit", "0")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "0 is not a whole number of at least 1" in err


def test_purge_and_stats(cli):
    run, store = cli
    ids = dataset(store)
    code, out, _ = run("stats", "-f", "json")
    totals = json.loads(out)
    assert totals["traces"] == 4 and totals["spans"] == 5
    assert totals["error_traces"] == 1
    assert totals["spans_per_service"] == {"api": 2, "scheduler": 1,
                                           "volume": 2}
    code, out, _ = run("purge", "--older-than", "1d", "--yes")
    assert code == 0 and out.startswith("removed 1 trace whose last event")
    assert run("show", ids["old"])[0] == 1
    assert run("show", ids["api"])[0] == 0
    code, out, err = run("purge", "--older-than", "soon")
    assert code == 2 and err.count("\n") == 1


def test_ten_thousand_span_trace(cli):
    run, store = cli
    base_id, raw = ten_thousand_spans()
    write(store, raw)
    code, out, _ = run("show", base_id, "--max-depth", "1")
    assert code == 0 and "9990 spans hidden" in out
    code, out, _ = run("show", base_id, "--format", "json")
    assert json.loads(out)["span_count"] == 10000


def heartbeat(worker, seconds_ago, received):
    updated = datetime.datetime.utcnow() - datetime.timedelta(
        seconds=seconds_ago)
    return base.Heartbeat(
        worker=worker, host=worker.split("/")[0], pid=1000 + received,
        started_at=updated - datetime.timedelta(hours=1), updated_at=updated,
        counts={"received": received, "spans_written": received // 2,
                "invalid": 0, "requeued": 0, "store_errors": 0},
        last_write=updated)


def test_status_without_any_heartbeat_is_one_line(cli):
    run, store = cli
    code, out, err = run("status")
    assert (code, out) == (1, "")
    assert err == (f"no collector heartbeat in "
                   f"{storage.mask_password(store.url)}\n")
    assert "osprof:osprof@" not in err


def test_status_ok_while_one_worker_is_recent(cli):
    run, store = cli
    store.write_heartbeat(heartbeat("node-1/0", 5, received=40))
    store.write_heartbeat(heartbeat("node-2/0", 600, received=10))
    code, out, err = run("status", "-f", "json")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [(r["worker"], r["state"], r["received"], r["spans_written"])
            for r in rows] == [("node-1/0", "ok", 40, 20),
                               ("node-2/0", "stale", 10, 5)]
    assert 5 <= rows[0]["heartbeat_age_s"] < 60
    code, out, err = run("status", "--stale-after", "2")
    assert code == 1 and "| node-1/0 |" in out and err.count("\n") == 1
    assert err.startswith("every collector heartbeat is stale")
    code, out, err = run("status", "--stale-after", "soon")
    assert code == 2 and out == "" and err.count("\n") == 1


def test_connection_from_environment_and_config_file(sqlite_url, tmp_path):
    store = storage.get_driver(sqlite_url)
    ids = dataset(store)
    store.close()
    trace = os.path.join(BIN_DIR, "osprof-trace")
    env = dict(os.environ, OSPROF_TRACE_CONNECTION=sqlite_url)
    result = subprocess.run([trace, "show", ids["quick"]], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "rpc" in result.stdout
    config = tmp_path / "collector.conf"
    config.write_text(f"[storage]\nconnection = {sqlite_url}\n")
    env.pop("OSPROF_TRACE_CONNECTION")
    result = subprocess.run([trace, "--config-file", str(config), "list",
                             "-f", "value", "-c", "base_id"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0 and ids["quick"] in result.stdout


def test_unreachable_store_is_one_line_with_the_password_masked():
    trace = os.path.join(BIN_DIR, "osprof-trace")
    result = subprocess.run(
        [trace, "--connection",
         "postgresql://osprof:hunter2@127.0.0.1:5433/none", "list"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "osprof:***@127.0.0.1:5433" in result.stderr
    assert "hunter2" not in result.stderr
    result = subprocess.run([trace, "--connection", "nosql://x", "list"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "installed drivers" in result.stderr


def test_with_no_store_named_the_default_is_said_with_how_to_choose(
        tmp_path):
    # No --connection, no $OSPROF_TRACE_CONNECTION, no configuration file
    # where oslo.config looks (~/ and /etc): the MongoDB default, which no
    # server answers on this machine.
    env = {k: v for k, v in os.environ.items() if k != "OSPROF_TRACE_"
           "CONNECTION"} | {"HOME": str(tmp_path)}
    assert not os.path.exists("/etc/osprof-collector/osprof-collector.conf")
    result = subprocess.run([os.path.join(BIN_DIR, "osprof-trace"), "list"],
                            capture_output=True, text=True, timeout=60,
                            env=env, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    [line] = result.stderr.splitlines()
    assert line.startswith("cannot use store: mongodb://localhost:27017/"
                           "osprofiler: ")
    assert line.endswith("(the default store; choose one with --connection "
                         "URL, $OSPROF_TRACE_CONNECTION or --config-file "
                         "FILE)")
    assert "Topology" not in line and len(line) < 300


def test_a_malformed_id_is_refused_before_the_store_is_opened():
    trace = os.path.join(BIN_DIR, "osprof-trace")
    unreachable = "postgresql://osprof:hunter2@127.0.0.1:5433/none"
    valid = payloads.new_id()
    for command in (["show", "nope"], ["analyze", "nope"],
                    ["compare", valid, "nope"]):
        result = subprocess.run([trace, "--connection", unreachable,
                                 *command],
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            "invalid trace id 'nope': expected a UUID such as "
            "4c9a3d6e-2f4b-4a44-9c4e-0f3e3a1c2b7d\n")


def test_no_command_is_an_error():
    result = subprocess.run([os.path.join(BIN_DIR, "osprof-trace")],
                            capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def latency_dataset(store):
    """api's db spans lasting 1..20 ms, the one of N ms started 5 N minutes
    ago; an api wsgi span of another project; spans that do not count."""
    for ms in range(1, 21):
        base_id = payloads.new_id()
        write(store, payloads.call("db", base_id, base_id, at(5 * ms),
                                   at(5 * ms) + ms, service="api"))
    base_id = payloads.new_id()
    write(store, payloads.call("wsgi", base_id, base_id, at(30), at(30) + 150,
                               service="api", project="admin"))
    base_id = payloads.new_id()  # 10 days ago: outside the default day
    write(store, payloads.call("db", base_id, base_id, at(14400),
                               at(14400) + 500, service="api"))
    base_id = payloads.new_id()  # another service
    write(store, payloads.call("db", base_id, base_id, at(10), at(10) + 900,
                               service="volume"))
    base_id = payloads.new_id()  # still open
    write(store, payloads.call("db", base_id, base_id, at(1), at(1) + 1,
                               service="api")[:1])


def test_latency_percentiles_per_name(cli):
    run, store = cli
    latency_dataset(store)
    code, out, err = run("latency", "--service", "api", "-f", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == [  # highest p95 first
        {"name": "wsgi", "count": 1, "mean_ms": 150, "p50_ms": 150,
         "p95_ms": 150, "p99_ms": 150, "max_ms": 150},
        # 1..20: percentile p at 0-based position 19 p, interpolated
        {"name": "db", "count": 20, "mean_ms": 10.5, "p50_ms": 10.5,
         "p95_ms": 19.05, "p99_ms": 19.81, "max_ms": 20}]
    code, out, _ = run("latency", "--service", "api", "-f", "value",
                       "-c", "name", "-c", "count", "-c", "p95_ms")
    assert (code, out) == (0, "wsgi 1 150.0\ndb 20 19.05\n")
    code, out, _ = run("latency", "--service", "api")
    assert code == 0 and "| name | count | mean_ms |" in out
    assert "| db   |    20 |    10.5 |" in out


def test_latency_filters(cli):
    run, store = cli
    latency_dataset(store)

    def rows(*args):
        code, out, err = run("latency", "--service", "api", "-f", "json",
                             *args)
        assert (code, err) == (0, "")
        return [(r["name"], r["count"], r["max_ms"]) for r in json.loads(out)]

    assert rows("--name", "db") == [("db", 20, 20)]
    assert rows("--project", "admin") == [("wsgi", 1, 150)]
    # the 500 ms span is db's max, not its p95 (h = 20 x 0.95: 20 ms)
    assert rows("--since", "30d") == [("wsgi", 1, 150), ("db", 21, 500)]
    assert rows("--since", "1h") == [("wsgi", 1, 150), ("db", 11, 11)]
    assert rows("--since", "3h", "--until", "1h") == [("db", 9, 20)]
    old = (NOW - datetime.timedelta(days=11)).isoformat()
    assert rows("--since", old, "--until", "2d") == [("db", 1, 500)]
    assert rows("--name", "%") == []
    code, out, err = run("latency", "--service", "nothing", "-f", "json")
    assert (code, json.loads(out), err) == (0, [], "")


def test_latency_of_real_osprofiler_traces(cli):
    run, store = cli
    for n in range(6):
        base_id, raw = reference.capture(lambda: a_request(n % 2 == 1))
        write(store, raw)
    durations = {}
    for trace in store.list_traces(limit=10):
        for span in store.get_spans(trace.base_id):
            durations.setdefault(span.name, []).append(
                (span.finished_at - span.started_at)
                / datetime.timedelta(milliseconds=1))
    code, out, _ = run("latency", "--service", "api", "-f", "json")
    assert code == 0
    shown = {row.pop("name"): row for row in json.loads(out)}
    assert set(shown) == {"wsgi", "db", "nova-compute-build",
                          "cinder-volume-attach"}
    for name, values in durations.items():
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        expected = {"count": len(values), "mean_ms": statistics.fmean(values),
                    "p50_ms": cuts[49], "p95_ms": cuts[94],
                    "p99_ms": cuts[98], "max_ms": max(values)}
        assert shown[name] == pytest.approx(expected, abs=0.0006), name


def test_latency_bad_arguments_are_one_line(cli):
    run, _store = cli
    for args in ([], ["--service", "api", "--since", "yesterday"],
                 ["--service", "api", "--until", "later"],
                 ["--service", "api", "--bogus"]):
        code, out, err = run("latency", *args)
        assert code == 2 and out == "" and err.count("\n") == 1, args
    assert "--service" in run("latency")[2]


def incomplete_dataset(store):
    """A complete trace, one whose root's start never arrived, one with a
    span still open; returns their base_ids by role."""
    ids = {"complete": payloads.new_id(), "no_start": payloads.new_id(),
           "open": payloads.new_id()}
    write(store, payloads.call("wsgi", ids["complete"], ids["complete"],
                               at(30), at(30) + 20, service="api"))
    root = payloads.call("wsgi", ids["no_start"], ids["no_start"], at(20),
                         at(20) + 50, service="api")
    child = payloads.call("db", ids["no_start"], root[0]["trace_id"],
                          at(20) + 10, at(20) + 30, service="api")
    write(store, [root[1], *child])
    write(store, payloads.call("wsgi", ids["open"], ids["open"], at(10),
                               at(10) + 40, service="api")[:1])
    return ids


def test_spans_without_a_start_are_marked_in_every_view(cli):
    run, store = cli
    ids = incomplete_dataset(store)
    base_id = ids["no_start"]
    code, out, err = run("show", base_id)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"trace {base_id}: 2 spans, 40 ms, service api, 0 errors, 0 open, "
        f"1 start missing, 0 orphans",
        "└─ wsgi  api@node-1  +40 ms  0 ms  [START MISSING]",
        "   └─ db  api@node-1  +0 ms  20 ms"]
    code, out, _ = run("show", base_id, "-f", "json")
    report = json.loads(out)
    assert (report["start_missing"], report["open_spans"]) == (1, 0)
    [wsgi] = report["children"]  # placed at its stop
    [db] = wsgi["children"]
    assert (wsgi["start_missing"], db["start_missing"]) == (True, False)
    assert wsgi["info"]["started"] == wsgi["info"]["finished"] == 40
    code, out, _ = run("show", base_id, "-f", "html")
    assert '"start_missing": true' in out and "START MISSING" in out
    assert "0 open, 1 start missing, 0 orphans" in out
    code, out, _ = run("show", base_id, "-f", "dot")
    assert "0 ms\\nSTART MISSING" in out
    code, out, _ = run("list", "-f", "json")
    flags = {row["base_id"]: row["incomplete"] for row in json.loads(out)}
    assert flags == {ids["complete"]: False, ids["no_start"]: True,
                     ids["open"]: True}
    code, out, _ = run("list", "-f", "value", "-c", "base_id",
                       "-c", "incomplete")
    assert out.splitlines() == [f"{ids['open']} True",
                                f"{ids['no_start']} True",
                                f"{ids['complete']} False"]


def test_lists_and_objects_in_every_format(cli):
    run, store = cli
    ids = dataset(store)
    two = payloads.new_id()  # the newest, with two services and projects
    root = payloads.call("wsgi", two, two, at(1), at(1) + 9, service="api",
                         project="nova")
    write(store, root + payloads.call(
        "cinder-volume", two, root[0]["trace_id"], at(1) + 1, at(1) + 2,
        service="volume", project="cinder"))
    expected = {"json": ["api", "volume"], "yaml": ["api", "volume"],
                "value": "api, volume", "csv": "api, volume"}
    code, out, _ = run("list", "-f", "value", "-c", "services",
                       "-c", "projects", "--limit", "1")
    assert (code, out) == (0, "api, volume cinder, nova\n")
    code, out, _ = run("list", "-f", "csv", "-c", "services", "--limit", "1")
    assert out.splitlines() == ['"services"', '"api, volume"']
    code, out, _ = run("list", "-f", "json", "--limit", "1")
    assert json.loads(out)[0]["services"] == expected["json"]
    code, out, _ = run("list", "-f", "yaml", "--limit", "1")
    assert "services:\n  - api\n  - volume\n" in out
    code, out, _ = run("list", "--limit", "1")
    assert "| api, volume | cinder, nova |" in out
    per_service = {"api": 3, "scheduler": 1, "volume": 3}
    code, out, _ = run("stats", "-f", "json")
    assert json.loads(out)["spans_per_service"] == per_service
    code, out, _ = run("stats", "-f", "yaml")
    assert "spans_per_service:\n  api: 3\n  scheduler: 1\n  volume: 3\n" in out
    code, out, _ = run("stats", "-f", "value", "-c", "spans_per_service")
    assert out == "api=3, scheduler=1, volume=3\n"
    code, out, _ = run("stats", "-f", "shell", "-c", "spans_per_service")
    assert out == 'spans_per_service="api=3, scheduler=1, volume=3"\n'
    assert run("show", ids["quick"], "-f", "json") == run(
        "show", ids["quick"], "--format", "json")


def test_no_rows_in_every_format(cli):
    run, _store = cli
    for command in (["list"], ["list", "--service", "nothing"],
                    ["latency", "--service", "nothing"]):
        code, out, err = run(*command)
        assert (code, err) == (0, ""), command
        header, names, line, bottom = out.splitlines()
        assert names.startswith("| ") and header == line == bottom
        for fmt, shown in (("json", "[]\n"), ("yaml", "[]\n"),
                           ("value", ""), ("csv", "")):
            assert run(*command, "-f", fmt) == (0, shown, ""), (command, fmt)


BAD_ARGUMENTS = [
    (["show", "ID", "--max-depth", "-1"],
     "argument --max-depth: -1 is not a whole number of at least 0"),
    (["show", "ID", "--max-depth", "two"],
     "argument --max-depth: 'two' is not a whole number"),
    (["show", "ID", "--min-duration", "-5"],
     "argument --min-duration: '-5' is not a number of milliseconds: "
     "expected 0 or more"),
    (["list", "--limit", "abc"],
     "argument --limit: 'abc' is not a whole number"),
    (["list", "--limit", "1.5"],
     "argument --limit: '1.5' is not a whole number"),
    (["list", "--limit", "99999999999"],
     "argument --limit: 99999999999 is more than 2147483647"),
    (["list", "--min-duration", "nan"],
     "argument --min-duration: 'nan' is not a number of milliseconds: "
     "expected 0 or more"),
    (["list", "--since", "999999w"],
     "argument --since: invalid age '999999w': that long ago is before the "
     "year 1"),
    (["latency", "--service", "api", "--until", "999999w"],
     "argument --until: invalid age '999999w': that long ago is before the "
     "year 1"),
    (["status", "--stale-after", "0"],
     "argument --stale-after: '0' is not a number of seconds: expected "
     "more than 0"),
    (["status", "--stale-after", "-3"],
     "argument --stale-after: '-3' is not a number of seconds: expected "
     "more than 0"),
    (["status", "--stale-after", "inf"],
     "argument --stale-after: 'inf' is not a number of seconds: expected "
     "more than 0"),
    (["analyze", "ID", "--limit", "x"],
     "argument --limit: 'x' is not a whole number"),
    (["analyze", "ID", "--n-plus-one", "0"],
     "argument --n-plus-one: 0 is not a whole number of at least 1"),
    (["purge", "--older-than", "999999w", "--yes"],
     "argument --older-than: invalid age '999999w': that long ago is before "
     "the year 1"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS,
                         ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_numbers_and_ages_exit_2_with_one_line(sqlite_url, args,
                                                   message):
    run = Runner(url=sqlite_url)  # refused before the store is opened
    args = [payloads.new_id() if a == "ID" else a for a in args]
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert err == f"osprof-trace {args[0]}: error: {message}\n"


def test_help_summaries_are_whole_sentences():
    result = subprocess.run([os.path.join(BIN_DIR, "osprof-trace"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    listed = dict(line.split(None, 1) for line in
                  result.stdout.split("Commands:\n")[1].splitlines())
    app = trace_cmd.TraceApp()
    for name, factory in app.command_manager:
        if name in ("help", "complete"):  # cliff's own
            continue
        first_line = factory.load().__doc__.splitlines()[0]
        assert first_line.endswith("."), name
        # cliff shows the first line, without its full stop
        assert listed[name].strip() == first_line[:-1], name


def test_counts_in_text_say_one_thing_or_many(cli):
    run, store = cli
    one = payloads.new_id()
    write(store, payloads.call("db", one, payloads.new_id(), at(3), at(3) + 5,
                               stop_info={"etype": "E", "message": "x"}))
    code, out, _ = run("show", one)
    assert out.splitlines()[0] == (
        f"trace {one}: 1 span, 5 ms, service api, 1 error, 0 open, "
        f"0 start missing, 1 orphan")
    code, out, _ = run("analyze", one)
    lines = out.splitlines()
    assert lines[0] == (f"trace {one}: 1 span, 5.000 ms, 1 timed, 0 untimed, "
                        f"1 orphan")
    assert lines[1] == ("(1 orphan, whose parent is unknown or loops back to "
                        "it, is timed as a top-level span)")
    assert "Critical path: 1 span, 5.000 ms" in lines
    assert "SQL: 0 queries, 0 distinct statements, 0 run more than once" \
        in lines
    code, out, _ = run("compare", one, one)
    assert out.startswith(f"A: trace {one}: 1 span, 5.000 ms\n")
