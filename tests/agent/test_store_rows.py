"""The buffer's multi-row INSERT (agent.store.rows, issue 17): polls of every size, fast rows
(good floats and int64) mixed with general ones (not good, bools, uint64, NaN), in one append:
seqs consecutive in reading order, each poll's time and clock flag, values exact, and seqs never
reused after everything was acknowledged and the file reopened."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any

from agent.core.model import Quality, Reading, Sample
from agent.store import Poll, Store
from agent.store.rows import CHUNKS

SIZES = [1, 3, sum(CHUNKS) + CHUNKS[0] + 2, 17, CHUNKS[0]]
"""Poll sizes: every chunk size used, and more than one of the largest."""


def _reading(rng: random.Random, i: int) -> Reading:
    kind = i % 13
    name = f"p{i}"
    if kind == 3:
        return Reading(name, None, Quality.COMM_FAIL, "timeout")
    if kind == 5:
        return Reading(name, bool(i & 2))
    if kind == 7:
        return Reading(name, (1 << 64) - i)  # uint64 upper half: general row, kind UINT64
    if kind == 9:
        return Reading(name, float("nan"))  # buffered as a bad-value sample, reason "nan"
    if kind == 11:
        return Reading(name, rng.randrange(-(1 << 63), 1 << 63))
    return Reading(name, rng.uniform(-1e6, 1e6))


def _key(s: Sample) -> tuple[Any, ...]:
    return (s.seq, s.point, s.ts_ms, type(s.value).__name__, repr(s.value), s.quality,
            s.reason, s.synced)  # fmt: skip


async def test_polls_of_every_size_round_trip_in_order(tmp_path: Path) -> None:
    rng = random.Random(17)
    path = tmp_path / "b.sqlite"
    polls = [
        Poll([_reading(rng, i) for i in range(n)], 1_000 + k, k % 2 == 0)
        for k, n in enumerate(SIZES)
    ]
    store = await Store.open(path, 8 << 20, seq_base=5_000)
    try:
        first = await store.append(polls[:1])
        rest, last = await asyncio.gather(store.append(polls[1:]), store.last_seq())
        live = first.samples + rest.samples
        back = await store.begin(10_000)
    finally:
        await store.close()
    total = sum(SIZES)
    assert [s.seq for s in live] == list(range(5_001, 5_001 + total))
    assert last == 5_000 + total
    assert [_key(s) for s in back] == [_key(s) for s in live]
    want_points = [r.point for p in polls for r in p.readings]
    want_ts = [(p.ts_ms, p.synced) for p in polls for _ in p.readings]
    assert [s.point for s in live] == want_points
    assert [(s.ts_ms, s.synced) for s in live] == want_ts
    by_seq = {s.seq: s for s in live}
    for s, r in zip(live, (r for p in polls for r in p.readings), strict=True):
        if r.quality is not Quality.GOOD:
            assert (s.quality, s.value, s.reason) == (r.quality, None, r.reason)
        elif isinstance(r.value, float) and r.value != r.value:
            assert (s.quality, s.value, s.reason) == (Quality.BAD_VALUE, None, "nan")
        else:
            assert (type(s.value), s.value, s.quality) == (type(r.value), r.value, Quality.GOOD)
    assert len(by_seq) == total


async def test_seqs_are_never_reused_after_every_row_is_acked_and_reopened(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.sqlite"
    store = await Store.open(path, 8 << 20)
    try:
        samples = (await store.append([Poll([Reading("a", 1.5)] * 300, 1, True)])).samples
        store.ack(s.seq for s in samples)
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    store = await Store.open(path, 8 << 20)
    try:
        again = (await store.append([Poll([Reading("a", 2.5)], 2, True)])).samples
    finally:
        await store.close()
    assert again[0].seq == samples[-1].seq + 1 == 301


WHOLE_POLLS: list[list[Any]] = [
    [1.5, -0.0, 5e-324, 2.2250738585072014e-308, -3.25],  # all finite floats
    [1.7976931348623157e308, -1.7976931348623157e308],  # the largest finite doubles
    [1.0, float("nan"), 2.0],  # a NaN: that reading is a bad-value sample
    [1.0, float("inf")],
    [0, -(1 << 63), (1 << 63) - 1, 7],  # all int64
    [1, 1 << 63],  # a uint64 beyond int64: a general row, kind UINT64
    [1, 2.5],  # ints and floats mixed
    [True, False],  # bools: general rows, kind BOOL
]


async def test_polls_of_known_points_keep_every_value(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    names = [f"w{i}" for i in range(5)]
    store = await Store.open(path, 8 << 20)
    try:  # the first append makes the points known
        await store.append([Poll([Reading(n, 0.5) for n in names], 1, True)])
        polls = [
            Poll([Reading(n, v) for n, v in zip(names, values, strict=False)], 10 + k, k % 2 == 1)
            for k, values in enumerate(WHOLE_POLLS)
        ]
        live = (await store.append(polls)).samples
        back = await store.begin(10_000, after_seq=len(names))
    finally:
        await store.close()
    flat = [(v, p.ts_ms, p.synced) for p, values in zip(polls, WHOLE_POLLS, strict=True)
            for v in values]  # fmt: skip
    assert [s.seq for s in live] == list(range(len(names) + 1, len(names) + 1 + len(flat)))
    assert [_key(s) for s in back] == [_key(s) for s in live]
    for s, (v, ts, synced) in zip(live, flat, strict=True):
        assert (s.ts_ms, s.synced) == (ts, synced)
        if isinstance(v, float) and not -1.8e308 < v < 1.8e308:
            assert (s.quality, s.value) == (Quality.BAD_VALUE, None)
        else:
            assert (s.quality, type(s.value), repr(s.value)) == (Quality.GOOD, type(v), repr(v))
