"""The poller stage: one task per connection, ticking on monotonic deadlines.

Each poll-interval group of a connection has its own deadline. A tick that comes due while the
previous work overran is skipped (never queued up) and counted as an overrun. While the
connection is down, every due tick still yields one reading per point, of quality COMM_FAIL with
reason ``disconnected``, so the buffer shows exactly when data was missing; reconnects are tried
with :class:`agent.core.model.Backoff` between ticks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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


@dataclass(slots=True)
class PollerCounters:
    """Per-connection counters since start; ``health``: the last failure (connect, lost, driver
    error) and the last successful read, with their times (:class:`~agent.core.health.Health`)."""

    polls: int = 0
    polls_failed: int = 0
    overruns: int = 0
    connects: int = 0
    connect_failures: int = 0
    health: Health = field(default_factory=Health)
    connected: bool = False
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

    @property
    def name(self) -> str:
        return self.driver.name

    async def run(self) -> None:
        """Poll forever (until cancelled); closes the driver on the way out."""
        try:
            while True:
                group = min(self.groups, key=lambda g: g.due)
                delay = group.due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                lateness = time.monotonic() - group.due
                self._record_lateness(lateness)
                await self._tick(group)
                self._advance(group)
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
        self.sink(readings, ts_ms)

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


def _failed(points: Sequence[PointSpec], reason: str) -> list[Reading]:
    return [Reading(p.name, None, Quality.COMM_FAIL, reason) for p in points]
