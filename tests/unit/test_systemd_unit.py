"""The systemd unit as systemd itself reads it."""

import configparser
import os
import subprocess
import sys

from osprof_collector import exits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
UNIT = os.path.join(ROOT, "etc/systemd/osprof-collector.service")
INSTALLED_AT = "/usr/local/bin/osprof-collector"


def unit_for_this_machine(tmp_path):
    """The unit with ExecStart pointing at this virtualenv's command
    (verify checks that the program exists)."""
    here = os.path.join(os.path.dirname(sys.executable), "osprof-collector")
    with open(UNIT) as source:
        text = source.read()
    assert f"ExecStart={INSTALLED_AT} " in text
    unit = tmp_path / "osprof-collector.service"
    unit.write_text(text.replace(INSTALLED_AT, here))
    return unit


def service_section():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser["Service"]


def test_systemd_analyze_verify_is_clean(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_for_this_machine(tmp_path))],
        capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hardening_exposure_is_low(tmp_path):
    # systemd's own score of the sandbox, 0 (locked down) to 10 (none):
    # at most 2.0.
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20",
         str(unit_for_this_machine(tmp_path))],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_directories_and_restart_policy():
    service = service_section()
    # The README's SQLite example and a log_file live in these.
    assert service["StateDirectory"] == "osprof-collector"
    assert service["LogsDirectory"] == "osprof-collector"
    assert service["User"] == "osprof-collector"
    assert service["Restart"] == "on-failure"
    # A refused configuration waits for the operator; an unreachable
    # store (69) is restarted.
    prevented = {int(s) for s in service["RestartPreventExitStatus"].split()}
    assert prevented == {exits.USAGE, exits.CONFIG}
    assert exits.UNAVAILABLE not in prevented
    for setting in ("NoNewPrivileges", "ProtectHome", "PrivateTmp",
                    "PrivateDevices"):
        assert service[setting] == "true"
    assert service["ProtectSystem"] == "strict"
