"""Report by exception: per-point deadband with a heartbeat, to keep metered 4G uplinks small.

A reading is *reported* (buffered and sent) when any of these holds: the point has no deadband;
it is the point's first reading; its quality or its reason differs from the last reported one;
its value is not a number; it moved more than ``deadband`` (absolute) or ``deadband_pct`` (percent
of the last reported magnitude) from the last reported value; or ``heartbeat_s`` has passed since
the point was last reported. Quality changes are therefore never suppressed. Pure (no I/O); the
caller passes monotonic time. Readings that are not reported still reach the latest-value cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.core.model import Quality, Reading


@dataclass(frozen=True, slots=True)
class Deadband:
    """One point's report-by-exception settings.

    Attributes:
        absolute: band in engineering units, or ``None``.
        percent: band in percent of the last reported value's magnitude, or ``None``.
        heartbeat_s: longest time between two reports, seconds; ``None`` = no heartbeat.
    """

    absolute: float | None = None
    percent: float | None = None
    heartbeat_s: float | None = None


@dataclass(slots=True)
class _Last:
    value: object
    quality: Quality
    reason: str | None
    mono: float


class ReportByException:
    """Filters readings by their points' :class:`Deadband` (points without one always pass)."""

    def __init__(self, bands: dict[str, Deadband]) -> None:
        self.bands = bands
        self._last: dict[str, _Last] = {}
        self.suppressed = 0

    def filter(self, readings: Sequence[Reading], mono: float) -> Sequence[Reading]:
        """The readings to report, in order (the same sequence object when none is dropped)."""
        if not self.bands:
            return readings
        out = [r for r in readings if self._report(r, mono)]
        self.suppressed += len(readings) - len(out)
        return readings if len(out) == len(readings) else out

    def forget(self, points: Iterable[str]) -> None:
        """Report these points' next reading whatever it is (e.g. after a reconnect)."""
        for p in points:
            self._last.pop(p, None)

    def _report(self, r: Reading, mono: float) -> bool:
        band = self.bands.get(r.point)
        if band is None:
            return True
        last = self._last.get(r.point)
        if last is None or _changed(r, last, band, mono):
            self._last[r.point] = _Last(r.value, r.quality, r.reason, mono)
            return True
        return False


def _changed(r: Reading, last: _Last, band: Deadband, mono: float) -> bool:
    if r.quality != last.quality or r.reason != last.reason:
        return True
    if band.heartbeat_s is not None and mono - last.mono >= band.heartbeat_s:
        return True
    v, lv = r.value, last.value
    if isinstance(v, bool) or isinstance(lv, bool) or v is None or lv is None:
        return v != lv
    assert isinstance(v, int | float) and isinstance(lv, int | float)
    delta = abs(v - lv)
    if band.absolute is not None and delta > band.absolute:
        return True
    if band.percent is not None and delta > abs(lv) * band.percent / 100.0:
        return True
    return band.absolute is None and band.percent is None and v != lv
