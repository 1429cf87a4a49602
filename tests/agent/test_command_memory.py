"""The command memory is bounded on its own (count and age) and never costs telemetry: a flood of
refused commands under a small byte bound evicted every waiting sample before (issue 11)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from agent.core.model import Reading, WallClock
from agent.store import Poll, Store
from tests.agent.test_commands import Rig, _cmd

SAMPLES = 10_000
REFUSED = 8_000
KEEP_IDS = 2_000


async def test_refused_commands_never_evict_samples_and_their_memory_is_bounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "buffer.sqlite"
    store = await Store.open(path, 1 << 20, synchronous="normal", command_ids=KEEP_IDS)
    try:
        for k in range(SAMPLES // 1000):
            polls = [Poll([Reading(f"p{i}", float(i)) for i in range(1000)], 1000 + k, True)]
            await store.append(polls)
        clock = WallClock()
        clock.synced_override = True
        rig = Rig(store, clock)
        for chunk in range(0, REFUSED, 500):  # out of range of the command schema: refused
            await asyncio.gather(
                *(rig.send(_cmd(f"flood-{n:05d}-" + "x" * 100, "abc"))
                  for n in range(chunk, chunk + 500))
            )  # fmt: skip
        assert {r["code"] for r in rig.replies} == {"INVALID_ARGUMENT"}
        after = await store.append([Poll([Reading("last", 1.0)], 99_000, True)])
        assert after.evicted == [], f"samples evicted for command memory: {after.evicted}"
        assert store.counters.evicted == 0
        assert await store.pending() == SAMPLES + 1
        newest = await store.command_answer(f"flood-{REFUSED - 1:05d}-" + "x" * 100)
        assert newest is not None and newest["code"] == "INVALID_ARGUMENT"
        assert await store.command_answer(f"flood-{0:05d}-" + "x" * 100) is None
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM commands").fetchone()[0] == KEEP_IDS
