"""Fixtures: a started simulator on loopback ports and a pty, clients, leak checks."""

from __future__ import annotations

import errno
import socket

import pytest

from hil_sim.sim import SimOptions, Simulator
from tests.leaks import no_leaks  # noqa: F401  (autouse: fails tests that leak tasks or threads)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def sim(tmp_path):
    """A started simulator (servers up, plant loop NOT running: tests call ``advance``). The
    OPC UA port (asyncua needs a number) is retried if another worker took it meanwhile."""
    for attempt in range(3):
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
        try:
            await simulator.start()
            break
        except OSError as exc:
            await simulator.stop()
            if exc.errno != errno.EADDRINUSE or attempt == 2:
                raise
    simulator.advance(30.0)  # past the start transient
    try:
        yield simulator
    finally:
        await simulator.stop()
