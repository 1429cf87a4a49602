"""Small asyncio helpers shared by the agent's stages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event`` at most ``timeout_s`` seconds; True if it was set.

    Unlike ``asyncio.wait_for`` in Python 3.11 (CPython gh-86296), ``asyncio.timeout`` never
    swallows a cancellation of the caller that arrives as the inner wait completes.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def within(aw: Awaitable[T], timeout_s: float | None) -> T:
    """Await ``aw`` for at most ``timeout_s`` seconds (None: no limit).

    Raises:
        TimeoutError: not done in time (``aw`` is cancelled first).

    The drop-in for ``asyncio.wait_for`` across the agent and its drivers: built on
    ``asyncio.timeout``, it never swallows a cancellation of the caller (CPython gh-86296),
    so a stopping agent's tasks always end when cancelled.
    """
    async with asyncio.timeout(timeout_s):
        return await aw


async def cancel_all(tasks: Iterable[asyncio.Task[Any]], *, retry_s: float = 1.0) -> None:
    """Cancel ``tasks`` and wait until every one has ended; never raises their errors.

    A task that swallows a cancellation (a library's ``wait_for``, CPython gh-86296) is
    cancelled again every ``retry_s`` seconds and named in a warning with its stack, so a
    stop can be slow but never hangs silently. Read results with ``task.exception()``.
    """
    pending = set(tasks)
    rounds = 0
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)
        rounds += 1
        for t in pending:
            if rounds in (2, 10):
                frames = "; ".join(
                    f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}"
                    for f in t.get_stack(limit=8)
                )
                log.warning(
                    "task %s has not ended %d cancels later: %s", t.get_name(), rounds, frames
                )


def spawn(
    coro: Coroutine[Any, Any, Any], name: str, owner: set[asyncio.Task[Any]], logger: logging.Logger
) -> asyncio.Task[Any]:
    """Run a short-lived ``coro`` (one command's handling, one result wait) as task ``name``,
    held in ``owner`` (a strong reference until it ends; the owner cancels what is left at
    stop) and never failing unseen: an exception other than a cancellation is logged at ERROR
    on ``logger`` at once, with its traceback and the task's name. A short-lived task is not
    restarted (it was one piece of work); long-lived loops run under
    :class:`agent.supervisor.Supervisor` instead.
    """
    task = asyncio.create_task(coro, name=name)
    owner.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        owner.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            logger.error("task %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=exc)

    task.add_done_callback(done)
    return task
