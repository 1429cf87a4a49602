"""OpcUaDriver against a real asyncua Server on a free loopback port."""

from __future__ import annotations

import logging
import socket

import pytest
from asyncua import Server, ua

from agent.core.model import ConnectError, ConnectionLost, Quality, WriteError
from drivers import create
from drivers.opcua import OpcUaDriver
from drivers.specs import OpcUaConnection, OpcUaPoint

URI = "urn:pumproom-edge:test:analyser"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_server(port: int) -> tuple[Server, dict[str, object]]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/pumproom/")
    # register a spare namespace first, so the analyser's index is 3, not the usual 2
    await server.register_namespace("urn:pumproom-edge:test:spare")
    ns = await server.register_namespace(URI)
    obj = await server.nodes.objects.add_object(ua.NodeId("Analyser", ns), "Analyser")
    nodes = {
        "turbidity": await obj.add_variable(
            ua.NodeId("Analyser.Turbidity", ns), "Turbidity", 0.35, ua.VariantType.Float
        ),
        "chlorine": await obj.add_variable(
            ua.NodeId("Analyser.Chlorine", ns), "Chlorine", 420, ua.VariantType.UInt16
        ),
        "alarm": await obj.add_variable(
            ua.NodeId("Analyser.Alarm", ns), "Alarm", False, ua.VariantType.Boolean
        ),
        "setpoint": await obj.add_variable(
            ua.NodeId("Analyser.Setpoint", ns), "Setpoint", 0.5, ua.VariantType.Float
        ),
        "nan": await obj.add_variable(
            ua.NodeId("Analyser.Nan", ns), "Nan", float("nan"), ua.VariantType.Double
        ),
    }
    await nodes["setpoint"].set_writable()
    await nodes["alarm"].set_writable()
    await server.start()
    return server, nodes


def pt(name, ident, **kw):
    kw.setdefault("namespace_uri", URI)
    return OpcUaPoint(name=name, device="analyser", node_id=f"ns=2;s={ident}", **kw)


POINTS = [
    pt("turbidity", "Analyser.Turbidity", valid_max=4.0),
    pt("chlorine", "Analyser.Chlorine", scale=0.001),
    pt("alarm", "Analyser.Alarm"),
    pt("missing", "Analyser.DoesNotExist"),
    pt("nan", "Analyser.Nan"),
    pt("setpoint", "Analyser.Setpoint", writable=True, valid_min=0.0, valid_max=1.0),
]


@pytest.fixture(autouse=True)
def quiet_asyncua():
    logging.getLogger("asyncua").setLevel(logging.ERROR)


@pytest.fixture
async def opc():
    port = free_port()
    server, nodes = await start_server(port)
    spec = OpcUaConnection(
        name="analyser",
        endpoint=f"opc.tcp://127.0.0.1:{port}/pumproom/",
        timeout_s=1.0,
        connect_timeout_s=3.0,
    )
    drv = create(spec)
    assert isinstance(drv, OpcUaDriver)
    try:
        await drv.connect()
        yield server, nodes, drv
    finally:
        await drv.close()
        await server.stop()


async def test_read_one_call_with_bad_node_and_namespace_resolution(opc):
    _server, nodes, drv = opc
    plan = drv.plan(POINTS)
    assert plan.request_count == 1
    before = drv.counters()["requests"]
    got = {r.point: r for r in await drv.read(plan)}
    assert drv.counters()["requests"] - before == 1
    assert (
        got["turbidity"].value == pytest.approx(0.35) and got["turbidity"].quality is Quality.GOOD
    )
    assert got["chlorine"].value == pytest.approx(0.42)
    assert got["alarm"].value is False
    assert (got["missing"].quality, got["missing"].reason) == (
        Quality.BAD_VALUE,
        "opcua:BadNodeIdUnknown",
    )
    assert got["nan"].reason == "nan"
    await nodes["turbidity"].write_value(ua.Variant(9.5, ua.VariantType.Float))
    got = {r.point: r for r in await drv.read(plan)}
    assert got["turbidity"].reason == "range"


async def test_write_uses_node_variant_type(opc):
    _server, nodes, drv = opc
    sp = POINTS[-1]
    await drv.write(sp, 0.75)
    dv = await nodes["setpoint"].read_data_value()
    assert dv.Value.VariantType is ua.VariantType.Float and dv.Value.Value == pytest.approx(0.75)
    got = {r.point: r for r in await drv.read(drv.plan([sp]))}
    assert got["setpoint"].value == pytest.approx(0.75)
    with pytest.raises(WriteError) as e:
        await drv.write(sp, 2.0)
    assert e.value.reason == "range"
    with pytest.raises(WriteError) as e:
        await drv.write(POINTS[0], 1.0)
    assert e.value.reason == "not_writable"
    # the server refuses a write to a read-only variable
    ro = pt("ro", "Analyser.Turbidity", writable=True)
    with pytest.raises(WriteError) as e:
        await drv.write(ro, 1.0)
    assert e.value.reason.startswith("opcua:Bad")


async def test_server_stop_is_connection_lost(opc):
    server, _nodes, drv = opc
    plan = drv.plan(POINTS[:2])
    await server.stop()
    with pytest.raises(ConnectionLost):
        for _ in range(3):
            await drv.read(plan)
    await drv.close()
    with pytest.raises(ConnectError):
        await drv.connect()


async def test_unknown_namespace_uri_is_bad_value(opc):
    _server, _nodes, drv = opc
    p = pt("other", "Analyser.Turbidity", namespace_uri="urn:nowhere")
    (r,) = await drv.read(drv.plan([p]))
    assert (r.quality, r.reason) == (Quality.BAD_VALUE, "opcua:BadNamespaceUnknown")


async def test_connect_refused():
    drv = create(OpcUaConnection("x", f"opc.tcp://127.0.0.1:{free_port()}/", 1.0, 1.0))
    with pytest.raises(ConnectError):
        await drv.connect()
    await drv.close()
