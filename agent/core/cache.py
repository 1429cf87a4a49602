"""The latest-value cache: the newest sample of every point.

The control loop and the status view read only this cache, so a slow broker or a busy disk never
delays them. Values are updated as soon as a poll returns, before the buffer commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import attrgetter
from typing import NamedTuple

from agent.core.model import Quality, Reading, Value


class Latest(NamedTuple):
    """The newest reading of one point (a named tuple: one is made per point per poll, and a
    tuple is the cheapest immutable record Python makes).

    Attributes:
        value: engineering value, ``None`` unless good.
        quality: its quality.
        reason: why not good, or ``None``.
        ts_ms: wall-clock time of the poll, UTC ms.
        mono: ``time.monotonic()`` of the poll, seconds (for staleness checks).
    """

    value: Value
    quality: Quality
    reason: str | None
    ts_ms: int
    mono: float


class Cache:
    """Point name → its newest reading. Single-threaded (event loop only).

    An update stores each reading as it came with the poll's shared stamp (no object per point:
    one dict update from C iterators, issue 17); :meth:`get` and :meth:`snapshot` make the
    :class:`Latest` records when asked (the control loop reads a few points per tick)."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[Reading, tuple[int, float]]] = {}

    def update(self, readings: Sequence[Reading], ts_ms: int, mono: float) -> None:
        """Record one poll's readings (``ts_ms``: its wall-clock time, UTC ms; ``mono``: its
        ``time.monotonic()``, s)."""
        stamped = zip(readings, repeat((ts_ms, mono)))
        self._latest.update(zip(map(_POINT, readings), stamped, strict=True))

    def get(self, point: str) -> Latest | None:
        """The newest reading of ``point``, or ``None`` if never polled."""
        entry = self._latest.get(point)
        return None if entry is None else _latest(entry)

    def snapshot(self) -> dict[str, Latest]:
        """A copy of the whole cache."""
        return {name: _latest(entry) for name, entry in self._latest.items()}


_POINT = attrgetter("point")


def _latest(entry: tuple[Reading, tuple[int, float]]) -> Latest:
    r, (ts_ms, mono) = entry
    return Latest(r.value, r.quality, r.reason, ts_ms, mono)
