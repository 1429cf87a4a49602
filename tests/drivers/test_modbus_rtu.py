"""ModbusDriver over Modbus RTU: two unit ids on one pty link served by the simulator."""

from __future__ import annotations

import pytest

from agent.core.model import ConnectError, ConnectionLost, Quality
from drivers import create
from drivers.modbus.link import rtu_frame_gap_s
from drivers.specs import ModbusRtuConnection
from hil_sim.modbus import Faults, ModbusRtuServer, RequestCounters
from tests.drivers.conftest import VALUES, make_bank, typed_points

TIMEOUT = 0.5  # generous: other suites may share the 2 cores
# Parity "N": this sandbox's kernel refuses PARENB on a pty (tcsetattr EINVAL); the pty ignores
# line settings anyway, the server only uses them to pace frames.
PARITY = "N"


@pytest.fixture
async def rtu(tmp_path):
    link = str(tmp_path / "ttyRS485")
    server = ModbusRtuServer(
        link, {1: make_bank(1), 2: make_bank(2)}, Faults(), RequestCounters(), 19200, PARITY
    )
    await server.start()
    spec = ModbusRtuConnection(
        name=f"rtu:{link}", port=link, baudrate=19200, parity=PARITY, timeout_s=TIMEOUT
    )
    drv = create(spec)
    try:
        await drv.connect()
        yield server, drv
    finally:
        await drv.close()
        await server.stop()


async def test_two_units_on_one_link(rtu):
    server, drv = rtu
    points = typed_points(1) + typed_points(2)
    plan = drv.plan(points)
    assert plan.request_count == 8  # 4 tables x 2 units, never merged across units
    got = await drv.read(plan)
    assert server.counters.total("rtu") == plan.request_count
    for r in got:
        assert r.quality is Quality.GOOD, r
        assert r.value == pytest.approx(VALUES[r.point.split(".", 1)[1]])
    p = next(p for p in points if p.name == "u2.f32_cdab")
    await drv.write(p, 7.75)
    got = {r.point: r for r in await drv.read(plan)}
    assert got["u2.f32_cdab"].value == 7.75 and got["u1.f32_cdab"].value == -12.5


async def test_silent_unit_does_not_stop_the_bus(rtu):
    server, drv = rtu
    plan = drv.plan(typed_points(1) + typed_points(2))
    server.faults.unit(1).silent = True
    reasons = []
    for _ in range(4):  # never ConnectionLost on RTU: the port is there, unit 2 answers
        got = await drv.read(plan)
        assert all(r.quality is Quality.GOOD for r in got if r.point.startswith("u2.")), got
        u1 = {(r.quality, r.reason) for r in got if r.point.startswith("u1.")}
        assert len(u1) == 1 and next(iter(u1))[0] is Quality.COMM_FAIL
        reasons.append(next(iter(u1))[1])
    # two reads time out, then the unit is offline: skipped, then probed every second read
    assert reasons == ["timeout", "timeout", "offline", "offline"]
    # one timeout per read at most (the unit's other requests in the read are skipped), none
    # in the skipped read
    assert drv.counters()["timeouts"] == 3
    assert drv.counters()["devices"]["dev1"]["offline"] is True
    server.faults.unit(1).silent = False
    back = [all(r.quality is Quality.GOOD for r in await drv.read(plan)) for _ in range(2)]
    assert back[-1], "an offline unit that answers again is back within two reads"
    assert drv.counters()["devices"]["dev1"]["offline"] is False


async def test_exception_on_rtu_splits_only_that_unit(rtu):
    server, drv = rtu
    plan = drv.plan(typed_points(1) + typed_points(2))
    server.faults.unit(2).exceptions[("holding_register", 10)] = 4
    got = {r.point: r for r in await drv.read(plan)}
    assert got["u2.i64"].reason == "modbus:exception:4"
    assert sum(r.quality is not Quality.GOOD for r in got.values()) == 1


async def test_port_vanishes_then_comes_back(rtu):
    server, drv = rtu
    plan = drv.plan(typed_points(1)[:1])
    await server.stop()
    with pytest.raises(ConnectionLost):
        for _ in range(3):
            await drv.read(plan)
    await drv.close()
    with pytest.raises(ConnectError):
        await drv.connect()  # the symlink is gone
    await server.start()
    await drv.connect()
    assert (await drv.read(plan))[0].value == pytest.approx(1600.0)
    assert drv.counters()["reconnects"] == 1


@pytest.mark.parametrize(
    ("baud", "parity", "stopbits", "expected_s"),
    [
        (9600, "E", 1, 3.5 * 11 / 9600),  # 8E1: 11 bits per character
        (9600, "N", 1, 3.5 * 10 / 9600),
        (19200, "N", 2, 3.5 * 11 / 19200),
        (38400, "E", 1, 0.00175),  # fixed above 19200 baud (Serial Line V1.02 §2.5.1.1)
    ],
)
def test_rtu_frame_gap(baud, parity, stopbits, expected_s):
    spec = ModbusRtuConnection("rtu", "/dev/null", baud, parity, stopbits)
    assert rtu_frame_gap_s(spec) == pytest.approx(expected_s)


def test_factory_kinds():
    from drivers.modbus.client import ModbusDriver
    from drivers.opcua import OpcUaDriver
    from drivers.specs import ModbusTcpConnection, OpcUaConnection

    assert isinstance(create(ModbusTcpConnection("t", "127.0.0.1")), ModbusDriver)
    assert isinstance(create(ModbusRtuConnection("r", "/dev/ttyUSB0")), ModbusDriver)
    assert isinstance(create(OpcUaConnection("o", "opc.tcp://127.0.0.1:4840/")), OpcUaDriver)
    with pytest.raises(TypeError):
        create("modbus://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        create(ModbusTcpConnection("t", "127.0.0.1")).plan(
            [create(OpcUaConnection("o", "opc.tcp://127.0.0.1:4840/"))]
        )


async def test_a_port_held_by_another_program_is_named_as_such() -> None:
    """A technician's ``read`` on the bus the agent holds printed pyserial's "Could not
    exclusively lock port"; it now says the port is in use and what to do."""
    import os

    import serial

    from drivers.modbus.rtu_port import RtuPort

    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = serial.Serial(path, 19200, exclusive=True)
    try:
        port = RtuPort(ModbusRtuConnection("bus", path, 19200))
        with pytest.raises(ConnectError, match=f"{path} is in use by another program"):
            await port.open()
    finally:
        holder.close()
        os.close(master)
        os.close(slave)
