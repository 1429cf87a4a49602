"""The README's demo command shows live telemetry from all three transports within 30 s."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.procs import ROOT

pytestmark = pytest.mark.e2e


def test_demo_shows_every_device_of_every_transport_within_30_s() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hil_sim.cli", "demo", "--seconds", "25"],
        capture_output=True, text=True, timeout=90, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    last = out.stdout.rsplit("pumproom-edge demo", 1)[-1]
    assert " online " in last, last
    pattern = r"\[(modbus-tcp|modbus-rtu|opcua)\] (\S+): (\d+)/(\d+) points uplinked"
    devices = re.findall(pattern, last)
    assert {t for t, *_ in devices} == {"modbus-tcp", "modbus-rtu", "opcua"}, last
    incomplete = [(d, got, n) for _, d, got, n in devices if got != n]
    assert not incomplete, f"devices with points never uplinked: {incomplete}"
