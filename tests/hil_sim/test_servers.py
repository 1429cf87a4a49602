"""Served values decode to the ground truth through real clients; writes reach the plant."""

from __future__ import annotations

import statistics
import struct

from asyncua import Client
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from hil_sim.devices.opcua_server import NAMESPACE_URI, UA_POINTS
from hil_sim.devices.registers import MapPoint, decode
from hil_sim.sim import Simulator

READERS = {
    "holding_register": "read_holding_registers",
    "input_register": "read_input_registers",
    "coil": "read_coils",
    "discrete_input": "read_discrete_inputs",
}


async def read_point(client, unit: int, p: MapPoint):
    rr = await getattr(client, READERS[p.table])(p.address, count=p.width, device_id=unit)
    assert not rr.isError(), (p.name, rr)
    if p.table in ("coil", "discrete_input"):
        return bool(rr.bits[0])
    return decode(p, rr.registers)


async def tcp_client(sim: Simulator) -> AsyncModbusTcpClient:
    assert sim.tcp_server is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.tcp_server.port, timeout=1, retries=0)
    assert await client.connect()
    return client


async def rtu_client(sim: Simulator) -> AsyncModbusSerialClient:
    # Parity "N" on the client: this sandbox's kernel refuses PARENB on a pty (tcsetattr EINVAL);
    # a pty ignores line settings anyway (the server paces frames for 8E1).
    client = AsyncModbusSerialClient(
        sim.options.rtu_link or "", baudrate=19200, parity="N", timeout=1, retries=0
    )
    assert await client.connect()
    return client


async def test_tcp_devices_decode_to_truth(sim: Simulator) -> None:
    truth = sim.truth()
    client = await tcp_client(sim)
    try:
        for dev in sim.tcp_devices:
            for p in dev.map.points:
                value = await read_point(client, dev.unit_id, p)
                key = p.name.removesuffix(".hr")
                assert value == truth[key], p.name
        # Independent check of the CDAB float: swap the words by hand.
        rr = await client.read_input_registers(0x1010, count=2, device_id=2)
        lo, hi = rr.registers
        (flow,) = struct.unpack(">f", struct.pack(">HH", hi, lo))
        assert flow == truth["flow"]
        assert abs(flow - sim.plant.flow_meas_m3h) < 1e-5 * max(1.0, flow)
        rr = await client.read_holding_registers(25, count=1, device_id=1)  # Wilo 40026
        assert rr.registers[0] == round(sim.plant.p_out_meas * 100)
        rr = await client.read_holding_registers(170, count=1, device_id=1)  # unmapped
        assert rr.isError() and rr.exception_code == 2
    finally:
        client.close()


async def test_rtu_devices_decode_to_truth(sim: Simulator) -> None:
    truth = sim.truth()
    client = await rtu_client(sim)
    try:
        for dev in sim.rtu_devices:
            for p in dev.map.points:
                assert await read_point(client, dev.unit_id, p) == truth[p.name], p.name
        rr = await client.read_holding_registers(0x3000, count=16, device_id=11)
        assert not rr.isError() and len(rr.registers) == 16
        rr = await client.read_holding_registers(0x3000, count=17, device_id=11)
        assert rr.isError() and rr.exception_code == 3  # INVT: at most 16 words per read
        rr = await client.read_holding_registers(4, count=1, device_id=22)
        raw = rr.registers[0] - (1 << 16 if rr.registers[0] >= 1 << 15 else 0)
        assert abs(raw * 0.0001 - sim.plant.p_out_meas) <= 0.00005 + 1e-12
    finally:
        client.close()


async def test_opcua_values_match_truth(sim: Simulator) -> None:
    sim.plant.room.door_open = True
    sim.advance(0.1)
    await sim.opcua.update()
    truth = sim.truth()
    async with Client(sim.opcua.endpoint, timeout=5) as client:
        assert await client.get_namespace_index(NAMESPACE_URI) == 2
        for p in UA_POINTS:
            value = await client.get_node(f"ns=2;s={p.node}").read_value()
            assert value == truth[p.name], p.name
    assert truth["room.door"] is True
    assert 0.0 < truth["wq.chlorine"] < 1.0 and 6.5 < truth["wq.ph"] < 8.5


async def test_setpoint_write_moves_the_outlet_pressure(sim: Simulator) -> None:
    client = await tcp_client(sim)
    try:
        rr = await client.write_register(67, 45, device_id=1)  # Wilo 40068 setpoint, 0.1 bar
        assert not rr.isError()
        assert sim.plant.setpoint == 0.45
        rr = await client.write_register(67, 200, device_id=1)  # 2.0 MPa: refused
        assert rr.isError() and rr.exception_code == 3
        assert sim.plant.setpoint == 0.45
        rr = await client.write_register(25, 1, device_id=1)  # actual value: read-only
        assert rr.isError() and rr.exception_code == 2
        sim.advance(60.0)
        pressures = []
        for _ in range(30):
            sim.advance(1.0)
            pressures.append(sim.truth()["p_out"])
        assert abs(statistics.fmean(pressures) - 0.45) < 0.005
        assert (await client.read_holding_registers(67, count=1, device_id=1)).registers == [45]
    finally:
        client.close()


async def test_vfd_frequency_writes_drive_the_hydraulics_in_bus_mode(sim: Simulator) -> None:
    tcp, rtu = await tcp_client(sim), await rtu_client(sim)
    try:
        # Auto mode: the cabinet owns the drives; a bus reference is stored but not followed.
        assert not (await rtu.write_register(0x2001, 4800, device_id=11)).isError()
        sim.advance(20.0)
        assert abs(sim.truth()["p_out"] - 0.40) < 0.03
        assert not (await tcp.write_register(24, 20, device_id=1)).isError()  # bus mode
        for unit in (11, 12, 13):
            assert not (await rtu.write_register(0x2001, 4800, device_id=unit)).isError()
            assert not (await rtu.write_register(0x2000, 1, device_id=unit)).isError()
        sim.advance(20.0)
        rr = await rtu.read_holding_registers(0x3000, count=2, device_id=12)
        assert rr.registers == [4800, 4800]
        rr = await rtu.read_holding_registers(0x2100, count=1, device_id=13)
        assert rr.registers == [1]  # forward running
        assert sim.truth()["p_out"] > 0.50
        for unit in (11, 12, 13):
            assert not (await rtu.write_register(0x2000, 5, device_id=unit)).isError()  # stop
        sim.advance(20.0)
        assert sim.plant.running_count == 0
        assert sim.truth()["p_out"] < 0.25
        rr = await rtu.write_register(0x2001, 6000, device_id=11)  # above 50 Hz
        assert rr.isError() and rr.exception_code == 3
    finally:
        tcp.close()
        rtu.close()
