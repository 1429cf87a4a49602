"""The JSON-lines control port and scenarios, with real Modbus clients seeing the faults."""

from __future__ import annotations

import asyncio
import json

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from hil_sim.scenario import parse_scenario
from hil_sim.scenario_run import ScenarioRunner
from hil_sim.sim import Simulator


class Control:
    """A control-port client: one JSON line out, one JSON line back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def __call__(self, cmd: dict | str) -> dict:
        line = cmd if isinstance(cmd, str) else json.dumps(cmd)
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        return json.loads(await asyncio.wait_for(self.reader.readline(), 5.0))

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def control(sim: Simulator):
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.control_port)
    ctl = Control(reader, writer)
    try:
        yield ctl
    finally:
        await ctl.close()


async def test_ping_truth_and_errors(sim: Simulator, control: Control) -> None:
    assert (await control({"cmd": "ping"}))["ok"] is True
    answer = await control({"cmd": "truth"})
    assert answer["ok"] and answer["values"] == json.loads(json.dumps(sim.truth()))
    assert {"p_out", "flow", "pump1.freq", "wq.turbidity", "room.door"} <= set(answer["values"])
    bad = await control("{not json")
    assert bad["ok"] is False and "JSON" in bad["error"]
    assert (await control({"cmd": "nope"}))["ok"] is False
    assert (await control({"cmd": "set", "name": "nope", "value": 1}))["ok"] is False
    assert (await control({"cmd": "set", "name": "setpoint", "value": 5.0}))["ok"] is False


async def test_stats_and_faults_seen_by_a_modbus_client(sim: Simulator, control: Control) -> None:
    assert sim.tcp_server is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.tcp_server.port, timeout=0.5, retries=0)
    assert await client.connect()
    try:
        assert (await control({"cmd": "reset_stats"}))["ok"]
        for _ in range(3):
            assert not (await client.read_holding_registers(25, count=2, device_id=1)).isError()
        stats = await control({"cmd": "stats"})
        assert stats["stats"]["tcp"]["1"]["3"] == 3

        fault = {"table": "input_register", "address": 0x1010, "code": 4}
        answer = await control({"cmd": "fault", "unit": 2, "exception": fault})
        assert answer["ok"]
        rr = await client.read_input_registers(0x1010, count=2, device_id=2)
        assert rr.isError() and rr.exception_code == 4
        rr = await client.read_holding_registers(0x1010, count=2, device_id=2)  # not faulted
        assert not rr.isError()

        assert (await control({"cmd": "fault", "unit": 1, "silent": True}))["ok"]
        with pytest.raises(ModbusIOException):  # no answer: timeout
            await client.read_holding_registers(25, count=1, device_id=1)
        assert (await control({"cmd": "clear_faults"}))["ok"]
        client.close()
        assert await client.connect()
        assert not (await client.read_holding_registers(25, count=1, device_id=1)).isError()
        assert not (await client.read_input_registers(0x1010, count=2, device_id=2)).isError()
        bad = await control({"cmd": "fault", "unit": 1, "bogus": 1})
        assert bad["ok"] is False
    finally:
        client.close()


async def test_a_fault_on_a_list_of_units_applies_to_all_at_once(
    sim: Simulator, control: Control
) -> None:
    answer = await control(
        {"cmd": "fault", "unit": [11, 12, 21], "transport": "rtu", "silent": True}
    )
    assert answer["ok"], answer
    rtu = sim.faults["rtu"]
    assert [rtu.unit(u).silent for u in (11, 12, 21, 22)] == [True, True, True, False]
    bad = await control({"cmd": "fault", "unit": [13, "x"], "transport": "rtu", "silent": True})
    assert bad["ok"] is False and "bad unit 'x'" in bad["error"]
    assert rtu.unit(13).silent is False  # a bad list faults nothing


async def test_gateway_and_once_per_connection_faults_seen_by_a_modbus_client(
    sim: Simulator, control: Control
) -> None:
    """The control port scripts a TCP/RTU gateway whose unit 2 is dead (exception 0x0B, then
    0x0A, Modbus Application Protocol V1.1b3 §7) and a device that answers one request per
    connection; an independent master (pymodbus) sees both."""
    assert sim.tcp_server is not None
    port = sim.tcp_server.port
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
    assert await client.connect()
    try:
        for code in (0x0B, 0x0A):
            assert (await control({"cmd": "fault", "unit": 2, "gateway_error": code}))["ok"]
            rr = await client.read_input_registers(0x1010, count=2, device_id=2)
            assert rr.isError() and rr.exception_code == code
            assert not (await client.read_holding_registers(25, count=1, device_id=1)).isError()
        assert (await control({"cmd": "fault", "unit": 2, "gateway_error": 3}))["ok"] is False
        assert (await control({"cmd": "fault", "unit": 2, "gateway_error": 0}))["ok"]
        assert not (await client.read_input_registers(0x1010, count=2, device_id=2)).isError()
        answer = await control({"cmd": "fault", "transport": "tcp", "once_per_connection": True})
        assert answer["ok"]
        client.close()
        once = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        assert await once.connect()
        assert not (await once.read_holding_registers(25, count=1, device_id=1)).isError()
        with pytest.raises(ModbusIOException):  # the device closed the connection
            await once.read_holding_registers(25, count=1, device_id=1)
        once.close()
    finally:
        client.close()
        await control({"cmd": "clear_faults"})


async def test_freeze_and_set(sim: Simulator, control: Control) -> None:
    assert (await control({"cmd": "freeze", "on": True}))["frozen"] is True
    before = sim.truth()
    t_before = sim.plant.t_s
    sim.advance(10.0)
    assert sim.truth() == before and sim.plant.t_s == t_before
    assert (await control({"cmd": "freeze", "on": False}))["frozen"] is False

    assert (await control({"cmd": "set", "name": "demand_factor", "value": 2.5}))["ok"]
    sim.advance(120.0)
    assert sim.plant.running_count >= 2
    assert (await control({"cmd": "set", "name": "flood", "value": True}))["ok"]
    await sim.opcua.update()
    assert sim.truth()["room.flood"] is True
    assert (await control({"cmd": "set", "name": "p_out.stuck", "value": True}))["ok"]
    stuck = sim.truth()["p_out"]
    sim.advance(5.0)
    assert sim.truth()["p_out"] == stuck
    assert sim.truth()["cabinet.p_out_f"] != (await control({"cmd": "truth"}))["values"]["p_in"]
    assert (await control({"cmd": "set", "name": "pump1.trip", "value": 18}))["ok"]
    sim.advance(1.0)
    assert sim.truth()["pump1.fault_code"] == 18 and sim.truth()["pump1.error"] is True


async def test_scenario_actions_run_at_plant_time(sim: Simulator) -> None:
    scenario = parse_scenario(
        [
            {"at": 40, "cmd": "set", "name": "suction_dip_mpa", "value": 0.3},
            {"at": 35, "cmd": "fault", "unit": 21, "transport": "rtu", "delay_s": 0.2},
        ]
    )
    sim.runner = ScenarioRunner(sim, scenario)  # as if given on the command line
    assert [e.at_s for e in sim.runner.timed] == [35.0, 40.0]
    sim.advance(4.0)  # plant time 34 s
    assert sim.plant.suction_dip_mpa == 0.0
    sim.advance(10.0)
    assert sim.faults["rtu"].unit(21).delay_s == 0.2
    assert sim.plant.suction_dip_mpa == 0.3
    sim.advance(20.0)  # suction lost: dry run after 5 s, then the drives ramp down
    assert sim.plant.dry_run and sim.plant.running_count == 0
    assert sim.truth()["alarm.dry_run"] is True


@pytest.mark.parametrize(
    "bad", [{"at": 1}, [{"cmd": "ping"}], [{"at": -1, "cmd": "ping"}], [{"at": 1, "cmd": 3}]]
)
def test_scenario_validation(bad) -> None:
    with pytest.raises(ValueError):
        parse_scenario(bad)


def test_old_format_event_shape() -> None:
    (event,) = parse_scenario([{"at": 2, "cmd": "set", "name": "door", "value": True}]).events
    assert (event.at_s, event.name, event.command) == (
        2.0,
        "0:set",
        {"cmd": "set", "name": "door", "value": True},
    )


def test_shipped_example_scenario_is_valid() -> None:
    from pathlib import Path

    from hil_sim.scenario import load_scenario

    path = Path(__file__).resolve().parents[2] / "hil_sim" / "scenarios" / "example.yaml"
    events = load_scenario(path).events
    assert len(events) == 11 and events[0].command == {
        "cmd": "set",
        "name": "demand_factor",
        "value": 2.5,
    }


def test_the_analyser_status_command_reaches_the_opcua_server() -> None:
    """Fix: ``set analyser_status`` set an attribute nobody served (sim.opcua_status); the OPC UA
    facade serves ``opcua.analyser_status``."""
    from hil_sim import commands
    from hil_sim.sim import SimOptions

    sim = Simulator(SimOptions(rtu_link=None, control_port=None), announce=lambda line: None)
    assert commands.execute(sim, {"cmd": "set", "name": "analyser_status", "value": 4})["ok"]
    assert sim.opcua.analyser_status == 4
