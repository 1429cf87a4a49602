"""One case per Modbus TCP fault kind, against the simulator's TCP server on loopback."""

from __future__ import annotations

import asyncio

import pytest

from agent.core.model import ConnectionLost, Quality
from drivers import create
from tests.drivers.conftest import VALUES, typed_points
from tests.faults_field.conftest import tcp_spec


def good(readings) -> bool:
    return all(r.quality is Quality.GOOD for r in readings)


@pytest.mark.parametrize(("lenient", "expect"), [(False, "timeout"), (True, None)])
async def test_wrong_transaction_id(tcp_server, lenient, expect):
    tcp_server.faults.unit(1).wrong_tid = True
    drv = create(tcp_spec(tcp_server, lenient_tid=lenient))
    await drv.connect()
    try:
        plan = drv.plan(typed_points(1)[:2])
        got = await drv.read(plan)
        if lenient:  # validated by unit id, function code and byte count instead
            assert good(got) and got[0].value == pytest.approx(VALUES["f32_abcd"])
        else:
            assert {(r.quality, r.reason) for r in got} == {(Quality.COMM_FAIL, expect)}
            assert drv.counters()["tid_mismatches"] == 1
            tcp_server.faults.unit(1).wrong_tid = False
            assert good(await drv.read(plan))  # stream still in step
    finally:
        await drv.close()


async def test_late_replies_with_old_ids_are_discarded(tcp_server):
    drv = create(tcp_spec(tcp_server))
    await drv.connect()
    try:
        plan = drv.plan(typed_points(1)[:2])
        tcp_server.faults.unit(1).late_reply_s = 0.35
        assert (await drv.read(plan))[0].reason == "timeout"
        tcp_server.faults.unit(1).late_reply_s = 0.0
        for _ in range(3):  # the stale reply arrives while these are pending
            got = await drv.read(plan)
            assert good(got) and got[1].value == pytest.approx(VALUES["f32_cdab"])
            await asyncio.sleep(0.05)
        assert drv.counters()["tid_mismatches"] == 1
    finally:
        await drv.close()


async def test_single_client_device_per_poll_leaves_room_for_a_laptop(tcp_server):
    tcp_server.faults.single_client = True
    drv = create(tcp_spec(tcp_server, connection_mode="per-poll"))
    await drv.connect()
    try:
        plan = drv.plan(typed_points(1))
        for _ in range(3):
            task = asyncio.create_task(drv.read(plan))
            while not task.done():  # never more than one socket from us
                assert tcp_server.connections <= 1
                await asyncio.sleep(0.001)
            assert good(task.result())
            await asyncio.sleep(0.05)
            assert tcp_server.connections == 0  # socket released between polls
        # a technician's laptop connects between polls and is served
        laptop = create(tcp_spec(tcp_server))
        await laptop.connect()
        assert good(await laptop.read(plan))
        await laptop.close()
        await asyncio.sleep(0.05)
        assert good(await drv.read(plan))
        assert drv.counters()["sockets_opened"] == 4
    finally:
        await drv.close()


async def test_connection_reset_is_lost_then_reconnects_with_one_socket(tcp_server):
    drv = create(tcp_spec(tcp_server))
    await drv.connect()
    try:
        plan = drv.plan(typed_points(1)[:2])
        tcp_server.faults.unit(1).reset = 1.0
        with pytest.raises(ConnectionLost):
            await drv.read(plan)
        assert tcp_server.counters.errors()["tcp"]["reset"] == 1
        tcp_server.faults.unit(1).reset = 0.0
        await drv.connect()  # the agent's reconnect: closes the old socket first
        assert good(await drv.read(plan))
        await asyncio.sleep(0.05)
        assert tcp_server.connections == 1
        assert drv.counters()["reconnects"] == 1
    finally:
        await drv.close()


async def test_accepts_but_never_answers_is_detected(tcp_server):
    drv = create(tcp_spec(tcp_server, timeout_s=0.15))
    await drv.connect()
    try:
        plan = drv.plan(typed_points(1)[:2])
        tcp_server.faults.unit(1).silent = True
        with pytest.raises(ConnectionLost):
            for _ in range(5):
                await drv.read(plan)
        assert drv.counters()["timeouts"] == 3
    finally:
        await drv.close()


async def test_exception_2_in_block_split_learned_and_reprobed_after_reconnect(tcp_server):
    drv = create(tcp_spec(tcp_server))
    await drv.connect()
    try:
        plan = drv.plan([p for p in typed_points(1) if p.table.name == "HOLDING_REGISTER"])
        assert plan.request_count == 1
        tcp_server.faults.unit(1).exceptions[("holding_register", 6)] = 2  # i32_badc
        got = {r.point: r for r in await drv.read(plan)}
        assert got["u1.i32_badc"].reason == "modbus:exception:2"
        assert sum(r.quality is not Quality.GOOD for r in got.values()) == 1
        before = tcp_server.counters.total("tcp")
        got = {r.point: r for r in await drv.read(plan)}
        assert got["u1.i32_badc"].reason == "modbus:exception:2"
        assert tcp_server.counters.total("tcp") - before == 2  # learned: around, not across
        tcp_server.faults.unit(1).exceptions.clear()
        await drv.connect()  # a reconnect forgets what was learned
        assert good(await drv.read(plan))
    finally:
        await drv.close()


async def test_debug_log_shows_the_pdu_address_sent(tcp_server, caplog):
    import logging

    drv = create(tcp_spec(tcp_server))
    await drv.connect()
    try:
        point = next(p for p in typed_points(1) if p.name == "u1.i16")  # holding register 4
        with caplog.at_level(logging.DEBUG, logger="drivers.modbus.link"):
            await drv.read(drv.plan([point]))
        assert any("fc 03 PDU address 4 (0x0004) count 1" in r.getMessage() for r in caplog.records)
    finally:
        await drv.close()


async def test_per_poll_overlapping_read_and_write_share_one_socket(tcp_server):
    tcp_server.faults.single_client = True
    tcp_server.faults.unit(1).delay_s = 0.05
    drv = create(tcp_spec(tcp_server, connection_mode="per-poll"))
    await drv.connect()
    try:
        points = typed_points(1)
        sp = next(p for p in points if p.name == "u1.i16")
        got, _ = await asyncio.gather(drv.read(drv.plan(points)), drv.write(sp, 123))
        assert good(got)
        await asyncio.sleep(0.05)  # the device notices our closed socket (a poll period later)
        assert (await drv.read(drv.plan([sp])))[0].value == 123
        assert drv.counters()["sockets_opened"] == 2
    finally:
        await drv.close()
