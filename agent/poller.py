"""The poller stage: one task per connection, ticking on monotonic deadlines.

Each poll-interval group of a connection has its own deadline. A tick that comes due while the
previous work overran is skipped (never queued up) and counted as an overrun. While the
connection is down, every due tick still yields one reading per point, of quality COMM_FAIL with
reason ``disconnected``, so the buffer shows exactly when data was missing; reconnects are tried
with :class:`agent.core.model.Backoff` between ticks.

Sample time: the wall-clock time of the poll's start, unless the driver's reading carries the
device's own source time (``Reading.source_ts_ms``, e.g. an OPC UA data change's
SourceTimestamp). That is preferred only when it is sane against our clock: not more than
:data:`SOURCE_AHEAD_S` ahead of now (a device clock running ahead would date samples in the
future: flagged with a warning once per connection and counted), not older than
:data:`SOURCE_MAX_AGE_S` (a value that has not changed for long, or a device clock far behind:
the value still holds at the poll, so the poll time stamps it), and newer than the last source
time used for that point (samples of a point never go back in time). Otherwise the poll time is
used and the reading counted in ``source_time_rejected``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter, is_

from agent import faultpoint
from agent.core import progress
from agent.core.health import Health
from agent.core.model import (
    Backoff,
    ConnectError,
    ConnectionLost,
    DriverError,
    Quality,
    Reading,
    WallClock,
    clock,
)
from agent.logs import Repeated
from drivers.base import Driver, ReadPlan
from drivers.specs import PointSpec

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[Reading], int], None]
"""Where a poll's readings go, with the wall-clock ms of the poll's start (``Ingest.submit``);
must not block."""


LATENESS_WINDOW = 512
"""How many recent tick latenesses a poller keeps (a fixed ring: memory never grows)."""

SOURCE_AHEAD_S = 2.0
"""How far a device's source time may be ahead of our clock, s (two NTP-synced clocks agree to
well under a second; beyond this one of them is wrong and the sample would be dated ahead)."""

SOURCE_MAX_AGE_S = 60.0
"""How old a device's source time may be, s: a data change is published within a publishing
interval of being sampled; one older than a minute is a value unchanged for long (the initial
notification of a subscription) or a device clock far behind."""


@dataclass(slots=True)
class PollerCounters:
    """Per-connection counters since start; ``health``: the last failure (connect, lost, driver
    error) and the last successful read, with their times (:class:`~agent.core.health.Health`);
    ``source_time_used`` / ``source_time_rejected``: readings stamped with the device's source
    time, and readings whose source time failed the sanity bounds (stamped with the poll time)."""

    polls: int = 0
    polls_failed: int = 0
    overruns: int = 0
    connects: int = 0
    connect_failures: int = 0
    health: Health = field(default_factory=Health)
    connected: bool = False
    source_time_used: int = 0
    source_time_rejected: int = 0
    lateness_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LATENESS_WINDOW)
    )


@dataclass(slots=True)
class _Group:
    interval_s: float
    points: list[PointSpec]
    plan: ReadPlan
    due: float


class ConnectionPoller:
    """Polls every point of one connection at its interval and hands readings to ``sink``.

    Args:
        driver: the connection's driver.
        groups: poll interval (s) → points.
        sink: receives each poll's readings.
    """

    def __init__(
        self,
        driver: Driver,
        groups: dict[float, list[PointSpec]],
        sink: Sink,
        wall: WallClock = clock,
    ) -> None:
        self.driver = driver
        self.sink = sink
        self.wall = wall
        self.counters = PollerCounters()
        self.backoff = Backoff(initial_s=1.0, cap_s=30.0)
        now = time.monotonic()
        self.groups = [_Group(i, pts, driver.plan(pts), now) for i, pts in groups.items()]
        self._connected = False
        self._next_connect = 0.0
        devices = list(dict.fromkeys(p.device for pts in groups.values() for p in pts))
        self.label = self.name if devices == [self.name] else f"{self.name} ({', '.join(devices)})"
        """The connection and the devices on it, for log lines."""
        self._connect_failures = Repeated(log, f"{self.label}: cannot connect")
        self._losses = Repeated(log, f"{self.label}: connection lost")
        self._last_source: dict[str, int] = {}
        self._warned_ahead = False
        self.stage = f"poll {driver.name}"
        """The poller's name in the supervisor and the heartbeats (:mod:`agent.core.progress`)."""

    @property
    def name(self) -> str:
        return self.driver.name

    @property
    def stall_limit_s(self) -> float:
        """Seconds without a tick after which this poller counts as stuck: the longest poll
        interval plus the stall floor (:func:`agent.core.progress.stall_floor_s`)."""
        return max(g.interval_s for g in self.groups) + progress.stall_floor_s()

    async def run(self) -> None:
        """Poll forever (until cancelled); closes the driver on the way out. A new run (a
        restart by the supervisor) connects afresh."""
        self._connected = self.counters.connected = False
        try:
            while True:
                await faultpoint.checkpoint(self.stage)
                group = min(self.groups, key=lambda g: g.due)
                delay = group.due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                lateness = time.monotonic() - group.due
                self._record_lateness(lateness)
                await self._tick(group)
                self._advance(group)
                progress.beat(self.stage)
        finally:
            await self.driver.close()

    def _advance(self, group: _Group) -> None:
        group.due += group.interval_s
        now = time.monotonic()
        if group.due <= now:
            missed = int((now - group.due) // group.interval_s) + 1
            group.due += missed * group.interval_s
            self.counters.overruns += missed

    def _record_lateness(self, lateness_s: float) -> None:
        self.counters.lateness_ms.append(lateness_s * 1000.0)

    async def _tick(self, group: _Group) -> None:
        self.counters.polls += 1
        ts_ms = self.wall.now_ms()
        if not self._connected:
            await self._try_connect()
        if not self._connected:
            self.counters.polls_failed += 1
            self.sink(_failed(group.plan.points, "disconnected"), ts_ms)
            return
        try:
            readings = await self.driver.read(group.plan)
        except ConnectionLost as exc:
            await self._lost(str(exc))
            self.counters.polls_failed += 1
            self.sink(_failed(group.plan.points, "disconnected"), ts_ms)
            return
        except DriverError as exc:  # a driver bug must not stop the agent
            log.exception("%s: read failed", self.label)
            self.counters.health.error(str(exc))
            self.sink(_failed(group.plan.points, "driver_error"), ts_ms)
            return
        self.counters.health.ok()
        self._deliver(readings, ts_ms)

    def _deliver(self, readings: Sequence[Reading], ts_ms: int) -> None:
        """Hand ``readings`` to the sink, stamped ``ts_ms`` or, where sane, with their source
        time (one sink call per distinct time)."""
        if all(map(_is_none, map(_SOURCE_TS, readings))):  # C-level: no Python per reading
            self.sink(readings, ts_ms)
            return
        now_ms = self.wall.now_ms()
        by_time: dict[int, list[Reading]] = {}
        for r in readings:
            t = self._source_time(r, now_ms) if r.source_ts_ms is not None else None
            by_time.setdefault(ts_ms if t is None else t, []).append(r)
        for t, batch in by_time.items():
            self.sink(batch, t)

    def _source_time(self, r: Reading, now_ms: int) -> int | None:
        """``r.source_ts_ms`` if it passes the bounds of the module docstring, else None."""
        src = r.source_ts_ms
        assert src is not None
        last = self._last_source.get(r.point)
        if src > now_ms + SOURCE_AHEAD_S * 1000:
            if not self._warned_ahead:
                self._warned_ahead = True
                log.warning(
                    "%s: %s has a source time %.1f s ahead of our clock: the device's or this "
                    "gateway's clock is wrong; stamping with the poll time instead",
                    self.label,
                    r.point,
                    (src - now_ms) / 1000,
                )
        elif src >= now_ms - SOURCE_MAX_AGE_S * 1000 and (last is None or src > last):
            self._last_source[r.point] = src
            self.counters.source_time_used += 1
            return src
        self.counters.source_time_rejected += 1
        return None

    async def _try_connect(self) -> None:
        now = time.monotonic()
        if now < self._next_connect:
            return
        try:
            await self.driver.connect()
        except ConnectError as exc:
            self.counters.connect_failures += 1
            self.counters.health.error(str(exc))
            self._connect_failures.failed(f"{exc} (retrying with backoff)")
            self._next_connect = time.monotonic() + self.backoff.next()
            return
        if self._connect_failures.count:
            self._connect_failures.ok("connected again")
        elif self.counters.connects:
            log.info("%s: connected again", self.label)
        self.backoff.reset()
        self._connected = True
        self.counters.connected = True
        self.counters.connects += 1

    async def _lost(self, why: str) -> None:
        self._losses.failed(why)  # a flapping link: the first loss, then a summary per interval
        self.counters.health.error(why)
        self._connected = False
        self.counters.connected = False
        self._next_connect = time.monotonic() + self.backoff.next()
        await self.driver.close()  # bounded by the driver; the next connect() starts afresh


_SOURCE_TS = attrgetter("source_ts_ms")
_is_none = partial(is_, None)


def _failed(points: Sequence[PointSpec], reason: str) -> list[Reading]:
    return [Reading(p.name, None, Quality.COMM_FAIL, reason) for p in points]
