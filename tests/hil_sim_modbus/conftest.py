"""Fixtures: real servers on loopback / a pty, a register bank per unit, leak checks."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from hil_sim.modbus import (
    Faults,
    ModbusRtuServer,
    ModbusTcpServer,
    RegisterBank,
    RequestCounters,
)
from tests.leaks import no_leaks  # noqa: F401  (autouse: fails tests that leak tasks or threads)


def make_bank(unit_id: int) -> RegisterBank:
    """Unit with holding 0..199 (writable, value = 1000*unit + address), input registers
    100..149 (value = address), coils 0..31 (writable, False), discrete inputs 0..15 (odd True)."""
    bank = RegisterBank(unit_id)
    bank.define("holding_register", 0, [1000 * unit_id + a for a in range(200)], writable=True)
    bank.define("input_register", 100, list(range(100, 150)))
    bank.define("coil", 0, [False] * 32, writable=True)
    bank.define("discrete_input", 0, [a % 2 == 1 for a in range(16)])
    return bank


@pytest.fixture
def faults() -> Faults:
    return Faults(seed=1)


@pytest.fixture
def counters() -> RequestCounters:
    return RequestCounters()


@pytest.fixture
def banks() -> dict[int, RegisterBank]:
    return {1: make_bank(1), 2: make_bank(2)}


@pytest.fixture
async def tcp_server(banks, faults, counters):
    server = ModbusTcpServer("127.0.0.1", 0, banks, faults, counters)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def rtu_server(tmp_path, banks, faults, counters):
    server = ModbusRtuServer(
        str(tmp_path / "ttyRS485"), banks, faults, counters, baudrate=19200, parity="E"
    )
    await server.start()
    yield server
    await server.stop()


class RawSerial:
    """A bare master on the pty link: write bytes, collect the bytes that come back."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    async def read(self, wait_s: float = 0.5, idle: float = 0.05) -> list[tuple[float, bytes]]:
        """Chunks ``(loop time, bytes)`` until ``idle`` s without bytes after the first chunk,
        or ``wait_s`` s overall."""
        loop = asyncio.get_running_loop()
        chunks: list[tuple[float, bytes]] = []
        ready = asyncio.Event()
        loop.add_reader(self.fd, ready.set)
        try:
            end = loop.time() + wait_s
            while loop.time() < end:
                wait = end - loop.time() if not chunks else min(idle, end - loop.time())
                try:
                    async with asyncio.timeout(max(wait, 0.0)):
                        await ready.wait()
                except TimeoutError:
                    if chunks:
                        break
                    continue
                ready.clear()
                try:
                    chunks.append((loop.time(), os.read(self.fd, 4096)))
                except BlockingIOError:
                    pass
        finally:
            loop.remove_reader(self.fd)
        return chunks

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def raw_serial(rtu_server):
    port = RawSerial(rtu_server.link_path)
    yield port
    port.close()
