"""Catalogue faults change what a real Modbus master (pymodbus, over TCP and the RTU pty) reads,
and undo puts it back: a sample from every group."""

from __future__ import annotations

import random

import pytest
from pymodbus.exceptions import ModbusIOException

from hil_sim.faults import CATALOGUE, Active
from hil_sim.sim import Simulator
from tests.hil_sim.test_servers import read_point, rtu_client, tcp_client


class Master:
    """One TCP and one RTU pymodbus client; reads a point by its name, as a master decodes it."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def __aenter__(self) -> Master:
        self.tcp = await tcp_client(self.sim)
        self.rtu = await rtu_client(self.sim)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.tcp.close()
        self.rtu.close()

    async def read(self, name: str):
        for dev in (*self.sim.tcp_devices, *self.sim.rtu_devices):
            if name in dev.map.by_name:
                client = self.tcp if dev in self.sim.tcp_devices else self.rtu
                return await read_point(client, dev.unit_id, dev.map.by_name[name])
        raise KeyError(name)


def inject(sim: Simulator, fault: str, **params) -> Active:
    spec = CATALOGUE[fault]
    active = spec.apply(sim, spec.check_params(params), random.Random(1))
    sim.refresh()
    return active


async def test_sensor_faults_distort_the_reading_and_undo_restores_it(sim: Simulator) -> None:
    async with Master(sim) as m:
        sim.frozen = True  # the plant holds still: every difference is the fault's
        true_p_out = await m.read("p_out")
        assert 0.2 < true_p_out < 0.6
        sim.frozen = False
        cases = [
            ("sensor_offset", {"target": "p_out", "offset": 0.1}, true_p_out + 0.1),
            ("sensor_gain", {"target": "p_out", "gain": 0.5}, true_p_out * 0.5),
            ("sensor_stuck", {"target": "p_out", "value": 0.33}, 0.33),
            ("sensor_stuck_zero", {"target": "p_out"}, 0.0),
            ("loop_open", {"target": "p_out"}, -0.4),  # 0 mA on 0–1.6 MPa (NE 43 < 3.6 mA)
            ("loop_short", {"target": "p_out"}, 1.8),  # 22 mA (NE 43 > 21 mA)
            ("wrong_scaling", {"target": "p_out", "factor": 10.0}, min(true_p_out * 10, 3.2767)),
        ]
        for fault, params, expected in cases:
            sim.frozen = False
            active = inject(sim, fault, **params)
            sim.frozen = True
            assert await m.read("p_out") == pytest.approx(expected, abs=2e-4), fault
            assert sim.truth()["p_out"] == pytest.approx(expected, abs=2e-4), fault
            sim.frozen = False
            active.undo()
            sim.refresh()
            assert await m.read("p_out") == pytest.approx(true_p_out, abs=2e-4), fault
        sim.frozen = False
        # a flow meter float (TCP, CDAB) with noise: readings scatter far beyond the meter's own
        active = inject(sim, "sensor_noise", target="flow", sigma=5.0)
        reads = []
        for _ in range(6):
            sim.refresh()
            reads.append(await m.read("flow"))
        assert max(reads) - min(reads) > 2.0
        active.undo()
        # drift grows with plant time
        inject(sim, "sensor_drift", target="p_in", rate_per_h=36.0)  # 0.01 MPa per plant second
        sim.advance(10.0)
        drifted = await m.read("p_in")
        assert drifted - sim.plant.p_in_meas == pytest.approx(0.1, abs=0.002)


async def test_comms_faults_per_unit_and_per_bus(sim: Simulator) -> None:
    async with Master(sim) as m:
        busy = inject(sim, "comms_exception", target=2)  # default: 6 SLAVE DEVICE BUSY
        rr = await m.tcp.read_input_registers(0x1010, count=2, device_id=2)
        assert rr.isError() and rr.exception_code == 6
        assert not (await m.tcp.read_holding_registers(25, count=1, device_id=1)).isError()
        busy.undo()
        assert not (await m.tcp.read_input_registers(0x1010, count=2, device_id=2)).isError()

        bus = inject(sim, "comms_silent", target="rtu")
        for unit in (11, 21):
            with pytest.raises(ModbusIOException):
                await m.rtu.read_holding_registers(0x0004, count=1, device_id=unit)
        bus.undo()
        rr = await m.rtu.read_holding_registers(0x0004, count=1, device_id=21)
        assert not rr.isError()


async def test_actuator_power_room_quality_and_hydraulic_faults(sim: Simulator) -> None:
    async with Master(sim) as m:
        trip = inject(sim, "drive_trip", target="pump2", code=11)
        sim.advance(0.5)
        assert await m.read("pump2.fault_code") == 11
        trip.undo()
        sim.advance(0.5)
        assert await m.read("pump2.fault_code") == 0

        status = inject(sim, "analyser_status", target="cl500", status=4)
        assert await m.read("cl500.status") == 4
        status.undo()
        sim.refresh()
        assert await m.read("cl500.status") == 1
        ua = inject(sim, "analyser_status", status=5)  # OPC UA side (served on its update)
        assert sim.opcua.analyser_status == 5
        ua.undo()
        assert sim.opcua.analyser_status == 1

        blip = inject(sim, "power_blip", duration_s=2.0)
        assert blip.ends_at_s == pytest.approx(sim.plant.t_s + 2.0)
        sim.advance(0.5)
        assert await m.read("di.phase_ok") is False  # the cabinet rides through on its UPS
        with pytest.raises(ModbusIOException):  # the drives are off the bus
            await m.rtu.read_holding_registers(0x2102, count=1, device_id=11)
        assert sim.truth()["pump1.fault_code"] == 10  # undervoltage
        sim.advance(2.0)
        blip.undo()  # what the runner does at ends_at_s
        sim.advance(0.5)
        assert await m.read("di.phase_ok") is True
        assert await m.read("pump1.fault_code") == 0  # restarted by itself

        chatter = inject(sim, "flood", chatter_s=0.2)
        assert chatter.tick is not None
        states = set()
        for _ in range(40):
            sim.advance(0.1)
            chatter.tick()
            states.add(sim.plant.room.flood)
        assert states == {True, False}
        chatter.undo()
        assert sim.plant.room.flood is False

        before = await m.read("flow")
        burst = inject(sim, "burst", flow_m3h=30.0)
        sim.advance(5.0)
        assert await m.read("flow") > before + 15.0
        burst.undo()
        loss = inject(sim, "suction_loss")
        sim.advance(15.0)  # below 0.03 MPa for > 5 s: dry run, every pump stops
        assert await m.read("di.suction_low") is True
        assert await m.read("alarm.dry_run") is True
        loss.undo()
        sim.advance(10.0)
        assert await m.read("alarm.dry_run") is False
