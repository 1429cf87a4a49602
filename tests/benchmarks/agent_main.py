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
import collections
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from agent import app, cli

_original_run = app.Agent.run
_TRACE_DIR = os.environ.get("PUMPROOM_BENCH_TRACEMALLOC")
if _TRACE_DIR:  # memory probe (tests.benchmarks.memprobe): trace from the start
    import tracemalloc

    tracemalloc.start(int(os.environ.get("PUMPROOM_BENCH_TRACEMALLOC_FRAMES", "12")))


def _dump_trace(directory: str, k: int) -> None:
    """tracemalloc snapshot ``snap-K.pickle`` and ``/proc/self/smaps_rollup`` to ``directory``."""
    import tracemalloc

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tracemalloc.take_snapshot().dump(str(d / f"snap-{k:04d}.pickle"))
    (d / f"smaps-{k:04d}.txt").write_text(
        f"time {time.time()}\n" + Path("/proc/self/smaps_rollup").read_text()
    )


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

    async def trace(directory: str) -> None:
        every = float(os.environ.get("PUMPROOM_BENCH_TRACEMALLOC_S", "60"))
        k = 0
        while True:
            _dump_trace(directory, k)  # blocks the loop briefly; probe runs only
            k += 1
            await asyncio.sleep(every)

    async def malloc_stats(every: float) -> None:
        import sys

        while True:  # CPython's allocator statistics, to the agent's stderr (its log)
            import gc

            if os.environ.get("PUMPROOM_BENCH_GC_COLLECT"):
                gc.set_debug(gc.DEBUG_SAVEALL)  # what the cycles are made of, by type
                print(f"== gc.collect() freed {gc.collect()}", file=sys.stderr, flush=True)
                kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
                print(f"== garbage {kinds.most_common(12)}", file=sys.stderr, flush=True)
                gc.garbage.clear()
            print(
                f"== mallocstats {time.time():.0f} gc counts {gc.get_count()}"
                f" stats {gc.get_stats()} objects {len(gc.get_objects())}",
                file=sys.stderr,
                flush=True,
            )
            sys._debugmallocstats()
            await asyncio.sleep(every)

    stats_s = float(os.environ.get("PUMPROOM_BENCH_MALLOCSTATS_S", "0"))
    task = asyncio.create_task(report(), name="bench-status")
    stats = asyncio.create_task(malloc_stats(stats_s), name="bench-malloc") if stats_s else None
    tracer = asyncio.create_task(trace(_TRACE_DIR), name="bench-trace") if _TRACE_DIR else None
    try:
        await _original_run(self, stop)
    finally:
        task.cancel()
        extra = [t for t in (tracer, stats) if t is not None]
        for t in extra:
            t.cancel()
        await asyncio.gather(task, *extra, return_exceptions=True)


app.Agent.run = _run_with_status  # type: ignore[method-assign]

if __name__ == "__main__":
    cli.main()
