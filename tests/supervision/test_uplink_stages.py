"""The uplink's live sender and backlog drainer each have their own heartbeat
(:data:`agent.uplink.STAGES`): one stuck while the other goes on is reported stalled.

A real uplink on a real buffer and a private Mosquitto, in this process; the live sender hangs
(an await that never ends, injected through :mod:`agent.faultpoint`) while the drainer keeps
turning. Before, the drainer's beat counted for the whole uplink and the live sender had none:
nothing was ever reported stalled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent import contract, faultpoint
from agent.core.model import Reading, WallClock
from agent.core.progress import PROGRESS
from agent.mqtt import BrokerSettings
from agent.store import Poll, Store
from agent.uplink import STAGES, Uplink, UplinkSettings
from tests.procs import Mosquitto

LIMIT_S = 5.0
"""Each uplink heartbeat's limit here: both senders turn at least every second."""


async def _until(cond, timeout_s: float, what: str) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what} (stages {PROGRESS.snapshot()})")


async def test_a_hung_live_sender_is_stalled_while_the_backlog_drains(
    tmp_path: Path, broker: Mosquitto, fault_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faultpoint, "_FILE", str(fault_file))
    store = await Store.open(tmp_path / "buffer.sqlite", 64 << 20)
    t = 1_700_000_000_000
    await store.append([Poll([Reading("p", float(i))], t + i, True) for i in range(200)])
    uplink = Uplink(
        broker=BrokerSettings("127.0.0.1", broker.port, "gw-stages", keepalive_s=10),
        topics=contract.Topics.for_gateway("pumproom/v1", "stages", "gw"),
        ident=contract.Identity("stages", "gw"),
        store=store,
        units={},
        catalogue=[],
        # the backlog drains for 10 s, in batches of 10 paced 0.5 s apart
        settings=UplinkSettings(batch_max_samples=10, backlog_rate_per_s=20.0),
        clock=WallClock(),
    )
    PROGRESS.clear()
    for name in STAGES:
        PROGRESS.register(name, LIMIT_S)
    task = asyncio.create_task(uplink.run())
    try:
        await _until(lambda: uplink.connected.is_set(), 30, "connected")
        await asyncio.to_thread(fault_file.write_text, "uplink-live hang\n")
        await _until(lambda: "uplink-live" in PROGRESS.stalled(), 60, "uplink-live stalled")
        assert PROGRESS.stalled() == ["uplink-live"]  # the session and the drainer go on
        assert uplink.counters.samples_backfill > 0
    finally:
        await uplink.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
        PROGRESS.clear()
