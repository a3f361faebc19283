"""tools/quickstart.sh, the README's first command, as an operator runs it."""

import json
import os
import subprocess
import sys
import uuid

from osprof_collector import storage
from tests.functional import api_server
from tests.functional.conftest import ROOT


def test_quickstart_keeps_to_its_vhost_and_says_what_to_run_next(
        rabbit_url, tmp_path, collector_factory):
    # A collector installed as the README says, consuming profiler.info on
    # the same broker: it must not take the quickstart's traces.
    other = collector_factory(rabbit_url.rsplit("/", 1)[0] + "/",
                              f"sqlite:///{tmp_path}/other.db",
                              exchanges="nova,cinder").start()
    vhost = f"osprof_quickstart_{uuid.uuid4().hex[:8]}"
    port = api_server.free_port()
    env = dict(os.environ, OSPROF_COLLECTOR_VENV=os.path.dirname(
        os.path.dirname(sys.executable)),
        OSPROF_COLLECTOR_QUICKSTART_DIR=str(tmp_path / "qs"),
        OSPROF_COLLECTOR_QUICKSTART_VHOST=vhost,
        OSPROF_COLLECTOR_QUICKSTART_API_PORT=str(port))
    try:
        result = subprocess.run(["bash", "tools/quickstart.sh"], cwd=ROOT,
                                env=env, capture_output=True, text=True,
                                timeout=600, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost],
                       capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 4 traces stored" in result.stdout
    assert f"using RabbitMQ vhost {vhost}" in result.stdout
    assert other.stop() == 0
    with open(tmp_path / "qs" / "sent.jsonl") as sent:
        base_ids = [json.loads(line)["base_id"] for line in sent]
    assert len(base_ids) == 4
    other_store = storage.get_driver(f"sqlite:///{tmp_path}/other.db")
    try:
        assert [other_store.get_spans(b) for b in base_ids] == [[]] * 4
    finally:
        other_store.close()
    # The exact commands to read the store again, which work as printed.
    store_url = f"sqlite:///{tmp_path}/qs/traces.db"
    export = f"export OSPROF_TRACE_CONNECTION={store_url}"
    assert export in result.stdout
    trace = os.path.join(os.path.dirname(sys.executable), "osprof-trace")
    listed = [line.strip() for line in result.stdout.splitlines()
              if line.strip().startswith(f"{trace} list")]
    assert listed == [f"{trace} list"]
    again = subprocess.run(["bash", "-c", f"{export} && {listed[0]} -f value"
                            f" -c base_id"], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0
    assert len(again.stdout.split()) == 4
    # osprof-api answered on that store, and how to start it is printed.
    assert (f'web UI at http://127.0.0.1:{port}/; http://127.0.0.1:{port}'
            f'/api/v2/services: ["cinder-volume","nova-api"]') in result.stdout
    assert f"then open http://127.0.0.1:{port}/" in result.stdout
    # The vhost is gone with the run.
    vhosts = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"],
                            capture_output=True, text=True).stdout
    assert vhost not in vhosts.split()
