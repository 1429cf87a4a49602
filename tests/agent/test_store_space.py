"""The buffer on a full file system and at its byte bound, on real SQLite files: a full disk is
logged as such (free bytes, path), apart from ``max_bytes``; eviction frees a chunk at once instead
of a poll's worth on every append; the log is one WARNING, then a summary at most every 60 s."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core.model import Reading
from agent.store import Evicted, Poll, Store
from agent.store import space as space_module
from tests.fs import tmpfs

POINTS = 50
"""Readings per append (one poll round of a 50-point site)."""


def _poll(i: int) -> Poll:
    return Poll([Reading(f"p{j}", float(i * POINTS + j)) for j in range(POINTS)], 1000 + i, True)


async def _fill(store: Store, appends: int) -> list[list[Evicted]]:
    """Append ``appends`` polls one by one; the evictions each append reported."""
    return [(await store.append([_poll(i)])).evicted for i in range(appends)]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs at ``tmp_path/fs`` (needs mount(2): root outside a restricted container)."""
    with tmpfs(tmp_path / "fs", "4m") as mnt:
        yield mnt


def _free(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def test_a_full_file_system_is_named_and_evicts_a_chunk_not_a_poll(
    small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    buffer = small_fs / "buffer.sqlite"

    async def run() -> tuple[list[list[Evicted]], int]:
        store = await Store.open(buffer, 64 << 20)  # max_bytes far above the file system
        try:
            # another file takes all but 2 MB (the buffer holds ~25 bytes per sample)
            (small_fs / "filler").write_bytes(bytes(_free(small_fs) - 2_000_000))
            with caplog.at_level(logging.WARNING, logger="agent.store"):
                evictions = await _fill(store, 2000)  # 100 000 samples, ~2.5 MB
            return evictions, await store.pending()
        finally:
            await store.close()

    evictions, pending = asyncio.run(run())
    rounds = [e for e in evictions if e]
    evicted = sum(x.count for e in rounds for x in e)
    assert evicted > 0, "the file system, not max_bytes, made room short"
    assert {x.cause for e in rounds for x in e} == {"disk_full"}
    # the old bound asked for the same eviction on every append: 1115 rounds, 50 samples kept
    assert len(rounds) <= 40, f"{len(rounds)} of 2000 appends evicted: thrashing"
    assert pending >= 20_000, f"only {pending} samples kept in ~2 MB"
    assert pending + evicted == 2000 * POINTS
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.store"]
    assert len(lines) == 1, lines  # one WARNING; a summary only after 60 s
    assert "FILE SYSTEM FULL" in lines[0] and str(buffer) in lines[0], lines[0]
    assert "bytes free on" in lines[0] and "max_bytes" in lines[0], lines[0]
    assert "buffer full" not in lines[0]


def test_byte_bound_logs_once_then_a_summary_a_minute_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(space_module.time, "monotonic", lambda: now[0])

    async def run() -> tuple[int, int]:
        store = await Store.open(tmp_path / "b.sqlite", 1 << 20)
        try:
            with caplog.at_level(logging.WARNING, logger="agent.store"):
                first = await _fill(store, 2000)
                now[0] += 30  # within the minute: still quiet
                second = await _fill(store, 500)
                now[0] += 31  # a minute after the first line: the next eviction sums up
                third = await _fill(store, 500)
            counts = [sum(x.count for x in e) for e in first + second + third]
            return sum(counts), sum(1 for c in counts if c)
        finally:
            await store.close()

    evicted, rounds = asyncio.run(run())
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.store"]
    assert rounds >= 4, "enough eviction rounds to show the rate limit"
    assert len(lines) == 2, lines
    assert "max_bytes 1048576 reached" in lines[0] and "FILE SYSTEM" not in lines[0]
    assert "in the last 61 s" in lines[1], lines[1]
    first_count = int(lines[0].split("evicted ")[1].split()[0])
    summary_count = int(lines[1].split("evicted ")[1].split()[0])
    assert first_count + summary_count <= evicted
    assert summary_count > first_count, "the summary counts every eviction since the first line"
