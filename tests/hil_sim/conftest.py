"""Fixtures: a started simulator on loopback ports and a pty, clients, leak checks."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from hil_sim.sim import SimOptions, Simulator


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
async def no_leaks():
    """Fail a test that leaves asyncio tasks or threads behind."""
    threads_before = set(threading.enumerate())
    yield
    current = asyncio.current_task()
    deadline = time.monotonic() + 2.0
    while True:
        tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        # "asyncio_N" threads belong to the loop's default executor (getaddrinfo for
        # start_server); the loop joins them when it closes.
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


@pytest.fixture
async def sim(tmp_path):
    """A started simulator (servers up, plant loop NOT running: tests call ``advance``)."""
    options = SimOptions(
        modbus_tcp_port=0,
        opcua_port=free_port(),
        rtu_link=str(tmp_path / "ttyRTU0"),
        control_port=0,
        truth_path=str(tmp_path / "truth.jsonl"),
        seed=1,
        start_time_of_day_s=8 * 3600.0,
    )
    simulator = Simulator(options, announce=lambda line: None)
    await simulator.start()
    simulator.advance(30.0)  # past the start transient
    try:
        yield simulator
    finally:
        await simulator.stop()
