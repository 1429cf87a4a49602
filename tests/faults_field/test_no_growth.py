"""A failing device costs no growing resources: tasks, file descriptors and sockets stay flat
across many lose/reconnect cycles."""

from __future__ import annotations

import asyncio

import psutil
import pytest

from agent.core.model import ConnectError, ConnectionLost
from drivers import create
from tests.drivers.conftest import typed_points
from tests.faults_field.conftest import tcp_spec


async def test_tcp_reset_cycles_do_not_grow(tcp_server):
    proc = psutil.Process()
    drv = create(tcp_spec(tcp_server))
    plan = drv.plan(typed_points(1))
    tcp_server.faults.unit(1).reset = 1.0

    async def cycle():
        await drv.connect()
        with pytest.raises(ConnectionLost):
            await drv.read(plan)

    await cycle()
    await asyncio.sleep(0.05)
    tasks, fds = len(asyncio.all_tasks()), proc.num_fds()
    for _ in range(30):
        await cycle()
    await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) <= tasks
    assert proc.num_fds() <= fds
    assert tcp_server.connections <= 1
    await drv.close()
    assert drv.counters()["reconnects"] == 30


async def test_rtu_port_unplug_cycles_do_not_grow(rtu_server, rtu_driver_for):
    proc = psutil.Process()
    drv = await rtu_driver_for()
    plan = drv.plan(typed_points(1)[:2])
    fds = proc.num_fds()
    for _ in range(5):
        await rtu_server.stop()  # adapter unplugged: the device node disappears
        with pytest.raises(ConnectionLost):
            await drv.read(plan)
        with pytest.raises(ConnectError):
            await drv.connect()
        await rtu_server.start()  # plugged back in
        await drv.connect()
        assert all(r.value is not None for r in await drv.read(plan))
    assert proc.num_fds() <= fds
    assert drv.counters()["reconnects"] == 5
