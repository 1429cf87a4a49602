"""Config case folders run through ``pumproom-agent check`` as a subprocess.

Each ``cases/<kind>/`` holds ``input.yaml`` and ``expected``: the exact lines the command prints.
``expected`` starting with ``ok:`` means a valid config (exit 0, summary on stdout; its warnings,
if any, are the lines of ``expected_warnings`` on stderr); anything else is one problem per line
on stderr and exit status 2. A field bug becomes a new folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p for p in (Path(__file__).parent / "cases").iterdir() if p.is_dir())


def run_check(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m agent.cli check ARGS`` in ``cwd`` (the console-script entry point)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "check", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path) -> None:
    expected = (case / "expected").read_text(encoding="utf-8")
    result = run_check(case, "-c", "input.yaml")
    if expected.startswith("ok:"):
        warnings = case / "expected_warnings"
        stderr = warnings.read_text(encoding="utf-8") if warnings.exists() else ""
        assert (result.returncode, result.stdout, result.stderr) == (0, expected, stderr)
    else:
        assert result.stdout == ""
        assert result.stderr.splitlines() == expected.splitlines()
        assert result.returncode == 2


def test_example_config_is_valid() -> None:
    """config/example.yaml as it is at test time (it is maintained elsewhere)."""
    result = run_check(ROOT, "-c", "config/example.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ")
    assert result.stderr == ""


def test_set_errors_print_as_set_lines(tmp_path: Path) -> None:
    src = CASES[0].parent / "no_as_site_id_is_valid" / "input.yaml"
    (tmp_path / "site.yaml").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    result = run_check(
        tmp_path,
        "-c",
        "site.yaml",
        "--set",
        "devices.cabinet.port=15021",
        "--set",
        "devices.cabinett.port=1",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "--set:2:9: no item named 'cabinett' in devices (did you mean 'cabinet'?) "
        "(address list items by name or by index 0..0)"
    ]


def test_a_site_without_devices_is_refused() -> None:
    """The newcomer's trial: ``--set devices=[]`` on the example was accepted ("ok: 0 devices")."""
    result = run_check(ROOT, "-c", "config/example.yaml", "--set", "devices=[]")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "--set:1:9: devices: expected at least 1 device, got an empty list"
    ]
    again = run_check(
        ROOT, "-c", "config/example.yaml", "--set", "devices=[]", "--set", "devices.x=1"
    )
    assert again.stderr.splitlines() == [
        "--set:1:9: devices: expected at least 1 device, got an empty list",
        "--set:2:9: no item named 'x' in devices (the list is empty)",
    ]


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    result = run_check(tmp_path, "-c", "nope.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith("nope.yaml:1:1: cannot read: ")


def test_a_status_port_out_of_range_is_refused_by_check() -> None:
    """The tester's trial: ``check`` said ok, then ``run`` died with OverflowError in bind()."""
    result = run_check(ROOT, "-c", "config/example.yaml", "--set", "status.listen=127.0.0.1:99999")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "--set:1:15: status.listen: port in host:port must be 1..65535, got 99999"
    ]
