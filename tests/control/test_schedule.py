"""The control loop's schedule: early wake-ups between fixed-period monotonic deadlines."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.control.schedule import TickSchedule

pytestmark = pytest.mark.timeout(30)

PERIOD_S = 0.2


def slow_tick(seconds: float) -> None:
    """A synchronous tick that holds the event loop for ``seconds`` (what an overrun is)."""
    time.sleep(seconds)


async def test_an_early_wake_up_does_not_move_the_deadlines() -> None:
    s = TickSchedule(PERIOD_S)
    t0 = time.monotonic()
    assert await s.wait() is True  # the first deadline, t0 + 0.2 s
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, lambda: (s.wake(), s.wake()))  # two before the loop runs: one tick
    assert await s.wait() is False
    early_at = time.monotonic() - t0
    assert 0.22 <= early_at < 0.39, early_at  # woken ~0.22 s, well before the 0.4 s deadline
    assert await s.wait() is True
    on_time_at = time.monotonic() - t0
    assert 0.4 <= on_time_at < 0.5, on_time_at  # the deadline stayed t0 + 0.4 s
    assert await s.wait() is True
    assert 0.6 <= time.monotonic() - t0 < 0.7
    assert (s.ticks, s.early, s.overruns) == (3, 1, 0)
    assert len(s.lateness_ms) == 3  # lateness is that of the scheduled ticks only
    assert "3 ticks, 0 overruns" in s.summary() and s.summary().endswith("1 early")


async def test_a_wake_up_during_a_tick_is_served_at_once_and_overruns_still_skip() -> None:
    s = TickSchedule(PERIOD_S)
    assert await s.wait() is True
    s.wake()  # a request accepted while the loop was busy: served by the next wait at once
    t = time.monotonic()
    assert await s.wait() is False
    assert time.monotonic() - t < 0.1
    assert await s.wait() is True
    slow_tick(0.45)  # a tick that overran two deadlines: they are skipped, not queued
    t = time.monotonic()
    assert await s.wait() is True
    assert PERIOD_S - 0.01 <= time.monotonic() - t < PERIOD_S + 0.1
    assert (s.ticks, s.early, s.overruns) == (3, 1, 1)
    s.wake()
    assert await s.wait() is False
    slow_tick(0.3)  # an early tick that ran past the deadline: that deadline is served late
    t = time.monotonic()
    assert await s.wait() is True
    assert time.monotonic() - t < 0.1 and s.lateness_ms[-1] >= 90
    assert (s.ticks, s.early, s.overruns) == (4, 2, 1)
