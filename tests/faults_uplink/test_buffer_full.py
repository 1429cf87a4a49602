"""A full buffer: the size bound (``buffer.max_bytes``) and a real full file system (a 2 MiB
tmpfs, then another file taking all the space). The agent never crashes or stops polling; the
oldest samples are evicted and reported as data-loss events with their seq range; everything
not evicted arrives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.core.model import Reading
from agent.store import Poll, Store
from tests.faults_uplink.conftest import account, appended, data_loss_events, wait_delivered
from tests.fs import tmpfs
from tests.procs import AgentProc, Mosquitto, Subscriber, wait_for


def _prefill(path: Path, samples: int) -> None:
    """Buffer ``samples`` older samples (a previous run's backlog) through the real Store."""

    async def fill() -> None:
        store = await Store.open(path, 64 << 20)
        try:
            per_poll = 40
            for i in range(0, samples, per_poll * 50):
                polls = [
                    Poll(
                        [Reading("cabinet.p_out_f", 0.4 + k * 1e-6) for k in range(per_poll)],
                        1_700_000_000_000 + i + j,
                        True,
                    )
                    for j in range(50)
                ]
                await store.append(polls)
        finally:
            await store.close()

    asyncio.run(fill())


def _check_losses(sub: Subscriber, first: int | None = 1) -> list[dict]:
    """Check the data-loss events: well-formed, oldest first (from seq ``first`` if given)."""
    events = data_loss_events(sub)
    assert events, "evictions are reported as data_loss events"
    for e in events:
        assert e["reason"] == "buffer_full" and e["stream"] == "telemetry", e
        lo, hi = e["seq_range"]
        assert lo <= hi and e["count"] == hi - lo + 1, e
    firsts = [e["seq_range"][0] for e in events]
    assert firsts == sorted(firsts), "the oldest rows go first"
    if first is not None:
        assert firsts[0] == first, f"eviction starts at the oldest row, seq {first}: {events[0]}"
    delivered = {s[0] for s in sub.samples()}
    for e in events:  # nothing evicted had been delivered... or everything evicted is older
        lo, hi = e["seq_range"]
        assert max(delivered, default=0) > hi, "newer samples survive the evictions"
    return events


def test_size_bound_evicts_the_oldest_reports_them_and_keeps_polling(
    broker: Mosquitto, subscriber: Subscriber, agent: AgentProc
) -> None:
    _prefill(agent.buffer, 40_000)  # ~1.3 MB: over the 1 MiB bound
    broker.stop()
    agent.extra = ["buffer.max_bytes=1048576"]
    agent.start()
    wait_for(lambda: appended(agent) > 40_000 + 1000, 20, "polling on a full buffer")
    broker.start()
    target = appended(agent)
    wait_delivered(agent, subscriber, target, 40)
    events = _check_losses(subscriber)
    assert {e.get("cause") for e in events} == {"max_bytes"}, "the byte bound made room"
    counts = account("buffer_size_bound", agent, subscriber, data_loss_events=len(events))
    assert counts["evicted"] >= 1000, counts
    assert counts["polled"] > 40_000 + 1000


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "2m") as where:
        yield where


def _fill(path: Path) -> int:
    written = 0
    with contextlib.suppress(OSError), open(path, "wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()
            written += 4096
    return written


@dataclass
class _SmallFsAgent(AgentProc):
    """The agent with its buffer on the small file system."""

    fs: Path = Path("/nonexistent")

    @property
    def buffer(self) -> Path:
        return self.fs / "buffer.sqlite"


def test_file_system_full_evicts_reports_and_never_stops_polling(
    small_fs: Path, broker: Mosquitto, subscriber: Subscriber, agent: AgentProc
) -> None:
    a = _SmallFsAgent(
        agent.workdir,
        agent.broker_port,
        agent.sim,
        agent.site,
        config=agent.config,
        device_sets=[],
        fs=small_fs,
        extra=["buffer.max_bytes=67108864"],
    )
    try:
        a.start()
        wait_for(lambda: subscriber.samples(), 20, "first telemetry")
        broker.stop()
        time.sleep(2.0)
        filler = small_fs / "filler"
        took = _fill(filler)  # another file takes every byte left
        at_full = appended(a)
        print(f"filler took {took} bytes; {at_full} samples appended so far")
        wait_for(lambda: appended(a) > at_full + 2000, 20, "polling on a full file system")
        assert a.proc is not None and a.proc.poll() is None, "the agent is still running"
        filler.unlink()
        broker.start()
        target = appended(a)
        wait_delivered(a, subscriber, target, 40)
        events = _check_losses(subscriber, first=None)
        assert "disk_full" in {e.get("cause") for e in events}, "the full disk is named"
        log = a.log.read_text()
        counts = account(
            "buffer_disk_full",
            a,
            subscriber,
            data_loss_events=len(events),
            sqlite_full_hit="file system full" in log,
        )
        assert counts["evicted"] > 0
        assert "ingest:" not in log, "no reading failed to reach the buffer"
    finally:
        a.stop(9)
        if a.log.exists():
            print(a.log.read_text()[-3000:])
