"""Small asyncio helpers shared by the agent's stages."""

from __future__ import annotations

import asyncio


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
