"""OPC UA security: Basic256Sha256 Sign / SignAndEncrypt with user name or certificate identity,
against the simulator's server offering no unsecured endpoint."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.core.model import ConnectError, Quality
from drivers import create
from drivers.specs import OpcUaConnection, OpcUaPoint
from hil_sim.devices.opcua_server import NAMESPACE_URI, UA_POINTS, OpcUaFacade
from hil_sim.plant import Plant

POINTS = [
    OpcUaPoint(p.name, "analyser", f"ns=2;s={p.node}", namespace_uri=NAMESPACE_URI)
    for p in UA_POINTS[:3]
]


async def make_cert(d: Path, name: str, use) -> tuple[str, str]:
    key, cert = d / f"{name}.pem", d / f"{name}.der"
    await setup_self_signed_certificate(
        key, cert, f"urn:pumproom-edge:{name}", "localhost", [use], {"commonName": name}
    )
    return str(cert), str(key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    import asyncio

    d = tmp_path_factory.mktemp("pki")

    async def gen():
        server = await make_cert(d, "server", ExtendedKeyUsageOID.SERVER_AUTH)
        client = await make_cert(d, "client", ExtendedKeyUsageOID.CLIENT_AUTH)
        return server, client

    return asyncio.run(gen())


@pytest.fixture
async def secure_server(certs):
    (cert, key), _ = certs
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = OpcUaFacade(
        Plant(), "127.0.0.1", port, certificate=cert, private_key=key, users={"op": "secret"}
    )
    await server.start()
    yield server
    await server.stop()


def spec(server, certs, **kw) -> OpcUaConnection:
    (server_cert, _), (cert, key) = certs
    kw.setdefault("security_policy", "Basic256Sha256")
    kw.setdefault("certificate", cert)
    kw.setdefault("private_key", key)
    kw.setdefault("server_certificate", server_cert)
    return OpcUaConnection("analyser", server.endpoint, 2.0, 4.0, **kw)


@pytest.mark.parametrize(
    ("mode", "identity"),
    [
        ("Sign", {"username": "op", "password": "secret"}),
        ("SignAndEncrypt", {"username": "op", "password": "secret"}),
        ("SignAndEncrypt", "certificate"),
    ],
)
async def test_secure_session_reads(secure_server, certs, mode, identity):
    _, (cert, key) = certs
    if identity == "certificate":
        identity = {"user_certificate": cert, "user_private_key": key}
    drv = create(spec(secure_server, certs, security_mode=mode, **identity))
    await drv.connect()
    try:
        got = await drv.read(drv.plan(POINTS))
        assert all(r.quality is Quality.GOOD for r in got), got
    finally:
        await drv.close()


@pytest.mark.parametrize(
    "kw",
    [
        {"security_policy": "None"},  # no unsecured endpoint is offered
        {"security_mode": "SignAndEncrypt", "username": "op", "password": "wrong"},
        {"security_mode": "SignAndEncrypt"},  # anonymous refused
    ],
)
async def test_refused_sessions_are_connect_errors(secure_server, certs, kw):
    drv = create(spec(secure_server, certs, **kw))
    with pytest.raises(ConnectError):
        await drv.connect()
    await drv.close()
