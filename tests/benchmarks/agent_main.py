"""The agent's own ``run`` command plus a benchmark status file: ``python -m
tests.benchmarks.agent_main run -c CONFIG``.

The agent process is the real one (``agent.cli``); this wrapper only adds, inside it, one task
that every ``PUMPROOM_BENCH_STATUS_S`` seconds (default 1) writes a JSON snapshot to the file
named by ``PUMPROOM_BENCH_STATUS``: the number of asyncio tasks, poll counts and lateness
percentiles, and the store / uplink / ingest counters. Process-level figures (CPU, RSS,
threads) are read from outside with psutil. Writing the snapshot costs well under 1 ms a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from agent import app, cli

_original_run = app.Agent.run


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def snapshot(agent: app.Agent) -> dict[str, Any]:
    """The agent's internal figures right now (see the module docstring)."""
    lateness: list[float] = []
    for p in agent.pollers:
        lateness += list(p.counters.lateness_ms)[-200:]
    out: dict[str, Any] = {
        "t": time.time(),
        "tasks": len(asyncio.all_tasks()),
        "polls": sum(p.counters.polls for p in agent.pollers),
        "polls_failed": sum(p.counters.polls_failed for p in agent.pollers),
        "overruns": sum(p.counters.overruns for p in agent.pollers),
        "lateness_p50_ms": _percentile(lateness, 0.50),
        "lateness_p99_ms": _percentile(lateness, 0.99),
    }
    if agent.store is not None:
        out["store"] = dataclasses.asdict(agent.store.counters)
    if agent.uplink is not None:
        out["uplink"] = dataclasses.asdict(agent.uplink.counters)
    if agent.ingest is not None:
        out["ingest"] = dataclasses.asdict(agent.ingest.counters)
    return out


async def _run_with_status(self: app.Agent, stop: asyncio.Event) -> None:
    path = os.environ.get("PUMPROOM_BENCH_STATUS")
    period = float(os.environ.get("PUMPROOM_BENCH_STATUS_S", "1"))

    async def report() -> None:
        target = Path(path) if path else None
        while True:
            await asyncio.sleep(period)
            if target is not None:
                tmp = target.with_suffix(".tmp")
                tmp.write_text(json.dumps(snapshot(self)))
                tmp.replace(target)

    task = asyncio.create_task(report(), name="bench-status")
    try:
        await _original_run(self, stop)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


app.Agent.run = _run_with_status  # type: ignore[method-assign]

if __name__ == "__main__":
    cli.main()
