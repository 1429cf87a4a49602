"""The latest-value cache: the newest sample of every point.

The control loop and the status view read only this cache, so a slow broker or a busy disk never
delays them. Values are updated as soon as a poll returns, before the buffer commit.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    """Point name → :class:`Latest`. Single-threaded (event loop only)."""

    def __init__(self) -> None:
        self._latest: dict[str, Latest] = {}

    def update(self, readings: Iterable[Reading], ts_ms: int, mono: float) -> None:
        """Record one poll's readings."""
        latest = self._latest
        for r in readings:
            latest[r.point] = Latest(r.value, r.quality, r.reason, ts_ms, mono)

    def get(self, point: str) -> Latest | None:
        """The newest reading of ``point``, or ``None`` if never polled."""
        return self._latest.get(point)

    def snapshot(self) -> dict[str, Latest]:
        """A copy of the whole cache."""
        return dict(self._latest)
