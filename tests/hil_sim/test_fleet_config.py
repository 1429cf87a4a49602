"""Fleet room parameters, a room's serving, and the per-room agent configs (in-process)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from hil_sim.fleet import Fleet, FleetOptions
from hil_sim.fleet_config import load_example, room_config, write_fleet_configs
from hil_sim.fleet_rooms import HEIGHT_M, HOUSEHOLDS, FleetRoom, room_specs
from hil_sim.hydraulics import M_PER_MPA
from tests.procs import ROOT


def test_the_seed_decides_the_rooms() -> None:
    assert room_specs(20, 3) == room_specs(20, 3)
    assert room_specs(20, 3) != room_specs(20, 4)
    specs = room_specs(200, 1)
    assert all(HOUSEHOLDS[0] <= s.households <= HOUSEHOLDS[1] for s in specs)
    assert all(HEIGHT_M[0] <= s.height_m <= HEIGHT_M[1] for s in specs)
    assert {s.pumps_in_service for s in specs} == {2, 3}
    for s in specs:  # lift + 0.10 residual + 0.05 friction + 0.10 margin, in 0.01 MPa steps
        assert s.setpoint_mpa == pytest.approx(s.height_m / M_PER_MPA + 0.25, abs=0.005)
    with pytest.raises(ValueError, match="at least 1"):
        room_specs(0, 1)


def test_a_room_plays_its_parameters() -> None:
    spec = next(s for s in room_specs(50, 2) if s.pumps_in_service == 2)
    room = FleetRoom(spec, "127.0.0.1", 0, 10 * 3600.0)
    for _ in range(300):  # 30 s of plant time
        room.advance(0.1, 0.1)
    plant = room.plant
    assert plant.setpoint == spec.setpoint_mpa
    assert plant.params.households == spec.households
    assert plant.params.riser.height_m == spec.height_m
    assert plant.pumps[2].mode == 0 and plant.pumps[2].drive.f_out_hz == 0.0
    assert abs(plant.p_out - spec.setpoint_mpa) < 0.05, plant.summary()


def test_without_opcua_the_analyser_and_its_alarms_are_left_out(tmp_path: Path) -> None:
    example = load_example()
    ua = next(d for d in example["devices"] if d["transport"] == "opcua")
    ua_points = {p["name"] for p in ua["points"]}
    assert ua_points & set(example["alarms"]["points"]), "the example has no alarm on UA points"
    room = FleetRoom(room_specs(1, 1)[0], "127.0.0.1", 16321, 0.0)
    write_fleet_configs(
        tmp_path, [room], site_prefix="t", broker="mqtt://127.0.0.1:1", status_base_port=None
    )
    doc = yaml.safe_load((tmp_path / "room-001" / "agent.yaml").read_text())
    assert {d["transport"] for d in doc["devices"]} == {"modbus-tcp"}
    assert {d["port"] for d in doc["devices"]} == {16321}
    assert not ua_points & set(doc["alarms"]["points"])
    assert doc["status"] == {"enabled": False}
    assert doc["site"] == {"id": "t-001", "gateway_id": "gw-t-001"}
    assert example == load_example(), "room_config changed the example it was given"


def test_rtu_and_opcua_configs_pass_the_agent_check(tmp_path: Path) -> None:
    options = FleetOptions(
        rooms=2, seed=5, base_port=16400, rtu_dir=tmp_path, opcua=True, out=tmp_path
    )
    fleet = Fleet(options, announce=lambda line: None)  # not started: configs only
    manifest = write_fleet_configs(
        tmp_path,
        fleet.rooms,
        site_prefix="f",
        broker="mqtt://127.0.0.1:1883",
        status_base_port=18400,
    )
    rooms = json.loads(manifest.read_text())["rooms"]
    assert [r["modbus_tcp"] for r in rooms] == ["127.0.0.1:16400", "127.0.0.1:16401"]
    assert rooms[1]["opcua"] == "opc.tcp://127.0.0.1:17401/pumproom/hil-sim/"
    doc = yaml.safe_load(Path(rooms[1]["config"]).read_text())
    rtu = [d for d in doc["devices"] if d["transport"] == "modbus-rtu"]
    assert {d["port"] for d in rtu} == {str(tmp_path / "room-002" / "ttyRTU0")}
    assert doc["status"] == {"listen": "127.0.0.1:18401"}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check", "-c", rooms[1]["config"]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 10 devices" in done.stdout


def test_impossible_ports_are_refused() -> None:
    with pytest.raises(ValueError, match="no port for room 600"):
        Fleet(FleetOptions(rooms=600, base_port=65000))
    with pytest.raises(ValueError, match="OPC UA needs --base-port"):
        Fleet(FleetOptions(rooms=2, base_port=0, opcua=True))
    unknown = {"devices": [{"name": "x", "transport": "bacnet"}]}
    room = FleetRoom(room_specs(1, 1)[0], "127.0.0.1", 1, 0.0)
    with pytest.raises(ValueError, match="device 'x': transport 'bacnet'"):
        room_config(unknown, room, None)  # type: ignore[arg-type]


async def test_a_room_serves_the_plant_as_of_its_latest_tick() -> None:
    """Devices are re-served when asked after a tick (LazyUnits): never a stale value."""
    room = FleetRoom(room_specs(1, 9)[0], "127.0.0.1", 0, 10 * 3600.0)
    await room.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=room.tcp_port, timeout=2, retries=0)
    try:
        assert await client.connect()

        async def p_out_f() -> float:  # cabinet extension block: float32 at PDU 302, MPa
            rr = await client.read_holding_registers(302, count=2, device_id=1)
            assert not rr.isError(), rr
            return float(struct.unpack(">f", struct.pack(">HH", *rr.registers))[0])

        async def p_out_tx() -> float:  # outlet transmitter behind the gateway, 0.1 kPa
            rr = await client.read_holding_registers(4, count=1, device_id=22)
            assert not rr.isError(), rr
            return int(rr.registers[0]) * 1e-4

        seen = set()
        for _ in range(5):
            room.advance(1.0, 0.1)
            assert await p_out_f() == pytest.approx(room.plant.p_out_meas, abs=1e-6)
            assert await p_out_tx() == pytest.approx(room.plant.p_out_tx, abs=1e-4)
            seen.add(await p_out_f())
        assert len(seen) > 1, "the served pressure never moved"
        # a master's write reaches the plant and reads back (Wilo 40068 setpoint, 0.01 MPa)
        assert not (await client.write_register(67, 45, device_id=1)).isError()
        assert room.plant.setpoint == pytest.approx(0.45)
        room.advance(0.1, 0.1)
        rr = await client.read_holding_registers(67, count=1, device_id=1)
        assert rr.registers == [45]
    finally:
        client.close()
        await room.stop()


async def test_with_rtu_the_rs485_units_answer_on_the_room_pty_only(tmp_path: Path) -> None:
    link = tmp_path / "room-001" / "ttyRTU0"
    room = FleetRoom(room_specs(1, 4)[0], "127.0.0.1", 0, 10 * 3600.0, rtu_link=str(link))
    await room.start()
    tcp = AsyncModbusTcpClient("127.0.0.1", port=room.tcp_port, timeout=2, retries=0)
    rtu = AsyncModbusSerialClient(str(link), baudrate=19200, parity="N", timeout=2, retries=0)
    try:
        assert await tcp.connect() and await rtu.connect()
        room.advance(1.0, 0.1)
        rr = await rtu.read_holding_registers(4, count=1, device_id=22)  # outlet transmitter
        assert not rr.isError(), rr
        assert rr.registers[0] * 1e-4 == pytest.approx(room.plant.p_out_tx, abs=1e-4)
        rr = await tcp.read_holding_registers(4, count=1, device_id=22)
        assert rr.isError() and rr.exception_code == 0x0B  # not behind the TCP gateway now
        assert not (await tcp.read_holding_registers(67, count=1, device_id=1)).isError()
    finally:
        tcp.close()
        rtu.close()
        await room.stop()
