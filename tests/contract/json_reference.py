"""The v1 JSON telemetry encoder as it was before issue 17's fast encoder: dicts and lists,
then ``json.dumps`` (compact, ``ensure_ascii``, ``allow_nan=False``). Kept here, not in the
agent, as the reference that :func:`agent.contract.telemetry` must match byte for byte
(tests/contract/test_json_fast.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from agent.contract import Identity
from agent.core.model import Quality, Sample
from agent.store.values import UNSTORABLE, non_finite_reason


def telemetry(
    ident: Identity,
    samples: Sequence[Sample],
    units: Mapping[str, str | None],
    *,
    hist: bool,
    sent_ms: int,
) -> bytes:
    """The old ``agent.contract.telemetry``, verbatim."""
    series: dict[str, dict[str, Any]] = {}
    unsynced: list[int] = []
    for s in samples:
        entry = series.get(s.point)
        if entry is None:
            entry = series[s.point] = {"s": []}
            unit = units.get(s.point)
            if unit:
                entry["u"] = unit
        value = s.value
        if s.quality is Quality.GOOD:
            entry["s"].append(_good(s.seq, s.ts_ms, value))
        else:
            entry["s"].append([s.seq, s.ts_ms, None, s.quality.code, s.reason])
        if not s.synced:
            unsynced.append(s.seq)
    msg = ident.header()
    msg.update(stream="telemetry", hist=hist, sent=sent_ms, series=series)
    if len(unsynced) == len(samples):
        msg["synced"] = False
    elif unsynced:
        msg["unsynced"] = unsynced
    return json.dumps(msg, separators=(",", ":"), allow_nan=False).encode()


def _good(seq: int, ts_ms: int, value: object) -> list[Any]:
    if isinstance(value, bool | int):
        return [seq, ts_ms, value]
    if isinstance(value, float):
        if math.isfinite(value):
            return [seq, ts_ms, value]
        return [seq, ts_ms, None, Quality.BAD_VALUE.code, non_finite_reason(value)]
    return [seq, ts_ms, None, Quality.BAD_VALUE.code, UNSTORABLE]
