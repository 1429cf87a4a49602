"""One supervisor for every long-lived task of the agent.

Pollers, ingest, uplink (its telemetry, event and status sub-tasks end its session, so their
failure is the uplink's), the control loop and the status log each run under
:class:`Supervisor`. A task's end other than by cancellation is a failure: an exception, or a
return (these loops run for ever). A failure is, at once:

* logged at ERROR with its traceback (a return: without one), naming the task;
* counted and shown in :meth:`Supervisor.snapshot` (in the status page and the retained
  ``status`` message's ``health.tasks``);
* followed by a restart of the task after the shared :class:`~agent.core.model.Backoff`
  (1 s, doubling to 30 s; a run that lasted :data:`HEALTHY_AFTER_S` resets it). The task's
  stage heartbeat (:mod:`agent.core.progress`, same name) beats when the restart is scheduled:
  a stage waiting for its restart is not a stalled one.

A task that keeps failing (more than :data:`RESTART_LIMIT` failures within
:data:`RESTART_WINDOW_S`) is not restarted again: the supervisor calls ``give_up`` (the agent then
stops cleanly, committing what it has, and exits 1 so that systemd's ``Restart=always`` starts a
fresh process: fresh sockets, fresh driver state). ``asyncio.CancelledError`` (a stop) is never a
failure.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from agent.core.aio import cancel_all
from agent.core.health import utc_text
from agent.core.model import Backoff, clock
from agent.core.progress import PROGRESS

log = logging.getLogger("agent.supervisor")

RESTART_LIMIT = 5
"""Failures of one task within :data:`RESTART_WINDOW_S` that are still restarted."""

RESTART_WINDOW_S = 600.0
"""Window (s) in which more than :data:`RESTART_LIMIT` failures make the agent give up."""

HEALTHY_AFTER_S = 60.0
"""A run at least this long (s) resets the task's backoff."""

Factory = Callable[[], Coroutine[Any, Any, None]]
"""Makes the task's coroutine afresh for each (re)start."""


@dataclass(slots=True)
class TaskState:
    """What the supervisor knows of one task.

    Attributes:
        failures: failures since the agent started.
        last_failure: ``"ExcType: message"`` or ``"returned"``; ``None`` before any.
        last_failure_ms: wall-clock UTC ms of the last failure.
        running: whether the task runs now (False while waiting to restart, or given up).
        recent: ``time.monotonic()`` of the failures within the window.
    """

    failures: int = 0
    last_failure: str | None = None
    last_failure_ms: int | None = None
    running: bool = False
    recent: collections.deque[float] = field(default_factory=collections.deque)


class Supervisor:
    """Runs named tasks, restarting each after a failure (see the module docstring).

    Args:
        give_up: called once with a reason when a task fails too often.
        limit: :data:`RESTART_LIMIT`. window_s: :data:`RESTART_WINDOW_S`.
        backoff: makes each task's :class:`~agent.core.model.Backoff`.
    """

    def __init__(
        self,
        give_up: Callable[[str], None],
        limit: int = RESTART_LIMIT,
        window_s: float = RESTART_WINDOW_S,
        backoff: Callable[[], Backoff] = lambda: Backoff(initial_s=1.0, cap_s=30.0),
    ) -> None:
        self.give_up = give_up
        self.limit = limit
        self.window_s = window_s
        self.backoff = backoff
        self.states: dict[str, TaskState] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._retiring: set[str] = set()

    def start(self, name: str, factory: Factory) -> None:
        """Run ``factory()`` as task ``name`` under supervision (a name already running is
        stopped first by the caller: :meth:`stop`)."""
        self._retiring.discard(name)
        self.states.setdefault(name, TaskState())
        self.tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)

    def retire(self, name: str) -> None:
        """``name`` is being stopped on purpose: its return is no longer a failure."""
        self._retiring.add(name)

    async def stop(self, *names: str) -> None:
        """Cancel the named tasks together and wait until they have ended (bounded retries of
        :func:`agent.core.aio.cancel_all`)."""
        tasks = []
        for n in names:
            self._retiring.add(n)
            task = self.tasks.pop(n, None)
            if task is not None:
                tasks.append(task)
        await cancel_all(tasks)
        for n in names:
            if n in self.states:
                self.states[n].running = False

    @property
    def failures(self) -> int:
        """Failures of every task since the agent started."""
        return sum(s.failures for s in self.states.values())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{name: {"running", "failures", "last_failure", "last_failure_at"}}``
        (``last_failure_at``: UTC, ISO 8601 with ms, or ``None``)."""
        return {
            n: {
                "running": s.running,
                "failures": s.failures,
                "last_failure": s.last_failure,
                "last_failure_at": utc_text(s.last_failure_ms),
            }
            for n, s in sorted(self.states.items())
        }

    async def _keep(self, name: str, factory: Factory) -> None:
        state = self.states[name]
        backoff = self.backoff()
        while True:
            started = time.monotonic()
            state.running = True
            error: Exception | None = None
            try:
                await factory()
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:
                error = exc
            state.running = False
            if error is None and name in self._retiring:
                return  # a stop asked for (e.g. the uplink after its clean shutdown)
            now = time.monotonic()
            if now - started >= HEALTHY_AFTER_S:
                backoff.reset()
            state.failures += 1
            state.last_failure = "returned" if error is None else f"{type(error).__name__}: {error}"
            state.last_failure_ms = clock.now_ms()
            state.recent.append(now)
            while state.recent and now - state.recent[0] > self.window_s:
                state.recent.popleft()
            if len(state.recent) > self.limit:
                reason = (
                    f"task {name} failed {len(state.recent)} times within"
                    f" {self.window_s:.0f} s (last: {state.last_failure})"
                )
                log.critical("%s; giving up: the agent stops and exits 1", reason, exc_info=error)
                self.give_up(reason)
                return
            delay = backoff.next()
            log.error(
                "task %s %s (failure %d); restarting in %.1f s",
                name,
                "ended without being asked" if error is None else f"died: {state.last_failure}",
                state.failures,
                delay,
                exc_info=error,
            )
            # Waiting to restart is being handled, not stuck: the stage's heartbeat (same name)
            # restarts now, and the backoff (30 s at most) stays below every stall limit. A
            # task that keeps failing ends in give_up instead.
            PROGRESS.beat(name)
            await asyncio.sleep(delay)
