"""ModbusDriver over Modbus TCP against the simulator's real slave server on loopback."""

from __future__ import annotations

import asyncio

import pytest

from agent.core.model import ConnectError, ConnectionLost, Quality, WriteError
from drivers import create
from drivers.modbus.client import TCP_MAX_CONSECUTIVE_TIMEOUTS, ModbusDriver
from drivers.specs import DataType, ModbusLimits, ModbusTcpConnection
from hil_sim.modbus import Faults, ModbusTcpServer, RequestCounters
from tests.drivers.conftest import HR, VALUES, make_bank, mp, typed_points

TIMEOUT = 0.5  # generous: other suites may share the 2 cores


@pytest.fixture
async def sim():
    faults, counters = Faults(), RequestCounters()
    server = ModbusTcpServer("127.0.0.1", 0, {1: make_bank(1), 2: make_bank(2)}, faults, counters)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def tcp_spec(port: int, **kw) -> ModbusTcpConnection:
    return ModbusTcpConnection(
        name="cabinet", host="127.0.0.1", port=port, timeout_s=TIMEOUT, connect_timeout_s=1.0, **kw
    )


@pytest.fixture
async def driver(sim):
    drv = create(tcp_spec(sim.port))
    assert isinstance(drv, ModbusDriver)
    await drv.connect()
    yield drv
    await drv.close()


def by_name(readings):
    return {r.point: r for r in readings}


async def test_all_types_read_in_plan_request_count(sim, driver):
    points = typed_points(1)
    plan = driver.plan(points)
    assert plan.request_count == 4  # one per table
    before = sim.counters.total("tcp")
    readings = await driver.read(plan)
    assert sim.counters.total("tcp") - before == plan.request_count
    assert [r.point for r in readings] == [p.name for p in points]
    for r in readings:
        assert r.quality is Quality.GOOD, r
        assert r.value == pytest.approx(VALUES[r.point.split(".", 1)[1]])
    assert isinstance(by_name(readings)["u1.u64_cdab"].value, int)
    assert by_name(readings)["u1.u64_cdab"].value == 2**64 - 3
    assert driver.counters()["requests"] == 4 and driver.counters()["responses"] == 4


async def test_write_round_trip_every_type(sim, driver):
    new = {
        "f32_abcd": -0.5,
        "f32_cdab": 100.25,
        "i16": 32767,
        "u16_scaled": 655.35,
        "i32_badc": 7,
        "u32_dcba": 1,
        "i64": 2**63 - 1,
        "u64_cdab": 12345678901234567890,
        "f64_cdab": -2.5e100,
        "bit3": False,
        "bit5": True,
        "coil0": False,
        "coil7": True,
    }
    points = {p.name.split(".", 1)[1]: p for p in typed_points(1)}
    for key, value in new.items():
        await driver.write(points[key], value)
    got = by_name(await driver.read(driver.plan(list(points.values()))))
    for key, value in new.items():
        assert got["u1." + key].value == pytest.approx(value), key
    # the bit writes were read-modify-write: bit3 cleared, bit5 set, nothing else touched
    assert sim.slaves[1].get("holding_register", 22, 1) == [0b100000]
    # FC05 / FC06 / FC16 all seen by the server
    assert {5, 6, 16} <= set(sim.counters.snapshot()["tcp"][1])


async def test_write_refusals(sim, driver):
    ro = mp("ro", 1, HR, 4, DataType.INT16, writable=False)
    with pytest.raises(WriteError) as e:
        await driver.write(ro, 1)
    assert e.value.reason == "not_writable"
    with pytest.raises(WriteError) as e:
        await driver.write(mp("big", 1, HR, 4, DataType.INT16), 40000)
    assert e.value.reason == "range"
    with pytest.raises(WriteError) as e:
        await driver.write(mp("lim", 1, HR, 4, DataType.INT16, valid_max=10.0), 11)
    assert e.value.reason == "range"
    # address 100 is not defined on the simulator: exception 2 (illegal data address)
    with pytest.raises(WriteError) as e:
        await driver.write(mp("nowhere", 1, HR, 100, DataType.UINT16), 1)
    assert e.value.reason == "modbus:exception:2"


