"""The control loop's clock: fixed-period monotonic deadlines, plus early wake-ups.

:meth:`TickSchedule.wait` returns at each deadline, ``period_s`` apart on the monotonic clock
(a late tick is skipped and counted as an overrun, never queued), or earlier when
:meth:`TickSchedule.wake` was called (an accepted setpoint command: its first ramp step is
written at once, not up to one period later). An early wake-up never moves the deadlines, so
the loop's period, and the lateness the jitter benchmark reads, stay those of the schedule.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time

from agent.core.aio import wait_event


class TickSchedule:
    """Deadlines every ``period_s`` seconds on the monotonic clock, with early wake-ups.

    Args:
        period_s: the control period, s.

    Attributes:
        ticks: deadlines served (scheduled ticks).
        early: early wake-ups served between deadlines.
        overruns: deadlines skipped because the loop was already past them.
        lateness_ms: how late each scheduled tick woke after its deadline, ms (last 4096).
        tick_ms: how long each tick took, ms (last 4096; filled by the loop).
    """

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.ticks = 0
        self.early = 0
        self.overruns = 0
        # fixed rings of the most recent ticks: memory must not grow over months of running
        self.lateness_ms: collections.deque[float] = collections.deque(maxlen=4096)
        self.tick_ms: collections.deque[float] = collections.deque(maxlen=4096)
        self._deadline: float | None = None
        self._due = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Make the pending (or next) :meth:`wait` return now, ahead of its deadline. Never
        blocks; several wake-ups before the loop runs give one early tick."""
        self._wake.set()

    async def wait(self) -> bool:
        """Wait for the next deadline (→ True, a scheduled tick) or an earlier :meth:`wake`
        (→ False, an extra tick; the deadline stays where it was). The first deadline is
        ``period_s`` after the first call."""
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self.period_s
        elif self._due:  # the last return was a deadline: on to the next one
            self._due = False
            self._deadline += self.period_s
            if now > self._deadline:
                self.overruns += 1
                self._deadline = now + self.period_s
        delay = self._deadline - now
        if delay > 0 and await wait_event(self._wake, delay):
            self._wake.clear()
            if time.monotonic() < self._deadline:
                self.early += 1
                return False
        self._wake.clear()  # a wake-up at the deadline is served by the scheduled tick
        self._due = True
        self.ticks += 1
        self.lateness_ms.append((time.monotonic() - self._deadline) * 1000.0)
        return True

    def summary(self) -> str:
        """``"period 200 ms, 1234 ticks, 0 overruns, lateness ms p50 0.41 p99 1.20 max 3.05,
        7 early"``: how late the scheduled ticks woke after their monotonic deadlines, and the
        early (command) ticks between them. The jitter benchmark parses this line."""
        late = sorted(self.lateness_ms)

        def q(f: float) -> float:
            return late[min(len(late) - 1, int(f * len(late)))] if late else math.nan

        return (
            f"period {self.period_s * 1000:.0f} ms, {self.ticks} ticks, {self.overruns} "
            f"overruns, lateness ms p50 {q(0.5):.2f} p99 {q(0.99):.2f} max {q(1.0):.2f}, "
            f"{self.early} early"
        )
