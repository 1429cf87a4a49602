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
    # "Devices   agent 1/1  modbus-rtu 5/5  modbus-tcp 2/2  opcua 1/1 fully uplinked": per
    # transport, the devices every point of which reached the platform, of all its devices
    line = next(x for x in last.splitlines() if x.startswith("Devices "))
    devices = re.findall(r"(modbus-tcp|modbus-rtu|opcua) (\d+)/(\d+)", line)
    assert {t for t, *_ in devices} == {"modbus-tcp", "modbus-rtu", "opcua"}, last
    incomplete = [(t, done, n) for t, done, n in devices if done != n]
    assert not incomplete, f"transports with devices not fully uplinked: {incomplete}"
