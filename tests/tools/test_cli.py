"""Every technician command against the simulator, as a technician types it: ``read`` and
``write`` over Modbus TCP and RTU (the simulator's pty), ``scan`` on both with progress and
profile suggestions, ``status`` of a running agent, ``buffer export``, ``--version`` and ``-h``."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.core.model import Quality, Reading
from agent.store import Poll, Store
from tests.procs import ROOT, AgentProc, Simulator
from tests.tools.conftest import EXAMPLE, cli, example_sets


def _values(text: str) -> dict[str, str]:
    """``name = value …`` lines of ``read`` → {name: value text}."""
    return dict(re.findall(r"^(\S+) = (\S+)", text, re.M))


def test_read_configured_points_over_tcp_and_rtu_equal_the_truth(quiet_sim: Simulator) -> None:
    names = ["flow", "setpoint", "cabinet.mode", "circ.freq", "cl500.chlorine",
             "pump1.state", "pump2.freq", "p_out", "p_in.unit_code"]  # fmt: skip
    out = cli("read", "-c", str(EXAMPLE), *example_sets(quiet_sim), *names)
    assert out.returncode == 0, out.stdout + out.stderr
    got = _values(out.stdout)
    truth = quiet_sim.command({"cmd": "truth"})["values"]
    for name in names:
        assert float(got[name]) == pytest.approx(truth[name], rel=1e-5, abs=1e-9), name
    assert "pump1.state = 1 (running (forward))" in out.stdout or "(stopped)" in out.stdout
    assert "[flowmeter unit 2 input 4112 (0x1010) float32 little-word]" in out.stdout
    assert "p_in.unit_code = 1 (kPa)" in out.stdout
    bad = cli("read", "-c", str(EXAMPLE), "pump1.frq")
    assert bad.returncode == 2 and "did you mean 'pump1.freq'" in bad.stderr


def test_read_a_raw_range_shows_every_decoding(quiet_sim: Simulator) -> None:
    truth = quiet_sim.command({"cmd": "truth"})["values"]
    out = cli("read", "--tcp", f"127.0.0.1:{quiet_sim.tcp_port}", "--unit", "2",
              "--table", "input", "--address", "0x1010", "--count", "4")  # fmt: skip
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if re.match(r"\s+4112 float32", line))
    abcd, cdab = row.split()[2:4]
    assert float(cdab) == pytest.approx(truth["flow"], rel=1e-5)  # the meter's word-swapped float
    assert float(abcd) != pytest.approx(truth["flow"], rel=1e-3)
    assert "orders: ABCD = word_order: big; CDAB = word_order: little" in out.stdout
    assert re.search(r"^\s+4112\s+0x1010\s+[0-9A-F]{4}\s+\d+\s+-?\d+$", out.stdout, re.M)
    assert "64-bit values" in out.stdout
    rtu = cli("read", "--port", quiet_sim.rtu_link, "--baud", "19200", "--unit", "22",
              "--address", "0", "--count", "7")  # fmt: skip
    assert rtu.returncode == 0, rtu.stderr
    raw = round(truth["p_out"] / 0.0001)  # int16 kPa with one decimal (rs485-pressure-v1)
    assert re.search(rf"^\s+4\s+0x0004\s+{raw & 0xFFFF:04X}\s+{raw}\s+{raw}$", rtu.stdout, re.M)
    assert re.search(r"^\s+0\s+0x0000\s+0016\s+22\s+22$", rtu.stdout, re.M)  # its own address
    gap = cli("read", "--tcp", f"127.0.0.1:{quiet_sim.tcp_port}", "--unit", "2",
              "--address", "0", "--count", "2")  # fmt: skip
    assert gap.returncode == 1 and "modbus:exception:2 (illegal data address" in gap.stdout


def test_write_is_guarded_and_read_back(quiet_sim: Simulator) -> None:
    base = ["write", "-c", str(EXAMPLE), *example_sets(quiet_sim)]
    refused = {
        "no --yes": cli(*base, "setpoint", "0.45"),
        "read-only": cli(*base, "p_out", "0.3", "--yes"),
        "above valid_max": cli(*base, "setpoint", "1.3", "--yes"),
        "not in the enum": cli(*base, "pump1.cmd", "9", "--yes"),
        "above the site's interlock": cli(*base, "setpoint", "0.9", "--yes"),
    }
    site = refused["above the site's interlock"]
    assert site.returncode == 2 and "outside this site's 0.2..0.55" in site.stderr, site.stderr
    for why, out in refused.items():
        assert (
            out.returncode == 2 and "nothing written" in out.stderr
        ) or "refused" in out.stderr, why
    assert quiet_sim.command({"cmd": "truth"})["values"]["setpoint"] == pytest.approx(0.40)
    out = cli(*base, "setpoint", "0.45", "--yes")  # Modbus TCP
    assert out.returncode == 0 and "confirmed" in out.stdout, out.stdout + out.stderr
    assert "read back: setpoint = 0.45 MPa" in out.stdout
    assert quiet_sim.command({"cmd": "truth"})["values"]["setpoint"] == pytest.approx(0.45)
    assert cli(*base, "setpoint", "0.40", "--yes").returncode == 0
    out = cli(*base, "pump2.freq_ref", "31.5", "--yes")  # RTU over the pty
    assert out.returncode == 0 and "read back: pump2.freq_ref = 31.5 Hz" in out.stdout, out.stderr
    out = cli(*base, "circ.control_word", "stop", "--yes")  # an enum word
    assert out.returncode == 0 and "1150 (stop)" in out.stdout, out.stderr


def _pty_run(*args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (as in a technician's shell); the terminal
    is read while the command runs (what is still unread when it exits may be lost)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, stderr=slave,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command closed its side
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, name="pty-reader")
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    code = proc.wait(30)
    reader.join(10)
    os.close(master)
    return code, out, b"".join(chunks).decode()


def test_scan_finds_exactly_the_units_with_progress_and_profiles(quiet_sim: Simulator) -> None:
    out = cli("scan", "--port", quiet_sim.rtu_link, "--baud", "19200", "--parity", "N",
              "--units", "1-25", "--timeout", "0.1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    found = dict(re.findall(r"unit\s+(\d+): .*→ profile (\S+)", out.stdout))
    assert found == {"11": "invt-gd200a", "12": "invt-gd200a", "13": "invt-gd200a",
                     "21": "rs485-pressure-v1", "22": "rs485-pressure-v1"}  # fmt: skip
    assert "19200 8N1: 5 unit(s) answered" in out.stdout
    assert "scan: 19200 8N1: probing 25 unit ids" in out.stderr and "scan: done" in out.stderr
    code, text, bar = _pty_run("scan", "--tcp", f"127.0.0.1:{quiet_sim.tcp_port}",
                               "--units", "1-6", "--timeout", "0.2")  # fmt: skip
    assert code == 0, text + bar
    found = dict(re.findall(r"unit\s+(\d+): .*→ profile (\S+)", text))
    assert found == {"1": "wilo-control-cc", "2": "mfe600h-flow", "3": "abb-acs580",
                     "4": "xylem-cl500"}  # fmt: skip
    assert re.search(r"\[#+\.*\] tcp 127\.0\.0\.1:\d+  unit 3/6  all 3/6  ETA \d+:\d\d", bar), bar
    code, text, _ = _pty_run("scan", "--tcp", "127.0.0.1", "--units", "1", "--timeout", "0.2")
    assert code == 1 and "tcp 127.0.0.1:502: cannot open" in text  # the default Modbus port


def test_status_of_the_running_agent(live: AgentProc) -> None:
    sets = ["--set", f"status.listen=127.0.0.1:{live.status_port}"]
    out = cli("status", "-c", str(EXAMPLE), *sets)
    assert out.returncode == 0, out.stderr
    for text in ("DEVICE vfd1 (invt-gd200a)", "DEVICE cabinet (wilo-control-cc)", "uplink connected",
                 "CONTROL", "setpoint 0.400 MPa", "CONNECTIONS",
                 "constant pressure (p-c)"):  # fmt: skip
        assert text in out.stdout, text
    assert re.search(r"^  p_out\s+\d\.\d{3} MPa  good$", out.stdout, re.M), out.stdout
    snap = json.loads(
        cli("status", "--url", f"http://127.0.0.1:{live.status_port}", "--json").stdout
    )
    assert snap["points"]["pump1.state"]["text"] in ("running (forward)", "stopped")
    assert snap["points"]["flow"]["unit"] == "m³/h" and len(snap["devices"]) == 10
    broken = cli("status", "-c", str(EXAMPLE), "--set", "status.listen=127.0.0.1:99999")
    assert broken.returncode == 2 and "give its status page with --url" in broken.stderr
    down = cli("status", "--url", "http://127.0.0.1:1")
    assert down.returncode == 1 and "no answer from the agent" in down.stderr


async def _fill(path: Path) -> None:
    store = await Store.open(path, 1 << 22)
    await store.append([
        Poll([Reading("p_out", 0.4), Reading("flow", None, Quality.COMM_FAIL, "timeout")], 1_700_000_000_000, True),
        Poll([Reading("p_out", 0.41), Reading("flow", 12.5)], 1_700_000_060_000, True),
    ])  # fmt: skip
    await store.close()


def test_buffer_export_to_csv(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    asyncio.run(_fill(path))
    out_csv = tmp_path / "out.csv"
    base = ["buffer", "export", "-c", str(EXAMPLE), "--set", f"buffer.path={path}"]
    out = cli(*base, "--from", "2023-11-14T22:13:30Z", "--points", "p_out,flow",
              "--csv", str(out_csv))  # fmt: skip
    assert out.returncode == 0 and "2 samples written" in out.stdout, out.stderr
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert [(r["point"], r["value"], r["quality"]) for r in rows] == [
        ("p_out", "0.41", "good"),
        ("flow", "12.5", "good"),
    ]
    assert rows[0]["time_utc"] == "2023-11-14T22:14:20.000Z"
    out = cli(*base, "--to", "2023-11-14T22:13:30", "--points", "flow", "--csv", str(out_csv))
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert [(r["value"], r["quality"], r["reason"]) for r in rows] == [("", "comm_fail", "timeout")]
    typo = cli(*base, "--points", "flow,p_uot", "--csv", str(tmp_path / "typo.csv"))
    assert typo.returncode == 2 and not (tmp_path / "typo.csv").exists()
    assert "no point 'p_uot' (did you mean 'p_out'?) in the buffer" in typo.stderr, typo.stderr


def test_version_and_help_with_an_example_on_every_command() -> None:
    from click.testing import CliRunner

    from agent.cli import main

    assert cli("--version").stdout.strip() == "pumproom-agent, version 0.1.0"
    runner = CliRunner()
    commands = ["check", "run", "read", "write", "status", "scan", "buffer", "profiles"]
    for cmd in [*commands, "buffer export"]:
        out = runner.invoke(main, [*cmd.split(), "-h"])
        assert out.exit_code == 0 and "Example" in out.output and "pumproom-agent " in out.output, (
            cmd
        )
    listing = runner.invoke(main, ["profiles"]).output
    assert "invt-gd200a: INVT Goodrive GD200A" in listing and listing.count("\n") == 6
