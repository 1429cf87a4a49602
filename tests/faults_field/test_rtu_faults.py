"""One case per RS-485 fault kind, against the simulator's RTU server on a pty pair."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.core.model import Quality, WriteError
from tests.drivers.conftest import VALUES, typed_points


def good(readings) -> bool:
    return all(r.quality is Quality.GOOD for r in readings)


def values_ok(readings) -> bool:
    return all(r.value == pytest.approx(VALUES[r.point.split(".", 1)[1]]) for r in readings)


async def test_local_echo_verified_and_discarded(rtu_server, rtu_driver_for):
    rtu_server.faults.unit(1).echo = True
    drv = await rtu_driver_for(local_echo=True)
    plan = drv.plan(typed_points(1))
    got = await drv.read(plan)
    assert good(got) and values_ok(got)
    c = drv.counters()
    assert c["echoes_seen"] == 0 and c["garbled"] == 0


async def test_echo_without_option_is_skipped_with_one_hint(rtu_server, rtu_driver_for, caplog):
    rtu_server.faults.unit(1).echo = True
    drv = await rtu_driver_for(local_echo=False)
    plan = drv.plan(typed_points(1))
    with caplog.at_level(logging.WARNING, logger="drivers.modbus.rtu_port"):
        for _ in range(3):
            got = await drv.read(plan)
            assert good(got) and values_ok(got)  # never garbage data
    hints = [r for r in caplog.records if "local_echo" in r.getMessage()]
    assert len(hints) == 1
    assert drv.counters()["echoes_seen"] == 3 * plan.request_count


def _rtu_hints(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "drivers.modbus.rtu_port" and r.levelno >= logging.WARNING
    ]


async def test_write_answers_are_not_taken_for_echoes(rtu_server, rtu_driver_for, caplog):
    """No echo on the line (the simulator's pty): the FC05/FC06 answers, copies of their requests
    by the spec, and the FC16 answer, which starts like its request, raise no echo hint."""
    drv = await rtu_driver_for(local_echo=False)
    points = {p.name.split(".", 1)[1]: p for p in typed_points(1)}
    written = {"i16": -1234, "coil7": True, "f32_abcd": 42.25, "bit5": True}  # 06, 05, 16, 03+06
    with caplog.at_level(logging.WARNING, logger="drivers.modbus.rtu_port"):
        for _ in range(2):
            for name, value in written.items():
                await drv.write(points[name], value)
        got = {r.point: r for r in await drv.read(drv.plan(list(points.values())))}
    assert _rtu_hints(caplog) == []
    c = drv.counters()
    assert c["echoes_seen"] == 0 and c["garbled"] == 0 and c["noise_bytes"] == 0
    for name, value in written.items():
        assert got[f"u1.{name}"].value == pytest.approx(value)


async def test_echoing_port_write_waits_for_the_device_answer(rtu_server, rtu_driver_for, caplog):
    """An adapter that echoes (local_echo not set): once a read showed the echo, the first copy
    of an FC06 request is skipped as the echo and the device's own answer is the one taken, so
    a refused write is reported refused, not confirmed by its echo."""
    unit = rtu_server.faults.unit(1)
    unit.echo = True
    drv = await rtu_driver_for(local_echo=False)
    points = {p.name.split(".", 1)[1]: p for p in typed_points(1)}
    with caplog.at_level(logging.WARNING, logger="drivers.modbus.rtu_port"):
        assert good(await drv.read(drv.plan([points["i16"]])))
        assert drv.counters()["echoes_seen"] == 1
        await drv.write(points["i16"], 77)
        unit.exceptions[("holding_register", 4)] = 4  # the device now refuses the write
        with pytest.raises(WriteError) as info:
            await drv.write(points["i16"], 78)
    assert info.value.reason == "modbus:exception:4"
    assert drv.counters()["echoes_seen"] == 3
    assert len([h for h in _rtu_hints(caplog) if "echoes our requests" in h]) == 1
    del unit.exceptions[("holding_register", 4)]
    await asyncio.sleep(0.05)  # the line settles (t3.5) before the next request
    got = await drv.read(drv.plan([points["i16"]]))
    assert got[0].value == 77 and drv.counters()["garbled"] == 0


async def test_fragmented_reply_is_reassembled(rtu_server, rtu_driver_for):
    rtu_server.faults.unit(1).fragment_gap_s = 0.03  # ~17 × t3.5 at 19200: USB latency
    drv = await rtu_driver_for()
    got = await drv.read(drv.plan(typed_points(1)))
    assert good(got) and values_ok(got)


@pytest.mark.parametrize(("probability", "expect_good"), [(1.0, False), (0.0, True)])
async def test_crc_corruption_counted_and_retried(
    rtu_server, rtu_driver_for, probability, expect_good
):
    rtu_server.faults.unit(1).corrupt_crc = probability
    drv = await rtu_driver_for()
    plan = drv.plan(typed_points(1)[:2])  # one request
    got = await drv.read(plan)
    c = drv.counters()
    if expect_good:
        assert good(got) and c["crc_errors"] == 0 and c["requests"] == 1
    else:
        assert {(r.quality, r.reason) for r in got} == {(Quality.COMM_FAIL, "crc")}
        assert c["crc_errors"] == 2 and c["requests"] == 2  # sent, bad CRC, resent once
        assert c["devices"]["dev1"]["crc_errors"] == 1
        rtu_server.faults.unit(1).corrupt_crc = 0.0
        assert good(await drv.read(plan))


async def test_one_corrupt_reply_is_recovered_by_the_retry(rtu_server, rtu_driver_for):
    drv = await rtu_driver_for()
    plan = drv.plan(typed_points(1)[:2])
    rtu_server.faults.unit(1).corrupt_crc = 0.5
    rtu_server.faults.rng.seed(3)  # first reply corrupt, second good with this seed
    first = [rtu_server.faults.rng.random() < 0.5 for _ in range(2)]
    rtu_server.faults.rng.seed(3)
    assert first == [True, False]
    got = await drv.read(plan)
    assert good(got) and values_ok(got)
    assert drv.counters()["crc_errors"] == 1


async def test_line_noise_before_reply_is_skipped_and_flushed(rtu_server, rtu_driver_for):
    rtu_server.faults.unit(2).garbage_before = b"\x02\x03\xff\x00\x13"  # looks like a header
    drv = await rtu_driver_for()
    got = await drv.read(drv.plan(typed_points(2)))
    assert good(got) and values_ok(got)
    assert drv.counters()["noise_bytes"] >= 5


@pytest.mark.parametrize("late_s", [0.35, 1.5])
async def test_late_reply_never_answers_the_next_request(rtu_server, rtu_driver_for, late_s):
    """A reply of the same shape as the next one (same unit, function code and byte count) that
    comes after the 0.2 s timeout: at 0.35 s it lands inside the guard time (0.5 s) and is
    flushed by it; at 1.5 s it lands after the next transaction and is flushed before the one
    after.

    Each window has >= 0.15 s of margin either side, for a loaded CI machine: the earlier 0.22 s
    (with a 0.05 s guard) and 0.3 s left 15 and 50 ms, and under ``pytest -n 3`` the next
    request went out late enough that the stale reply arrived before its answer and was taken
    for it. A stale reply landing while the next request waits cannot be told from its answer
    (RTU frames carry no transaction id, MSL §2.5.1): the guard time is what keeps that window
    empty for replies up to timeout + guard."""
    drv = await rtu_driver_for(timeout_s=0.2, guard_s=0.5)
    u1 = drv.plan(typed_points(1)[:1])  # f32 at HR 0
    u1b = drv.plan(typed_points(1)[1:2])  # f32 CDAB at HR 2: the same reply shape
    rtu_server.faults.unit(1).late_reply_s = late_s
    noise = drv.counters()["noise_bytes"]
    got = await drv.read(u1)
    assert got[0].reason == "timeout"
    if late_s < 0.2 + 0.5:  # inside the guard time: flushed before the read returned
        assert drv.counters()["noise_bytes"] - noise == 9
    rtu_server.faults.unit(1).late_reply_s = 0.0
    got = await drv.read(u1b)
    assert got[0].quality is Quality.GOOD and got[0].value == pytest.approx(-12.5)
    for _ in range(200):  # the simulator has sent the late reply (its task is done)
        if not rtu_server._late:
            break
        await asyncio.sleep(0.05)
    assert not rtu_server._late, "the late reply was never sent"
    await asyncio.sleep(0.1)  # and our reader has taken it off the line
    got = await drv.read(u1b)
    assert got[0].value == pytest.approx(-12.5)
    assert drv.counters()["noise_bytes"] - noise == 9  # the stale 9-byte reply, flushed


async def test_dead_slave_does_not_stop_the_others(rtu_server, rtu_driver_for):
    drv = await rtu_driver_for()
    plan = drv.plan(typed_points(1) + typed_points(2))
    rtu_server.faults.unit(1).silent = True
    for _ in range(6):
        got = await drv.read(plan)
        assert good([r for r in got if r.point.startswith("u2.")])
    c = drv.counters()
    assert c["devices"]["dev1"]["offline"] and c["devices"]["dev1"]["skipped"] >= 2
    assert c["timeouts"] <= 4  # two to go offline, then one probe every second read
    rtu_server.faults.unit(1).silent = False
    reads = [good(await drv.read(plan)) for _ in range(2)]
    assert reads[-1]


async def test_one_request_at_a_time_on_the_port(rtu_server, rtu_driver_for):
    drv = await rtu_driver_for()
    plans = [drv.plan(typed_points(u)) for u in (1, 2)]
    rtu_server.faults.unit(1).delay_s = 0.02
    results = await asyncio.gather(*(drv.read(p) for p in plans * 3))
    assert all(good(r) and values_ok(r) for r in results)
    assert rtu_server.counters.errors().get("rtu", {}).get("bad_crc", 0) == 0  # no collisions
    assert rtu_server.counters.total("rtu") == 6 * plans[0].request_count


async def test_local_echo_option_without_echo_is_garbled_with_one_hint(
    rtu_server, rtu_driver_for, caplog
):
    drv = await rtu_driver_for(local_echo=True)  # the adapter does not echo
    plan = drv.plan(typed_points(1)[:2])
    with caplog.at_level(logging.WARNING, logger="drivers.modbus.rtu_port"):
        for _ in range(2):
            got = await drv.read(plan)
            assert {r.reason for r in got} == {"garbled"}  # never a wrong value
    assert len([r for r in caplog.records if "does not echo" in r.getMessage()]) == 1


async def test_t35_silence_kept_before_each_request(rtu_server, rtu_driver_for):
    """Instrument the simulator's side of the bus: the time each reply was put on the line and
    the time each request's first byte arrived; the master must leave t3.5 between them."""
    loop = asyncio.get_running_loop()
    writes, firsts = [], []
    orig_write, orig_dispatch = rtu_server._write, rtu_server._dispatch

    def write(data):
        writes.append(loop.time())
        orig_write(data)

    def dispatch(frames):
        firsts.extend(f.first_byte_at for f in frames)
        orig_dispatch(frames)

    rtu_server._write, rtu_server._dispatch = write, dispatch
    drv = await rtu_driver_for()
    plan = drv.plan(typed_points(1) + typed_points(2))  # 8 requests back to back
    assert all(r.quality is Quality.GOOD for r in await drv.read(plan))
    gaps = [min(f - w for w in writes if w < f) for f in firsts[1:]]
    t35 = 3.5 * 10 / 19200  # 8N1: 10 bits per character (MSL §2.5.1.1)
    assert len(gaps) == 7 and min(gaps) >= t35 * 0.95, gaps
