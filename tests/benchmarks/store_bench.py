"""Buffer benchmarks (fallback until ``tests/benchmarks/buffer.py`` lands): ingest rate and bytes
per sample of the real :class:`agent.store.Store`, then the backlog drain of a prefilled buffer
by the real agent while the typical pump room's live data flows.

* ingest: polls of 200 readings appended as the ingest stage does (one ``append`` per batch of
  polls), samples/s over ``seconds``;
* bytes per buffered sample: file size (database + WAL after a checkpoint) / rows;
* drain: the agent starts on a buffer holding ``backlog`` samples, with the typical live load;
  the backlog over the time from the first to the last backfill sample PUBACKed, with the default
  uplink settings (``backlog_rate_per_s`` 100,000 caps it); the 24-hour backlog of the typical room (200 points at 1 s:
  17.28 million samples) is extrapolated from that rate;
* uplink bytes per sample: telemetry payload bytes / samples published.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from agent.core.model import Reading
from agent.store import Poll, Store
from tests.benchmarks.harness import BenchAgent, broker, load_average
from tests.benchmarks.loads import start_typical

TYPICAL_POINTS = 200
DAY_SAMPLES = TYPICAL_POINTS * 86400


async def _ingest(path: Path, seconds: float, target: int) -> tuple[float, int]:
    store = await Store.open(path, 1 << 34, "full")
    names = [f"plc.{i}" for i in range(TYPICAL_POINTS)]
    ts = int(time.time() * 1000) - 86_400_000
    n = 0
    t0 = time.perf_counter()
    try:
        while n < target and (time.perf_counter() - t0 < seconds or n == 0):
            polls = []
            for _ in range(25):  # 25 polls of 200 readings per transaction: 5,000 samples
                polls.append(Poll([Reading(nm, 1000.0 + n % 97) for nm in names], ts, True))
                ts += 1000
                n += TYPICAL_POINTS
            await store.append(polls)
        rate = n / (time.perf_counter() - t0)
    finally:
        await store.close()
    return rate, n


def _bytes_on_disk(path: Path) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def run(workdir: Path, seconds: float, backlog: int = 400_000) -> dict[str, Any]:
    """Ingest for up to ``seconds`` (at least ``backlog`` samples), then drain for ``seconds``."""
    workdir.mkdir(parents=True, exist_ok=True)
    buf = workdir / "buffer.sqlite"
    ingest_rate, n = asyncio.run(_ingest(buf, 3600, backlog))
    size = _bytes_on_disk(buf)
    with broker(workdir) as mq:
        synth, _ = start_typical(workdir, mq.port, "bench-buffer")
        from tests.benchmarks.harness import write_config  # same config, drain settings
        from tests.benchmarks.loads import typical_devices

        cfg = write_config(
            workdir,
            typical_devices(synth.tcp_ports, str(workdir / "ttyBENCH0")),
            mq.port,
            "bench-buffer",
            uplink={},  # the defaults: what a pump room gets
        )
        try:
            agent = BenchAgent(workdir, cfg, status_period_s=0.2).start()
            try:
                # The drain rate is the backlog over the time it took to send it (from the first
                # backfill seen to the last), while the typical room's live data flows.
                first = agent.wait_status(
                    lambda s: s.get("uplink", {}).get("samples_backfill", 0) > 0, 30, "backfill"
                )
                last = agent.wait_status(
                    lambda s: s.get("uplink", {}).get("samples_backfill", 0) >= n, 600, "drained"
                )
                w = agent.measure(seconds)  # live flow and CPU after the drain, for the report
                st = agent.status()
            finally:
                agent.stop()
        finally:
            synth.stop()
    drained = last["uplink"]["samples_backfill"] - first["uplink"]["samples_backfill"]
    drain = drained / max(last["t"] - first["t"], 1e-3)
    live = w.delta("uplink", "samples_live") / (w.end["t"] - w.start["t"])
    up = st.get("uplink", {})
    sent = up.get("samples_live", 0) + up.get("samples_backfill", 0)
    return {
        "buffer_ingest_samples_per_s": round(ingest_rate, 1),
        "buffer_bytes_per_sample": round(size / n, 2),
        "backlog_drain_samples_per_s": round(drain, 1),
        "backlog_drain_live_samples_per_s": round(live, 1),
        "backlog_drain_cpu_pct_of_core": round(w.cpu_pct_of_core, 1),
        "backlog_24h_drain_s": round(DAY_SAMPLES / drain, 1) if drain else None,
        "uplink_bytes_per_sample": round(up.get("bytes_published", 0) / sent, 2) if sent else None,
        "buffer_load_avg": round(load_average(), 2),
    }