async def test_exception_inside_block_costs_only_that_point(sim, driver):
    points = [p for p in typed_points(1) if p.table is HR]
    plan = driver.plan(points)
    assert plan.request_count == 1
    sim.faults.unit(1).exceptions[("holding_register", 5)] = 2
    first = by_name(await driver.read(plan))
    bad = first.pop("u1.u16_scaled")
    assert (bad.quality, bad.reason, bad.value) == (Quality.BAD_VALUE, "modbus:exception:2", None)
    assert all(r.quality is Quality.GOOD for r in first.values())
    # afterwards the point is planned around: [0, 5) and [6, 23) — two requests, no exception
    before = sim.counters.total("tcp")
    exc_before = driver.counters()["exceptions"][2]
    second = by_name(await driver.read(plan))
    assert sim.counters.total("tcp") - before == 2
    assert driver.counters()["exceptions"][2] == exc_before
    assert second["u1.u16_scaled"].reason == "modbus:exception:2"
    assert sum(r.quality is Quality.GOOD for r in second.values()) == len(points) - 1
    # re-probe: once the device answers again the point comes back
    sim.faults.unit(1).exceptions.clear()
    driver.reprobe_s = 0.0
    third = by_name(await driver.read(plan))
    assert third["u1.u16_scaled"].value == pytest.approx(42.5)


async def test_silent_unit_costs_only_its_points(sim, driver):
    points = typed_points(1)[:4] + typed_points(2)[:4]
    plan = driver.plan(points)
    assert plan.request_count == 2
    sim.faults.unit(2).silent = True
    driver.probe_interval_s = 0.0  # probing by read count only
    reasons = []
    for _ in range(TCP_MAX_CONSECUTIVE_TIMEOUTS + 1):  # unit 1's answers keep the link alive
        got = by_name(await driver.read(plan))
        u2 = {(r.quality, r.reason) for name, r in got.items() if name.startswith("u2.")}
        assert len(u2) == 1 and next(iter(u2))[0] is Quality.COMM_FAIL
        reasons.append(next(iter(u2))[1])
        assert all(r.quality is Quality.GOOD for n, r in got.items() if n.startswith("u1."))
    # behind a gateway that answers for unit 1, unit 2's silence makes it offline after two
    # reads, then it is probed (every second read here) rather than asked on every read
    assert reasons == ["timeout", "timeout", "offline", "offline"]
    assert driver.counters()["timeouts"] == 3
    sim.faults.unit(2).silent = False
    back = [all(r.quality is Quality.GOOD for r in await driver.read(plan)) for _ in range(2)]
    assert back[-1]


async def test_socket_that_never_answers_is_lost_after_n_timeouts(sim, driver):
    plan = driver.plan(typed_points(1)[:2])
    sim.faults.unit(1).silent = True
    for _ in range(TCP_MAX_CONSECUTIVE_TIMEOUTS - 1):
        got = await driver.read(plan)
        assert all(r.reason == "timeout" for r in got)
    with pytest.raises(ConnectionLost):
        await driver.read(plan)


async def test_server_stop_then_reconnect(sim):
    drv = create(tcp_spec(sim.port))
    plan = drv.plan(typed_points(1)[:2])
    await drv.connect()
    try:
        assert (await drv.read(plan))[0].quality is Quality.GOOD
        port = sim.port
        await sim.stop()
        with pytest.raises(ConnectionLost):
            for _ in range(3):  # the close may take a moment to be seen
                await drv.read(plan)
        await drv.close()
        with pytest.raises(ConnectError):
            await drv.connect()
        restarted = ModbusTcpServer("127.0.0.1", port, sim.slaves, sim.faults, sim.counters)
        await restarted.start()
        try:
            await drv.connect()
            assert (await drv.read(plan))[0].value == pytest.approx(1600.0)
            assert drv.counters()["reconnects"] == 1
        finally:
            await drv.close()
            await restarted.stop()
    finally:
        await drv.close()


