"""Control writes are desired state, believed only once the device reads them back.

The simulator's real Modbus servers, the agent's drivers and pollers and the control loop (the
rig); faults are injected with the simulator's fault commands (a silent unit answers nothing).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hil_sim import commands
from hil_sim.plant import MODE_AUTO, MODE_BUS
from tests.control.rig import Rig, control_section, until

pytestmark = pytest.mark.timeout(90)

FAST_CONFIRM = {"retry_s": 1.0, "max_tries": 3}
"""Given up after 3 s (the example: 2 s × 3): longer than the cabinet's poll interval + timeout
(1 s + 1 s in config/example.yaml), as ``check`` requires."""


async def test_mode_switch_is_retried_until_the_cabinet_reads_bus_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cabinet silent for 1.5 s when the loop starts: its first bus-mode write is lost. The
    write is retried until the cabinet reads back bus mode, and the loop never reports
    ``direct`` (nor writes a drive reference that acts) while the plant is still in automatic
    (the old loop recorded the write as sent and reported ``direct`` with the plant in auto)."""
    caplog.set_level(logging.INFO, logger="agent.control.loop")
    async with Rig(tmp_path, control_section("direct")) as rig:
        await rig.wait_polled()
        pl = rig.sim.plant
        assert pl.mode == MODE_AUTO
        commands.execute(rig.sim, {"cmd": "fault", "unit": 1, "silent": True})
        rig.start_loop()
        assert rig.loop is not None
        lies: list[float] = []

        async def watch() -> None:
            loop = rig.loop
            assert loop is not None
            while True:
                if loop.state == "direct" and pl.mode != MODE_BUS:
                    lies.append(rig.now())
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.sleep(1.5)
            commands.execute(rig.sim, {"cmd": "clear_faults"})
            assert await until(lambda: pl.mode == MODE_BUS, 10.0), "bus mode never written"
            assert await until(lambda: rig.loop is not None and rig.loop.state == "direct", 5.0)
            await asyncio.sleep(1.0)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        assert not lies, f"loop reported direct with the plant in automatic at {lies[:3]} s"
        assert "output_failed" not in rig.kinds()
        # a clean stop writes automatic mode and believes it once read back
        control = next(t for t in rig._tasks if t.get_name() == "control")
        control.cancel()
        await asyncio.gather(control, return_exceptions=True)
        assert pl.mode == MODE_AUTO
        assert "cabinet back in automatic (read back)" in caplog.text


async def test_an_unconfirmable_mode_switch_raises_an_alarm_and_stays_local(
    tmp_path: Path,
) -> None:
    """The cabinet silent (off the network) for longer than the tries: after the
    configured tries the loop raises ``output_failed`` naming the point, reports ``local``
    (the cabinet's own controller runs the pumps) and never claims direct control."""
    section = control_section("direct", confirm=FAST_CONFIRM)
    async with Rig(tmp_path, section) as rig:
        await rig.wait_polled()
        commands.execute(rig.sim, {"cmd": "fault", "unit": 1, "silent": True})
        rig.start_loop()
        assert rig.loop is not None
        assert await until(lambda: "output_failed" in rig.kinds(), 10.0), rig.kinds()
        failed = next(e for e in rig.events if e["type"] == "control.output_failed")
        assert failed["point"] == "cabinet.mode" and failed["desired"] == 20
        assert await until(lambda: rig.loop is not None and rig.loop.state == "local", 1.0)
        assert rig.sim.plant.mode == MODE_AUTO
        assert rig.loop.out.summary()["cabinet.mode"]["writer_ok"] is False
        # the cabinet answers again: the retry confirms it and the loop takes over
        commands.execute(rig.sim, {"cmd": "clear_faults"})
        assert await until(lambda: rig.loop is not None and rig.loop.state == "direct", 10.0)
        assert "output_confirmed" in rig.kinds()
        assert rig.sim.plant.mode == MODE_BUS


async def test_direct_mode_takes_no_control_while_a_drive_refuses_its_comm_loss_action(
    tmp_path: Path,
) -> None:
    """Drive 2 refuses its communication-loss parameters (exception 4 on P14.04/P14.05): the
    loop raises ``output_failed`` for them, never switches the cabinet to bus mode (a dead agent
    would leave that drive at its last speed), and its status says so. The others are set."""
    section = control_section("direct", confirm=FAST_CONFIRM)
    async with Rig(tmp_path, section) as rig:
        await rig.wait_polled()
        refuse = {"table": "holding_register", "address": 0x0E05, "code": 4}
        commands.execute(rig.sim, {"cmd": "fault", "unit": 12, "exception": refuse})
        rig.start_loop()
        loop = rig.loop
        assert loop is not None
        assert await until(lambda: "output_failed" in rig.kinds(), 10.0), rig.kinds()
        failed = {e["point"] for e in rig.events if e["type"] == "control.output_failed"}
        assert failed <= {"pump2.comm_action", "pump2.comm_timeout"} and failed, failed
        assert await until(lambda: loop.state == "local", 1.0)
        await asyncio.sleep(1.0)
        assert rig.sim.plant.mode == MODE_AUTO and loop.state == "local"
        status = loop.status()
        assert status["drive_comm_loss"]["confirmed"] is False
        assert status["outputs"]["pump1.comm_action"]["state"] == "confirmed"
        assert rig.sim.plant.pumps[0].drive.comm_action == "local"
        assert "cabinet.mode" not in status["outputs"]  # bus mode was never asked for
