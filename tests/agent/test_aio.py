"""The asyncio helpers every stage relies on to stop: ``within`` and ``cancel_all``."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.core.aio import cancel_all, within


async def test_within_times_out_and_cancels_the_inner_work() -> None:
    inner = asyncio.ensure_future(asyncio.sleep(10))
    with pytest.raises(TimeoutError):
        await within(inner, 0.05)
    assert inner.cancelled()


async def test_within_returns_the_result() -> None:
    assert await within(asyncio.sleep(0, result=42), 1.0) == 42


async def test_within_passes_a_cancellation_of_the_caller_even_as_the_inner_completes() -> None:
    """The gh-86296 case: the inner future completes in the same loop iteration as the
    caller is cancelled. ``asyncio.wait_for`` on 3.11 returns the result and loses the
    cancellation; ``within`` must raise CancelledError."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    task = asyncio.create_task(within(fut, 10.0))
    await asyncio.sleep(0)  # the task now awaits fut
    fut.set_result(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancel_all_ends_a_task_that_swallows_cancellations(
    caplog: pytest.LogCaptureFixture,
) -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed >= 3:
                    raise

    t = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="agent.core.aio"):
        await asyncio.wait_for(cancel_all([t], retry_s=0.02), 2.0)
    assert t.cancelled() and swallowed == 3
    assert any("stubborn" in r.getMessage() for r in caplog.records)


async def test_cancel_all_leaves_errors_for_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    t = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_all([t])
    assert isinstance(t.exception(), ValueError)