async def test_small_limit_splits_requests(sim):
    drv = create(tcp_spec(sim.port, limits=((1, ModbusLimits(max_registers=16)),)))
    plan = drv.plan([p for p in typed_points(1) if p.table is HR])
    # the u64 at 14..17 does not fit in [0, 16): [0, 14) and [14, 23)
    assert [(r.address, r.count) for r in plan.requests] == [(0, 14), (14, 9)]
    await drv.connect()
    try:
        before = sim.counters.total("tcp")
        got = await drv.read(plan)
        assert sim.counters.total("tcp") - before == 2
        assert all(r.quality is Quality.GOOD for r in got)
    finally:
        await drv.close()


async def test_connect_refused_is_connect_error():
    drv = create(tcp_spec(1))  # nothing listens on port 1
    with pytest.raises(ConnectError):
        await drv.connect()
    await drv.close()


async def test_late_reply_does_not_poison_the_next_read(sim, driver):
    plan = driver.plan(typed_points(1)[:2])
    sim.faults.unit(1).late_reply_s = TIMEOUT + 0.2
    got = await driver.read(plan)
    assert all(r.reason == "timeout" for r in got)
    sim.faults.unit(1).late_reply_s = 0.0
    await asyncio.sleep(0.4)  # the stale answer arrives while nothing is pending
    got = await driver.read(plan)
    assert [r.value for r in got] == [pytest.approx(1600.0), pytest.approx(-12.5)]


async def test_wrong_transaction_id_is_comm_fail_not_a_value(sim, driver):
    plan = driver.plan(typed_points(1)[:2])
    sim.faults.unit(1).wrong_tid = True
    got = await driver.read(plan)
    # pymodbus drops a frame with a foreign transaction id, so this looks like no answer
    assert {(r.quality, r.value, r.reason) for r in got} == {(Quality.COMM_FAIL, None, "timeout")}
    sim.faults.unit(1).wrong_tid = False
    got = await driver.read(plan)
    assert all(r.quality is Quality.GOOD for r in got)


async def test_device_busy_is_transient(sim, driver):
    plan = driver.plan([p for p in typed_points(1) if p.table is HR])
    sim.faults.unit(1).exceptions[("holding_register", 0)] = 6
    got = await driver.read(plan)
    assert {(r.quality, r.reason) for r in got} == {(Quality.COMM_FAIL, "modbus:exception:6")}
    assert driver.counters()["unreadable_points"] == 0
    sim.faults.unit(1).exceptions.clear()
    before = sim.counters.total("tcp")
    assert all(r.quality is Quality.GOOD for r in await driver.read(plan))
    assert sim.counters.total("tcp") - before == 1


async def test_coil_write_refuses_non_bool(sim, driver):
    coil = next(p for p in typed_points(1) if p.name == "u1.coil0")
    for bad in (None, 2, 0.5):
        with pytest.raises(WriteError) as e:
            await driver.write(coil, bad)
        assert e.value.reason == "range"


async def test_unmapped_hole_is_learned_and_not_bridged_again(sim, driver):
    from hil_sim.modbus import RegisterBank

    bank = RegisterBank(3)  # addresses 1..4 unmapped: a block over them answers exception 2
    bank.define("holding_register", 0, [11])
    bank.define("holding_register", 5, [55])
    sim.slaves[3] = bank
    plan = driver.plan([mp("a", 3, HR, 0, DataType.UINT16), mp("b", 3, HR, 5, DataType.UINT16)])
    assert plan.request_count == 1
    before = sim.counters.total("tcp")
    assert [r.value for r in await driver.read(plan)] == [11, 55]
    assert sim.counters.total("tcp") - before == 3  # the block, then each point alone
    before = sim.counters.total("tcp")
    assert [r.value for r in await driver.read(plan)] == [11, 55]
    assert sim.counters.total("tcp") - before == 2  # the hole is no longer bridged
    assert driver.counters()["unreadable_points"] == 0
