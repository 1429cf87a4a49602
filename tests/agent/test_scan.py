"""``pumproom-agent scan``: bad arguments and unopenable settings (the scan of the simulator's
bus and gateway, with progress and profiles, is in tests/tools/test_cli.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.procs import ROOT


def _scan(*args: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "agent", "scan", *args],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    return out.returncode, out.stdout + out.stderr


def test_scan_refuses_bad_arguments() -> None:
    assert _scan("--port", "/dev/null", "--units", "300")[0] == 2
    assert _scan("--units", "1-3")[0] == 2  # neither --port nor --tcp
    code, text = _scan("--port", "/nonexistent/tty", "--units", "1", "--baud", "9600",
                       "--parity", "N")  # fmt: skip
    assert code == 1 and "cannot open" in text, (code, text)  # exited 0 before
    code, text = _scan("--tcp", "127.0.0.1:1", "--units", "1", "--timeout", "0.2")
    assert code == 1 and "cannot open" in text, (code, text)
