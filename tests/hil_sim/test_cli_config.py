"""`hil-sim run` as a process (ready lines, control port, truth file, SIGTERM → exit 0) and
config/example.yaml against the served maps."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from hil_sim.configgen import devices_config
from hil_sim.devices.opcua_server import UA_POINTS
from hil_sim.sim import SimOptions, Simulator
from tests.hil_sim.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example.yaml"


def config_points() -> list[dict]:
    """The example's points as the agent expands them (profiles included)."""
    from agent.config import load_config

    config = load_config(EXAMPLE)
    return [p.model_dump() for d in config.devices for p in d.points]


def config_point_names() -> set[str]:
    return {p["name"] for p in config_points()}


def test_example_config_matches_the_simulator() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert data["devices"] == devices_config()
    assert data["buffer"]["path"] == "./var/buffer.sqlite"
    assert {"broker", "topic_prefix"} <= set(data["uplink"])
    sim = Simulator(SimOptions(), announce=lambda line: None)  # not started: maps only
    served = sim.modbus_point_names() - {n for n in sim.modbus_point_names() if n.endswith(".hr")}
    assert served | {p.name for p in UA_POINTS} == config_point_names()
    from agent.config import load_config

    vfds = [d for d in load_config(EXAMPLE).devices if d.name.startswith("vfd")]
    assert len(vfds) == 3 and all(getattr(d, "max_read_registers", 0) == 16 for d in vfds)
    types = {p.get("type") for p in config_points()}
    assert {"int16", "uint16", "int32", "uint32", "float32", "uint64", "bool"} <= types
    orders = {(p.get("type"), p.get("word_order")) for p in config_points()}
    assert ("float32", "big") in orders and ("float32", "little") in orders


def test_example_config_passes_the_agents_checker() -> None:
    if importlib.util.find_spec("agent.cli") is None:  # pragma: no cover
        return
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check", "-c", str(EXAMPLE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def _line_with(stream: asyncio.StreamReader, text: str, seen: list[str]) -> str:
    while True:
        raw = await asyncio.wait_for(stream.readline(), 20.0)
        assert raw, f"process ended before {text!r}; output: {seen}"
        line = raw.decode()
        seen.append(line)
        if text in line:
            return line


async def test_cli_runs_serves_and_stops_on_sigterm(tmp_path) -> None:
    truth = tmp_path / "truth.jsonl"
    control_port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hil_sim.cli", "run",
        "--modbus-tcp-port", str(free_port()), "--opcua-port", str(free_port()),
        "--control-port", str(control_port), "--rtu-link", str(tmp_path / "ttyRTU0"),
        "--truth", str(truth), "--speed", "4", "--seed", "3", "--log-level", "WARNING",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for what in ("modbus-tcp ready", "modbus-rtu ready", "opcua ready", "control ready"):
            await _line_with(proc.stdout, what, seen)
        assert (tmp_path / "ttyRTU0").is_symlink()
        reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
        writer.write(b'{"cmd": "ping"}\n')
        first = json.loads(await asyncio.wait_for(reader.readline(), 5.0))
        await asyncio.sleep(1.0)
        writer.write(b'{"cmd": "ping"}\n')
        second = json.loads(await asyncio.wait_for(reader.readline(), 5.0))
        writer.close()
        await writer.wait_closed()
        assert first["ok"] and second["t_s"] - first["t_s"] > 2.0  # speed 4: plant runs ahead
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15.0) == 0
        rest = (await proc.stdout.read()).decode()
        assert "hil-sim stopped" in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not (tmp_path / "ttyRTU0").is_symlink()  # link removed on a clean stop
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    states = [x for x in lines if x["kind"] == "state"]
    assert len(states) >= 2  # one a wall second (the run lasts a little over 1 s)
    # every served point, plus what no device serves: the top-floor pressure (plant.p_index)
    names = config_point_names() | {"plant.p_index"}
    assert all(set(s["values"]) == names for s in states)
    assert all(set(x["values"]) <= names and x["t"] > 0 for x in lines if "values" in x)
    assert lines[-1]["kind"] == "end" and lines[-1]["dropped"] == 0
    assert not [x for x in lines if x["kind"] == "event"]  # pings change nothing: no events
    assert any("plant.p_index" in entry["values"] for entry in lines[1:])  # it changes


def test_every_hil_sim_command_takes_minus_h() -> None:
    """The README says every command has -h; hil-sim answered "No such option '-h'"."""
    from click.testing import CliRunner

    from hil_sim.cli import main

    runner = CliRunner()
    for args in [[], *([name] for name in main.commands)]:  # type: ignore[attr-defined]
        result = runner.invoke(main, [*args, "-h"])
        assert result.exit_code == 0 and "Usage: " in result.output, (args, result.output)
