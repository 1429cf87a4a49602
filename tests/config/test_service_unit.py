"""systemd/pumproom-agent.service: valid for systemd, and its device policy lets the agent open
every serial port family a pump-room gateway has (USB adapters, PC UARTs, Raspberry Pi UARTs and
SC16IS752 RS-485 HATs)."""

from __future__ import annotations

import shutil
import subprocess
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
