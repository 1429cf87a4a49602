"""OPC UA fault kinds against the simulator's OPC UA server (restart, slow load, removed node)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from agent.core.model import ConnectError, ConnectionLost, Quality
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


SUBSCRIBED = [
    OpcUaPoint(
        p.name, "analyser", f"ns=2;s={p.node}", namespace_uri=NAMESPACE_URI, mode="subscribe"
    )
    for p in UA_POINTS
]


async def wait_good(drv, plan, within_s=3.0):
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        got = await drv.read(plan)
        if good(got) or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.1)


async def test_subscription_recreated_after_restart_and_slow_load(ua_server):
    spec = OpcUaConnection("analyser", ua_server.endpoint, 1.0, 2.0, publish_interval_s=0.1)
    drv = create(spec)
    await drv.connect()
    try:
        plan = drv.plan(SUBSCRIBED[:3] + POINTS[3:])  # mixed: subscribed and polled points
        got = await wait_good(drv, plan)
        assert good(got)
        ua_server.plant.quality.turbidity_base_ntu = 0.42
        await ua_server.update()
        await asyncio.sleep(0.4)
        got = {r.point: r for r in await drv.read(plan)}
        assert got["wq.turbidity"].value == pytest.approx(0.42)
        await ua_server.restart(load_delay_s=0.6)  # new server: old subscription ids are void
        with pytest.raises(ConnectionLost):
            for _ in range(20):
                await drv.read(plan)
                await asyncio.sleep(0.1)
        await drv.close()
        await drv.connect()
        got = await drv.read(plan)
        assert {r.reason for r in got[:3]} == {"opcua:BadNodeIdUnknown"}  # still loading
        assert drv.counters()["refused_items"]
        got = await wait_good(drv, plan)
        assert good(got) and got[0].value == pytest.approx(0.42)
        assert drv.counters()["refused_items"] == {}
    finally:
        await drv.close()


async def test_revised_session_timeout_is_honoured(ua_server):
    spec = OpcUaConnection("analyser", ua_server.endpoint, 1.0, 2.0, session_timeout_s=1.0)
    drv = create(spec)
    await drv.connect()
    try:
        # asyncua's server raises a 1 s request to its 5 s minimum: the driver keeps what was
        # granted, and its keep-alive runs at a third of it
        revised = drv.counters()["session_timeout_s"]
        assert revised == pytest.approx(5.0)
        assert drv._keepalive.interval_s == pytest.approx(revised / 3)
        assert good(await drv.read(drv.plan(POINTS)))
    finally:
        await drv.close()


async def test_silently_dropping_network_is_detected_and_recovered(ua_server):
    from tests.faults_field.blackhole import BlackholeProxy

    port = int(ua_server.endpoint.split(":")[2].split("/")[0])
    proxy = BlackholeProxy(port)
    await proxy.start()
    endpoint = ua_server.endpoint.replace(f":{port}/", f":{proxy.port}/")
    drv = create(OpcUaConnection("analyser", endpoint, 0.5, 1.0))
    try:
        await drv.connect()
        plan = drv.plan(POINTS)
        assert good(await drv.read(plan))
        proxy.forwarding = False  # packets vanish; no FIN, no RST
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionLost):
            await drv.read(plan)
        assert asyncio.get_running_loop().time() - t0 < 1.5
        await drv.close()
        with pytest.raises(ConnectError):  # the connect attempt is bounded by our own timeout
            await drv.connect()
        assert asyncio.get_running_loop().time() - t0 < 4.5
        proxy.forwarding = True
        await drv.connect()  # a fresh client object and session
        assert good(await drv.read(plan))
    finally:
        await drv.close()
        await proxy.stop()
