"""Re-probing what was learned from exception responses: only the failed blocks, a bounded few
requests per poll, spread over the cycles (counted by the simulator's request counters)."""

from __future__ import annotations

import asyncio
import time

from agent.core.model import Quality
from drivers import create
from drivers.modbus.learned import REPROBE_PER_READ
from tests.drivers.conftest import HR, typed_points
from tests.faults_field.conftest import tcp_spec

BAD = (0, 4, 6, 10, 18)
"""Holding registers that answer exception 2: f32_abcd, i16, i32_badc, i64, f64_cdab."""


async def test_reprobe_is_bounded_per_poll_and_spread_over_cycles(tcp_server):
    faults = tcp_server.faults.unit(1)
    for a in BAD:
        faults.exceptions[("holding_register", a)] = 2
    drv = create(tcp_spec(tcp_server))
    drv.reprobe_s = 0.3
    await drv.connect()
    try:
        plan = drv.plan([p for p in typed_points(1) if p.table is HR])
        assert plan.request_count == 1

        async def read() -> tuple[int, dict]:
            before = tcp_server.counters.total("tcp")
            got = {r.point: r for r in await drv.read(plan)}
            return tcp_server.counters.total("tcp") - before, got

        learning, got = await read()
        assert learning > 1 + len(BAD)  # the block and each of its extents, once
        bad = {n for n, r in got.items() if r.quality is Quality.BAD_VALUE}
        assert len(bad) == len(BAD)
        base, _ = await read()  # planned around the unreadable points
        counts = []
        t_end = time.monotonic() + 1.5  # five re-probe periods
        while time.monotonic() < t_end:
            n, got = await read()
            counts.append(n)
            assert {n for n, r in got.items() if r.quality is Quality.BAD_VALUE} == bad
            await asyncio.sleep(0.05)
        assert max(counts) <= base + REPROBE_PER_READ, counts  # never the whole map at once
        assert sum(counts) - base * len(counts) >= len(BAD)  # every item was re-probed
        # the device is fixed: every point is back within a few polls, a few requests each
        faults.exceptions.clear()
        await asyncio.sleep(drv.reprobe_s)
        polls = 0
        while any(r.quality is not Quality.GOOD for r in (await read())[1].values()):
            polls += 1
            assert polls <= -(-len(BAD) // REPROBE_PER_READ) + 1
        n, _ = await read()
        assert n == 1  # one block again
    finally:
        await drv.close()
