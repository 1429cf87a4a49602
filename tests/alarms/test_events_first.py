"""Local first: after an outage, buffered events (alarms) go before the telemetry backlog.

A real buffer on disk with a backlog of 6 000 samples and 400 events, a real uplink, a private
Mosquitto and a platform subscriber: every event message arrives before the first backfill
message. Before the fix the two drained side by side (events interleaved with the backlog).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent import contract
from agent.core.model import Reading, WallClock
from agent.mqtt import BrokerSettings
from agent.store import Poll, Store
from agent.uplink import Uplink, UplinkSettings
from tests.procs import Mosquitto, Subscriber


async def test_buffered_events_go_before_the_telemetry_backlog(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    sub = Subscriber(broker.port, "first").start()
    store = await Store.open(tmp_path / "buffer.sqlite", 64 << 20)
    uplink = None
    task = None
    try:
        t = 1_700_000_000_000
        polls = [Poll([Reading(f"p{j}", float(i)) for j in range(20)], t + i * 1000, True)
                 for i in range(300)]  # fmt: skip
        await store.append(polls)
        for i in range(400):
            await store.add_event({"type": "info", "t": t + i, "code": "TEST"})
        uplink = Uplink(
            broker=BrokerSettings("127.0.0.1", broker.port, "gw-first", keepalive_s=10),
            topics=contract.Topics.for_gateway("pumproom/v1", "first", "gw"),
            ident=contract.Identity("first", "gw"),
            store=store,
            units={},
            catalogue=[],
            settings=UplinkSettings(batch_max_samples=100),
            clock=WallClock(),
        )
        task = asyncio.create_task(uplink.run())

        def done() -> bool:
            events = sum(len(b["events"]) for tp, b, _ in sub.snapshot() if tp.endswith("/event"))
            samples = sum(1 for s in sub.samples())
            return events >= 400 and samples >= 6000

        for _ in range(600):
            if done():
                break
            await asyncio.sleep(0.05)
        assert done(), "not everything arrived"
        kinds = [tp.rsplit("/", 1)[-1] for tp, _, _ in sub.snapshot()
                 if tp.endswith(("/event", "/backfill"))]  # fmt: skip
        last_event = max(i for i, k in enumerate(kinds) if k == "event")
        first_backfill = kinds.index("backfill")
        assert last_event < first_backfill, kinds[:40]
    finally:
        if uplink is not None:
            await uplink.stop()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await store.close()
        sub.stop()
        broker.stop()
