"""``hil-sim fleet``: three rooms from the real CLI, read by a real Modbus client, their configs
checked by the real ``pumproom-agent check``, one agent uplinking through a private Mosquitto."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from hil_sim.fleet_rooms import room_specs
from tests.procs import ROOT, Mosquitto, Subscriber, _stop_process, free_port, wait_for

ROOMS = 3
SEED = 7


class FleetProc:
    """``hil-sim fleet`` as a subprocess on free ports, its configs naming ``broker_port``."""

    def __init__(self, out: Path, broker_port: int) -> None:
        self.out = out
        self.log = out.parent / "fleet.log"
        args = [sys.executable, "-m", "hil_sim.cli", "fleet", "--rooms", str(ROOMS)]
        args += ["--seed", str(SEED), "--out", str(out), "--base-port", "0"]
        args += ["--status-base-port", "0", "--broker", f"mqtt://127.0.0.1:{broker_port}"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_for(lambda: "fleet ready" in self.text(), 30, "the fleet to be ready")
        self.manifest: dict[str, Any] = json.loads((out / "fleet.json").read_text())

    def text(self) -> str:
        assert self.proc.poll() is None, f"fleet exited: {self.log.read_text()[-2000:]}"
        return self.log.read_text()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mq = Mosquitto(tmp_path_factory.mktemp("mq")).start()
    try:
        yield mq
    finally:
        mq.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[FleetProc]:
    proc = FleetProc(tmp_path_factory.mktemp("fleet") / "out", broker.port)
    try:
        yield proc
    finally:
        _stop_process(proc.proc)


def _read(port: int, unit: int, address: int) -> int:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=1)
    try:
        assert client.connect(), f"no Modbus TCP server on port {port}"
        rr = client.read_holding_registers(address, count=1, device_id=unit)
        assert not rr.isError(), f"port {port} unit {unit} register {address}: {rr}"
        return int(rr.registers[0])
    finally:
        client.close()


def test_each_room_answers_with_its_own_values(fleet: FleetProc) -> None:
    rooms = fleet.manifest["rooms"]
    specs = room_specs(ROOMS, SEED)
    assert [r["params"]["setpoint_mpa"] for r in rooms] == [s.setpoint_mpa for s in specs]
    setpoints = []
    for room in rooms:
        port = int(room["modbus_tcp"].rsplit(":", 1)[1])
        # Wilo 40068 setpoint 1 (PDU 67), 0.1 bar = 0.01 MPa per count
        setpoints.append(_read(port, 1, 67) / 100)
        # the outlet transmitter (RS-485 unit 22) answers behind the room's gateway, 0.1 kPa
        assert 0 < _read(port, 22, 4) * 1e-4 < 1.6
    assert setpoints == [r["params"]["setpoint_mpa"] for r in rooms]
    assert len(set(setpoints)) > 1, f"rooms not varied: {setpoints}"
    assert len({r["modbus_tcp"] for r in rooms}) == ROOMS
    assert len({r["site"] for r in rooms}) == ROOMS


def test_written_configs_pass_the_agent_check(fleet: FleetProc) -> None:
    for room in fleet.manifest["rooms"]:
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "check", "-c", room["config"]],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 0, f"{room['config']}: {done.stdout}{done.stderr}"
        assert "ok: 9 devices" in done.stdout


def test_an_agent_on_one_room_uplinks_its_values(
    fleet: FleetProc, broker: Mosquitto, tmp_path: Path
) -> None:
    room = fleet.manifest["rooms"][1]
    sub = Subscriber(broker.port, room["site"]).start()
    args = [sys.executable, "-m", "agent.cli", "run", "-c", room["config"]]
    args += ["--set", f"status.listen=127.0.0.1:{free_port()}"]
    with open(tmp_path / "agent.log", "wb") as log:
        agent = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:

        def setpoint_uplinked() -> Any:
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()[-2000:]
            latest = sub.latest_by_point()
            return "setpoint" in latest and "p_out" in latest and latest

        latest = wait_for(setpoint_uplinked, 45, "the room's setpoint and p_out uplinked")
        assert latest["setpoint"][1] == pytest.approx(room["params"]["setpoint_mpa"])
        assert latest["setpoint"][2] == "g"
        topics = {topic for topic, _, _ in sub.snapshot()}
        assert all(f"/{room['site']}/" in t for t in topics)
    finally:
        assert _stop_process(agent, timeout_s=30) == 0
        sub.stop()


def test_sigterm_stops_the_fleet_cleanly(fleet: FleetProc) -> None:
    port = int(fleet.manifest["rooms"][0]["modbus_tcp"].rsplit(":", 1)[1])
    fleet.proc.send_signal(signal.SIGTERM)
    assert fleet.proc.wait(15) == 0
    assert "hil-sim fleet stopped" in fleet.log.read_text()
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    assert not client.connect(), "a room still listens after the fleet stopped"
    client.close()
