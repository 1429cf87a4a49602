"""Stage heartbeats: is every long-lived stage still making progress?

Each stage beats when one turn of its loop is done: a poller after each tick, the ingest stage
after each turn (a commit, or its 1 s idle wake), the uplink (``uplink``) at each connect attempt
and, while connected, its live sender (``uplink-live``) and backlog drainer (``uplink-backlog``)
each on its own at every turn (both wake at least every second), the control loop after each
tick. A stage whose last beat is older than its limit is *stalled*: a hung task, not a
merely failing one (a poller whose device does not answer still ticks; an uplink whose broker is
gone still tries to connect, within its backoff). :mod:`agent.sdnotify` sends systemd's
``WATCHDOG=1`` only while no stage is stalled, so systemd restarts an agent with a hung stage.

The registry is process-wide (:data:`PROGRESS`), so a stage beats with one line
(``progress.beat("control")``) and needs no reference to the agent; beats of a stage the agent
did not register (a control loop in a test rig) are ignored.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from typing import Any

STALL_FLOOR_ENV = "PUMPROOM_STALL_S"
"""TEST HOOK: environment variable overriding :data:`STALL_FLOOR_S` (seconds), so a test sees a
hung stage reported within seconds. Never set it in production."""

STALL_FLOOR_S = 30.0
"""The part of every stage's limit that is not its own known waiting (poll interval, reconnect
backoff): room for a slow SD card commit, a device timing out on every unit of a bus, a loaded
CPU. A stage is stalled after ``floor + its own waits`` without a beat."""


def stall_floor_s() -> float:
    """:data:`STALL_FLOOR_S`, or the test hook's value (:data:`STALL_FLOOR_ENV`)."""
    try:
        return float(os.environ[STALL_FLOOR_ENV])
    except (KeyError, ValueError):
        return STALL_FLOOR_S


class Heartbeat:
    """One stage's last beat (``time.monotonic()``) and its limit in seconds."""

    __slots__ = ("last", "limit_s", "name")

    def __init__(self, name: str, limit_s: float) -> None:
        self.name = name
        self.limit_s = limit_s
        self.last = time.monotonic()

    def beat(self) -> None:
        """One turn of the stage is done."""
        self.last = time.monotonic()

    def age_s(self, now: float) -> float:
        """Seconds since the last beat (``now``: ``time.monotonic()``)."""
        return max(0.0, now - self.last)


class Progress:
    """The registered stages: name → :class:`Heartbeat`."""

    def __init__(self) -> None:
        self.stages: dict[str, Heartbeat] = {}

    def register(self, name: str, limit_s: float) -> Heartbeat:
        """Watch stage ``name``, stalled after ``limit_s`` s without a beat (from now)."""
        hb = self.stages[name] = Heartbeat(name, limit_s)
        return hb

    def drop(self, name: str) -> None:
        """Stop watching ``name`` (a stage stopped on purpose)."""
        self.stages.pop(name, None)

    def clear(self) -> None:
        """Forget every stage (a new agent in this process)."""
        self.stages.clear()

    def beat(self, name: str) -> None:
        """Beat stage ``name``; nothing when it is not registered."""
        hb = self.stages.get(name)
        if hb is not None:
            hb.last = time.monotonic()

    def stalled(self, now: float | None = None) -> list[str]:
        """Names of the stages whose last beat is older than their limit, sorted."""
        now = time.monotonic() if now is None else now
        return sorted(n for n, hb in self.stages.items() if hb.age_s(now) > hb.limit_s)

    def snapshot(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """``{name: {"age_s", "limit_s", "stalled"}}`` (seconds, 0.1 s)."""
        now = time.monotonic() if now is None else now
        return {
            n: {
                "age_s": round(hb.age_s(now), 1),
                "limit_s": round(hb.limit_s, 1),
                "stalled": hb.age_s(now) > hb.limit_s,
            }
            for n, hb in sorted(self.stages.items())
        }


PROGRESS = Progress()
"""The process's stages (registered by :class:`agent.app.Agent`)."""


class SubTaskEnded(RuntimeError):
    """A stage's sub-task ended (it should run as long as the stage): the stage must end too,
    so that the supervisor restarts it whole (:mod:`agent.supervisor`)."""


def beat(name: str, children: Iterable[asyncio.Task[Any]] = ()) -> None:
    """Beat stage ``name`` of :data:`PROGRESS` (one line in a stage's loop). A stage is only
    progressing when its sub-tasks (``children``, e.g. the control loop's writers) still run.

    Raises:
        SubTaskEnded: a child ended (chained to its exception, if it raised one).
    """
    for task in children:
        if task.done():
            exc = None if task.cancelled() else task.exception()
            raise SubTaskEnded(f"{name}: sub-task {task.get_name()} ended: {exc!r}") from exc
    PROGRESS.beat(name)
