"""An accepted setpoint request is written at once, not at the loop's next period.

Cabinet (supervisory) mode on the simulator over real Modbus TCP: the cabinet's register bank
records every master write of its setpoint register with the loop's count of scheduled ticks
at that moment, so the test sees the causality (the write came from the tick the request woke,
before the next scheduled tick ran), not only a duration.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.control.rig import Rig, control_section, until

pytestmark = pytest.mark.timeout(60)

TARGETS = (0.41, 0.42, 0.41, 0.40)
"""Each one step of 0.01 MPa = one period of the 0.05 MPa/s ramp: the first step is the change."""


async def test_accepted_setpoint_is_written_before_the_next_tick(tmp_path: Path) -> None:
    section = control_section("supervisory", remote={"ramp_mpa_per_s": 0.05, "min_interval_s": 0.0})
    async with Rig(tmp_path, section) as rig:
        await rig.wait_polled()
        rig.start_loop()
        loop, cabinet = rig.loop, rig.sim.cabinet
        assert loop is not None
        assert await until(lambda: loop.state == "supervisory" and loop.pv is not None, 5.0)
        await asyncio.sleep(1.0)  # past the start-up writes
        address = cabinet.map.by_name["setpoint"].address
        writes: list[tuple[float, int, int]] = []  # (monotonic s, register value, ticks then)
        inner = cabinet.bank.on_write

        def spy(table: str, first: int, values: list) -> None:
            if table == "holding_register" and first <= address < first + len(values):
                writes.append((time.monotonic(), values[address - first], loop.schedule.ticks))
            assert inner is not None
            inner(table, first, values)

        cabinet.bank.on_write = spy
        latencies = []
        for k, target in enumerate(TARGETS):
            # right after a scheduled tick, so the next one is a whole period (200 ms) away
            ticks = loop.schedule.ticks
            assert await until(lambda t=ticks: loop.schedule.ticks > t, 1.0, 0.002)
            ticks, early = loop.schedule.ticks, loop.schedule.early
            t_req = time.monotonic()
            result = await loop.request_setpoint(target, cmd_id=f"now-{k}", by="test")
            assert result.code == "OK", result

            def mine(t: float = t_req, reg: int = round(target * 100)) -> list:
                return [w for w in writes if w[0] >= t and w[1] == reg]

            assert await until(mine, 1.0, 0.002), f"no write of {target} MPa"
            t_write, _, ticks_then = mine()[0]
            latencies.append(t_write - t_req)
            # written by the tick the request woke, before the next scheduled tick ran
            assert ticks_then == ticks, (target, ticks_then, ticks)
            assert loop.schedule.early == early + 1
            assert t_write - t_req < 0.15, f"{target} MPa written after {t_write - t_req:.3f} s"
            assert rig.sim.plant.setpoint == target  # the cabinet runs on it
        print("request → cabinet setpoint write, ms:", [round(x * 1000, 1) for x in latencies])
        assert loop.schedule.overruns == 0
