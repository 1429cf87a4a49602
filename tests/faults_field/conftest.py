"""Fixtures for the field-fault tests: the simulator's real RTU (pty) and TCP slave servers."""

from __future__ import annotations

import pytest

from drivers import create
from drivers.specs import ModbusRtuConnection, ModbusTcpConnection
from hil_sim.modbus import Faults, ModbusRtuServer, ModbusTcpServer, RequestCounters
from tests.drivers.conftest import make_bank
from tests.leaks import no_leaks  # noqa: F401  (autouse: fails tests that leak tasks or threads)

TIMEOUT = 0.3


@pytest.fixture
async def rtu_server(tmp_path):
    """Units 1 and 2 on one pty bus at 19200 8N1 (Linux refuses parity on a pty)."""
    link = str(tmp_path / "ttyRS485")
    server = ModbusRtuServer(
        link, {1: make_bank(1), 2: make_bank(2)}, Faults(seed=7), RequestCounters(), 19200, "N"
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def rtu_driver_for(rtu_server):
    """Factory: a connected RTU driver on the test bus with spec overrides."""
    made = []

    async def make(**kw):
        kw.setdefault("timeout_s", TIMEOUT)
        kw.setdefault("guard_s", 0.05)
        spec = ModbusRtuConnection("bus", rtu_server.link_path, 19200, "N", **kw)
        drv = create(spec)
        made.append(drv)
        await drv.connect()
        return drv

    yield make
    for drv in made:
        drv._link.close()


@pytest.fixture
async def tcp_server():
    """Units 1 and 2 behind one Modbus TCP server on loopback."""
    server = ModbusTcpServer(
        "127.0.0.1", 0, {1: make_bank(1), 2: make_bank(2)}, Faults(seed=7), RequestCounters()
    )
    await server.start()
    yield server
    await server.stop()


def tcp_spec(server, **kw) -> ModbusTcpConnection:
    kw.setdefault("timeout_s", TIMEOUT)
    return ModbusTcpConnection("dev", "127.0.0.1", server.port, connect_timeout_s=1.0, **kw)
