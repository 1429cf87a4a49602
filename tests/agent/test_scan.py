"""``pumproom-agent scan`` against the simulator's RS-485 bus and Modbus TCP server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.procs import ROOT, Simulator


def _scan(*args: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "agent", "scan", *args],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    return out.returncode, out.stdout + out.stderr


def test_scan_finds_exactly_the_units_on_the_bus_and_behind_the_gateway(tmp_path: Path) -> None:
    sim = Simulator(tmp_path).start()
    try:
        code, text = _scan("--port", sim.rtu_link, "--baud", "19200", "--parity", "N",
                           "--units", "1-25", "--timeout", "0.1")  # fmt: skip
        assert code == 0, text
        assert "19200 8N1: 5 unit(s) answered" in text, text
        assert {int(u) for u in re.findall(r"unit\s+(\d+):", text)} == {11, 12, 13, 21, 22}
        code, text = _scan(
            "--tcp", f"127.0.0.1:{sim.tcp_port}", "--units", "1-5", "--timeout", "0.2"
        )
        assert code == 0 and {int(u) for u in re.findall(r"unit\s+(\d+):", text)} == {1, 2}, text
    finally:
        sim.stop()


def test_scan_refuses_bad_arguments() -> None:
    assert _scan("--port", "/dev/null", "--units", "300")[0] == 2
    assert _scan("--units", "1-3")[0] == 2  # neither --port nor --tcp
    code, text = _scan("--port", "/nonexistent/tty", "--units", "1", "--baud", "9600",
                       "--parity", "N")  # fmt: skip
    assert code == 1 and "cannot open" in text, (code, text)  # exited 0 before
    code, text = _scan("--tcp", "127.0.0.1:1", "--units", "1", "--timeout", "0.2")
    assert code == 1 and "cannot open" in text, (code, text)
