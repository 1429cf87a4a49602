"""The ingest queue between pollers and buffer: readings it drops while the buffer is slow are a
``data_loss`` event with count and poll-time range, never only a counter (issue 11)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from agent import contract, schemas, status
from agent.app import Agent
from agent.config import load_config
from agent.core.cache import Cache
from agent.core.model import Reading, Sample, WallClock
from agent.pipeline import Ingest
from agent.store import Store
from tests.procs import EXAMPLE


class _Uplink:
    """What the ingest stage hands committed samples to (the uplink is not under test)."""

    def __init__(self) -> None:
        self.offered: list[Sample] = []

    def offer(self, samples: Sequence[Sample]) -> None:
        self.offered.extend(samples)

    def wake(self) -> None:
        pass


async def test_readings_dropped_by_a_full_queue_are_a_data_loss_event(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite"
    store = await Store.open(path, 8 << 20)
    uplink = _Uplink()
    ingest = Ingest(store, Cache(), uplink, WallClock(), queue_max=100)  # type: ignore[arg-type]
    task = asyncio.create_task(ingest.run())
    # Another process holds the buffer's write lock: the disk looks stalled to the agent.
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        for k in range(50):  # 50 polls of 10 readings, 500 in all, while the buffer is stalled
            ts = 1_000_000 + 1000 * k
            ingest.submit([Reading(f"p{i}", k * 10 + i) for i in range(10)], ts_ms=ts)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        other.execute("COMMIT")
        await ingest.flush(10.0)
        for _ in range(100):
            events = await store.begin_events(10)
            if events:
                break
            await asyncio.sleep(0.05)
    finally:
        with contextlib.suppress(sqlite3.Error):
            other.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
    dropped = ingest.counters.dropped_overflow
    buffered = {s.value for s in uplink.offered}
    assert dropped > 0, "the test must overflow the queue"
    assert len(buffered) + dropped == 500, "every reading is either buffered or reported"
    losses = [e.body for e in events if e.body["type"] == "data_loss"]
    assert len(losses) == 1, losses
    loss = losses[0]
    lost = sorted(set(range(500)) - buffered)  # reading k*10+i was polled at 1_000_000 + 1000 k
    polled = [1_000_000 + 1000 * (v // 10) for v in lost]
    assert loss["reason"] == "not_buffered" and loss["cause"] == "ingest_overflow"
    assert loss["count"] == dropped == len(lost)
    assert loss["t_range"] == [min(polled), max(polled)]
    agent = Agent(load_config(EXAMPLE))  # what the status page and the retained status show
    agent.store, agent.ingest = store, ingest
    buffer = status.snapshot(agent, points=False)["buffer"]
    assert buffer["dropped_overflow"] == dropped and buffer["not_buffered"] == 0
    ident = contract.Identity("s", "g", 1)
    msg = json.loads(contract.events(ident, [(e.seq, e.body) for e in events], sent_ms=1))
    schemas.validate(contract.Topics.for_gateway("pumproom/v1", "s", "g").event, msg)
