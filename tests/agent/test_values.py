"""Values through the buffer on disk and the contract: exact, same type live and backfill, and one
odd value never costs the other readings of its batch (issue 11)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from agent import contract
from agent.core.model import Quality, Reading, Sample
from agent.store import Poll, Store

U64_MAX = (1 << 64) - 1
VALUES: list[Any] = [
    True, False, 0, 1, -1, 65535, -(1 << 15), (1 << 31) - 1, (1 << 32) - 1,
    -(1 << 63), (1 << 63) - 1, 1 << 63, U64_MAX, U64_MAX - 1, 1 << 53, (1 << 53) + 1,
    0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
    -1.7976931348623157e308, struct.unpack(">f", b"\x7f\x7f\xff\xff")[0], 0.1, 1.0, -2.5,
    struct.unpack(">f", b"\x00\x00\x00\x01")[0],
]  # fmt: skip


def _key(v: Any) -> tuple[str, str]:
    """Value and type, with -0.0 told from 0.0 (``==`` does not)."""
    return (type(v).__name__, repr(v))


def _wire(samples: list[Sample], hist: bool) -> dict[str, tuple[str, str]]:
    """Point → (JSON type, JSON value text) as a subscriber parses the telemetry message."""
    ident = contract.Identity("s", "g", 1)
    msg = json.loads(contract.telemetry(ident, samples, {}, hist=hist, sent_ms=1))
    return {p: _key(ser["s"][0][2]) for p, ser in msg["series"].items()}


async def test_every_value_keeps_value_and_type_live_backfill_and_after_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.sqlite"
    readings = [Reading(f"p{i}", v) for i, v in enumerate(VALUES)]
    store = await Store.open(path, 1 << 20)
    try:
        live = (await store.append([Poll(readings, 1000, True)])).samples
        backfill = await store.begin(100)
    finally:
        await store.close()
    store = await Store.open(path, 1 << 20)
    try:
        reopened = await store.begin(100)
    finally:
        await store.close()
    want = [_key(v) for v in VALUES]
    assert [s.quality for s in live] == [Quality.GOOD] * len(VALUES)
    assert [_key(s.value) for s in live] == want
    assert [_key(s.value) for s in backfill] == want
    assert [_key(s.value) for s in reopened] == want
    on_wire = {f"p{i}": _key(v) for i, v in enumerate(VALUES)}
    assert _wire(live, hist=False) == on_wire
    assert _wire(reopened, hist=True) == on_wire


async def test_an_unstorable_value_is_a_bad_value_sample_and_spares_its_batch(
    tmp_path: Path,
) -> None:
    odd = [1 << 64, -(1 << 63) - 1, "text", None, math.nan, math.inf, -math.inf]
    readings = [Reading("ok1", U64_MAX)]
    readings += [Reading(f"odd{i}", v) for i, v in enumerate(odd)]
    readings += [Reading("ok2", True), Reading("down", None, Quality.COMM_FAIL, "timeout")]
    store = await Store.open(tmp_path / "b.sqlite", 1 << 20)
    try:
        result = await store.append([Poll(readings, 1000, True)])  # type: ignore[list-item]
        rows = await store.begin(100)
    finally:
        await store.close()
    got = {s.point: (s.value, s.quality, s.reason) for s in rows}
    assert [(s.point, s.value, s.quality, s.reason) for s in result.samples] == [
        (s.point, s.value, s.quality, s.reason) for s in rows
    ]
    assert got["ok1"] == (U64_MAX, Quality.GOOD, None)
    assert got["ok2"] == (True, Quality.GOOD, None) and got["ok2"][0] is True
    assert got["down"] == (None, Quality.COMM_FAIL, "timeout")
    reasons = [got[f"odd{i}"][2] for i in range(len(odd))]
    assert reasons == ["unstorable"] * 4 + ["nan", "inf", "-inf"]
    assert all(got[f"odd{i}"][:2] == (None, Quality.BAD_VALUE) for i in range(len(odd)))
    assert [p for p, _ in result.unstorable] == ["odd0", "odd1", "odd2", "odd3"]
