"""Stage heartbeats (agent/core/progress.py): stalled after the limit, and a stage whose
sub-task ended (the control loop's writer or event task) is not progressing: its beat raises,
so the stage ends and the supervisor restarts it whole."""

from __future__ import annotations

import asyncio

import pytest

from agent.core import progress
from agent.core.progress import Progress, SubTaskEnded


def test_a_stage_is_stalled_only_after_its_limit():
    p = Progress()
    hb = p.register("ingest", 2.0)
    assert p.stalled(hb.last + 1.9) == []
    assert p.stalled(hb.last + 2.1) == ["ingest"]
    assert p.snapshot(hb.last + 2.1)["ingest"] == {"age_s": 2.1, "limit_s": 2.0, "stalled": True}
    p.beat("not registered")  # ignored
    p.drop("ingest")
    assert p.stalled(hb.last + 100) == []


async def test_a_beat_with_a_dead_child_raises_and_names_it():
    async def writer() -> None:
        raise OSError("port gone")

    async def events() -> None:
        await asyncio.Event().wait()

    alive = asyncio.create_task(events(), name="control-events")
    dead = asyncio.create_task(writer(), name="control-writer")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    with pytest.raises(SubTaskEnded, match="control-writer") as info:
        progress.beat("control", [alive, dead])
    assert isinstance(info.value.__cause__, OSError)
    progress.beat("control", [alive])  # all alive: a plain beat
    alive.cancel()
    await asyncio.gather(alive, return_exceptions=True)
    with pytest.raises(SubTaskEnded, match="control-events"):
        progress.beat("control", [alive])
