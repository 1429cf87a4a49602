"""One leak check for the test packages that run asyncio servers and clients in-process.

Import it into a package's ``conftest.py`` (``from tests.leaks import no_leaks``): being autouse,
it then fails every test of that package that leaves asyncio tasks or threads behind.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest


@pytest.fixture(autouse=True)
async def no_leaks():
    """Fail a test that leaves asyncio tasks or threads behind (after a 2 s grace period).

    The loop's default-executor threads (``asyncio_N``, e.g. getaddrinfo for ``start_server``)
    are not counted: pytest-asyncio's loop joins them when it closes, after this fixture.
    """
    threads_before = set(threading.enumerate())
    yield
    current = asyncio.current_task()
    deadline = time.monotonic() + 2.0
    while True:
        tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        threads = [
            t
            for t in threading.enumerate()
            if t not in threads_before and t.is_alive() and not t.name.startswith("asyncio_")
        ]
        if (not tasks and not threads) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert not tasks, f"tasks left behind: {tasks}"
    assert not threads, f"threads left behind: {threads}"
