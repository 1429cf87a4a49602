"""The control loop's I/O helpers: non-blocking writes through the pollers' drivers, and an
event queue drained by its own task, so a control tick never awaits the bus or the disk.

* :class:`Writer`: one per driver (connection). :meth:`Writer.put` records the latest wanted
  value of a point (latest value wins: a slow bus coalesces writes rather than queueing them)
  and wakes the writer task, which writes through ``driver.write`` — the same Driver instance
  the poller uses, which serialises requests on its connection — each bounded by a timeout.
* :class:`EventQueue`: bounded queue of event bodies; a task hands them to the sink (``await
  store.add_event(body)`` then ``uplink.wake()`` in the agent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent.core.model import DriverError, Value
from drivers.base import Driver
from drivers.specs import PointSpec

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WriteCounters:
    """Writes done, failed and coalesced (a newer value replaced one not yet written)."""

    written: int = 0
    failed: int = 0
    coalesced: int = 0
    last_error: str | None = None


class Writer:
    """Latest-value-wins writes for one driver (see the module docstring).

    Args:
        driver: the connection's driver (shared with its poller).
        timeout_s: bound on each ``driver.write``, s.
    """

    def __init__(self, driver: Driver, timeout_s: float = 1.0) -> None:
        self.driver = driver
        self.timeout_s = timeout_s
        self.counters = WriteCounters()
        self._pending: dict[str, tuple[PointSpec, Value]] = {}
        self._ready = asyncio.Event()
        self._failing = False

    def put(self, spec: PointSpec, value: Value) -> None:
        """Ask for ``value`` to be written to ``spec`` soon. Never blocks."""
        if spec.name in self._pending:
            self.counters.coalesced += 1
        self._pending[spec.name] = (spec, value)
        self._ready.set()

    @property
    def healthy(self) -> bool:
        """False after a failed write until the next successful one."""
        return not self._failing

    async def run(self) -> None:
        """Write what is pending, forever (until cancelled)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                name = next(iter(self._pending))
                spec, value = self._pending.pop(name)
                try:
                    async with asyncio.timeout(self.timeout_s):
                        await self.driver.write(spec, value)
                except (DriverError, TimeoutError) as exc:
                    self.counters.failed += 1
                    self.counters.last_error = f"{name}: {exc!r}"
                    if not self._failing:
                        log.warning("control: write %s=%s failed: %r", name, value, exc)
                    self._failing = True
                else:
                    self.counters.written += 1
                    if self._failing:
                        log.info("control: writes through %s work again", self.driver.name)
                    self._failing = False


class EventQueue:
    """Bounded FIFO of event bodies, drained by :meth:`run` into ``sink``.

    Args:
        sink: awaited with each body (the agent: store it, then wake the uplink).
        maxlen: most events waiting; beyond it the oldest are dropped (counted).
    """

    def __init__(self, sink: Callable[[dict[str, Any]], Awaitable[None]], maxlen: int = 1000):
        self.sink = sink
        self.maxlen = maxlen
        self.dropped = 0
        self.sent = 0
        self._items: list[dict[str, Any]] = []
        self._ready = asyncio.Event()

    def put(self, body: dict[str, Any]) -> None:
        """Queue one event. Never blocks."""
        self._items.append(body)
        if len(self._items) > self.maxlen:
            self._items.pop(0)
            self.dropped += 1
        self._ready.set()

    async def run(self) -> None:
        """Hand queued events to the sink, forever (until cancelled)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._items:
                body = self._items.pop(0)
                try:
                    await self.sink(body)
                    self.sent += 1
                except Exception as exc:  # the queue must outlive a failing sink
                    log.error("control: event %s could not be stored: %s", body.get("type"), exc)
