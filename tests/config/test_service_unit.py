"""systemd/pumproom-agent.service: valid for systemd, and its device policy lets the agent open
every serial port family a pump-room gateway has (USB adapters, PC UARTs, Raspberry Pi UARTs and
SC16IS752 RS-485 HATs)."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "pumproom-agent.service"


def _settings(key: str) -> list[str]:
    prefix = f"{key}="
    return [
        line[len(prefix) :].strip()
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if line.startswith(prefix)
    ]


def test_serial_port_groups_are_allowed() -> None:
    assert _settings("DevicePolicy") == ["closed"]
    allowed = {tuple(v.split()) for v in _settings("DeviceAllow")}
    for group in ("ttyUSB", "ttyS", "ttyACM", "ttyAMA", "ttySC"):
        assert (f"char-{group}", "rw") in allowed, f"no DeviceAllow=char-{group} rw"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    """``systemd-analyze verify`` without a word (the agent's binary, not installed here, is
    replaced by /bin/true; everything else is the unit as shipped)."""
    unit = tmp_path / UNIT.name
    text = UNIT.read_text(encoding="utf-8")
    unit.write_text(text.replace("/opt/pumproom-edge/bin/pumproom-agent", "/bin/true"))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_unit_notifies_has_a_watchdog_and_reloads_with_sighup() -> None:
    assert _settings("Type") == ["notify"]
    assert _settings("NotifyAccess") == ["main"]
    (watchdog,) = _settings("WatchdogSec")
    assert 10 <= int(watchdog) <= 120
    assert _settings("ExecReload") == ["/bin/kill -HUP $MAINPID"]


def test_anonymous_broker_needs_no_credential_file() -> None:
    """A LoadCredential= whose file is missing fails the start, unless SetCredential= gives the
    same id a default (systemd.exec(5)); the agent reads that default as "no password"."""
    loads = {v.split(":", 1)[0] for v in _settings("LoadCredential")}
    defaults = {v.split(":", 1)[0] for v in _settings("SetCredential")}
    assert loads <= defaults, f"credentials without a default: {loads - defaults}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_security_exposure_at_most_2_5(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    text = UNIT.read_text(encoding="utf-8")
    unit.write_text(text.replace("/opt/pumproom-edge/bin/pumproom-agent", "/bin/true"))
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= 2.5


# Reads the config as the service user would: the interpreter lives under /root (0700 here), so
# the child imports what `check` needs first, then drops to an unprivileged uid/gid with no
# supplementary groups, and only then runs `check` (every file it opens, it opens unprivileged).
_CHECK_AS = """
import os, sys
import agent.cli, agent.config, agent.config.checks
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)
sys.argv = ["pumproom-agent", "check", "-c", sys.argv[3]]
agent.cli.main()
"""


def _check_as(etc: Path, uid: int, gid: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHECK_AS, str(uid), str(gid), str(etc / "site.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def _config_dir(root: Path, group: int) -> Path:
    """/etc/pumproom-edge as the unit and its install notes make it: root:<group>, the
    unit's ConfigurationDirectoryMode=, the site config 0640."""
    (mode,) = _settings("ConfigurationDirectoryMode")
    etc = root / "pumproom-edge"
    etc.mkdir()
    shutil.copy(ROOT / "config" / "example.yaml", etc / "site.yaml")
    os.chown(etc, 0, group)
    os.chown(etc / "site.yaml", 0, group)
    os.chmod(etc / "site.yaml", 0o640)
    os.chmod(etc, int(mode, 8))
    return etc


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create owners and drop privileges")
def test_the_service_user_can_read_its_config() -> None:
    """The unit runs as a fixed user whose group owns the config (``User=``/``Group=``, not
    ``DynamicUser=``): with the unit's modes, that user's `check` reads the config. The
    DynamicUser= layout of before (root:root 0750, a user in no group of it) cannot: exit 2,
    Permission denied, and systemd does not restart on exit 2."""
    assert _settings("DynamicUser") in ([], ["no"])
    assert _settings("User") == ["pumproom"] and _settings("Group") == ["pumproom"]
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    root = Path(tempfile.mkdtemp(prefix="pumproom-unit-"))  # /tmp: others may traverse
    try:
        os.chmod(root, 0o755)
        etc = _config_dir(root, nogroup)  # nogroup stands for the unit's group pumproom
        ok = _check_as(etc, nobody, nogroup)
        assert (ok.returncode, ok.stderr) == (0, ""), ok.stdout
        assert ok.stdout.startswith("ok: ")
        os.chown(etc, 0, 0)  # DynamicUser=: the directory stays root's, the user is a stranger
        os.chown(etc / "site.yaml", 0, 0)
        refused = _check_as(etc, nobody, nogroup)
        assert refused.returncode == 2 and "Permission denied" in refused.stderr
    finally:
        shutil.rmtree(root)
