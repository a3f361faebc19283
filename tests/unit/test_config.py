import os
import subprocess
import sys

from osprof_collector import opts
from osprof_collector.cmd import collector

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
GENERATOR_CONF = os.path.join(
    ROOT, "etc/osprof-collector/osprof-collector-config-generator.conf")
SAMPLE = os.path.join(ROOT,
                      "etc/osprof-collector/osprof-collector.conf.sample")


def test_committed_sample_matches_the_options(tmp_path):
    generated = tmp_path / "sample.conf"
    subprocess.run([os.path.join(os.path.dirname(sys.executable),
                                 "oslo-config-generator"),
                    "--config-file", GENERATOR_CONF,
                    "--output-file", str(generated)], check=True,
                   cwd=ROOT, capture_output=True)
    with open(SAMPLE) as committed:
        assert generated.read_text() == committed.read(), \
            "run 'tox -e genconfig' and commit the sample"


def test_every_option_is_in_the_sample():
    with open(SAMPLE) as sample:
        text = sample.read()
    for group, group_opts in opts.list_opts():
        assert f"[{group}]" in text
        for opt in group_opts:
            assert f"#{opt.dest} = " in text


def test_defaults(tmp_path):
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    conf = collector.prepare(["--config-file", str(empty)])
    assert conf.collector.topics == ["profiler"]
    assert "openstack" in conf.collector.exchanges
    assert "nova" in conf.collector.exchanges
    assert conf.collector.pool is None
    assert conf.storage.connection == "mongodb://localhost:27017/osprofiler"
    # unbounded prefetch would pull a whole backlog into memory
    assert conf.oslo_messaging_rabbit.rabbit_qos_prefetch_count == \
        2 * conf.collector.batch_size


def test_explicit_prefetch_is_respected(tmp_path):
    config = tmp_path / "c.conf"
    config.write_text(
        "[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = 7\n")
    conf = collector.prepare(["--config-file", str(config)])
    assert conf.oslo_messaging_rabbit.rabbit_qos_prefetch_count == 7


def test_help_names_the_config_file():
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable),
                                          "osprof-collector"), "--help"],
                            capture_output=True, text=True, check=True)
    assert "--config-file" in result.stdout
