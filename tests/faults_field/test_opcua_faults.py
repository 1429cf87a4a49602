"""OPC UA fault kinds against the simulator's OPC UA server (restart, slow load, removed node)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from agent.model import ConnectError, ConnectionLost, Quality
from drivers import create
from drivers.specs import OpcUaConnection, OpcUaPoint
from hil_sim.devices.opcua_server import NAMESPACE_URI, UA_POINTS, OpcUaFacade
from hil_sim.plant import Plant


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


POINTS = [
    OpcUaPoint(p.name, "analyser", f"ns=2;s={p.node}", namespace_uri=NAMESPACE_URI)
    for p in UA_POINTS
]


@pytest.fixture
async def ua_server():
    server = OpcUaFacade(Plant(), "127.0.0.1", free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def ua_driver(ua_server):
    drv = create(OpcUaConnection("analyser", ua_server.endpoint, 1.0, 2.0))
    await drv.connect()
    yield drv
    await drv.close()


def good(readings) -> bool:
    return all(r.quality is Quality.GOOD for r in readings)


async def test_server_restart_is_lost_then_recovered_with_a_fresh_session(ua_server, ua_driver):
    plan = ua_driver.plan(POINTS)
    assert good(await ua_driver.read(plan))
    await ua_server.stop()
    with pytest.raises(ConnectionLost):
        await ua_driver.read(plan)
    await ua_driver.close()
    with pytest.raises(ConnectError):
        await ua_driver.connect()  # down: a bounded, failed attempt
    await ua_server.start()
    await ua_driver.connect()
    assert good(await ua_driver.read(plan))
    assert ua_driver.counters()["reconnects"] == 1


async def test_slow_address_space_load_items_retried_until_they_exist(ua_server, ua_driver):
    plan = ua_driver.plan(POINTS)
    await ua_server.restart(load_delay_s=0.5)
    await ua_driver.close()
    await ua_driver.connect()  # the server accepts sessions before its nodes exist
    got = await ua_driver.read(plan)
    assert {r.reason for r in got} == {"opcua:BadNodeIdUnknown"}
    await asyncio.sleep(0.7)
    assert good(await ua_driver.read(plan))  # same session: items retried on every read


async def test_removed_node_costs_only_that_point(ua_server, ua_driver):
    plan = ua_driver.plan(POINTS)
    await ua_server.remove_node("wq.ph")
    got = {r.point: r for r in await ua_driver.read(plan)}
    assert got["wq.ph"].reason == "opcua:BadNodeIdUnknown"
    assert good([r for name, r in got.items() if name != "wq.ph"])
