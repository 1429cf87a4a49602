"""OPC UA security: Basic256Sha256 Sign / SignAndEncrypt with user name or certificate identity,
against the simulator's server offering no unsecured endpoint."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.config import load_config
from agent.core.model import ConnectError, Quality
from drivers import create
from drivers.specs import OpcUaConnection, OpcUaPoint
from hil_sim.devices.opcua_server import NAMESPACE_URI, UA_POINTS, OpcUaFacade
from hil_sim.plant import Plant
from tests.faults_field.pki import client_certificate

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
    kw.setdefault("application_uri", "urn:pumproom-edge:client")  # the certificate's SAN URI
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


SITE = """\
site: {{id: pr-7, gateway_id: gw-1}}
devices:
  - name: analyser
    transport: opcua
    endpoint: {endpoint}
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    certificate: {cert}
    private_key: {key}
    server_certificate: {server_cert}
    username: op
    password: secret
    points:
      - {{name: wq.ph, node_id: "ns=2;s=Analyser.pH", namespace_uri: "{ns}"}}
uplink: {{broker: "mqtt://127.0.0.1:1883"}}
buffer: {{path: {buf}}}
"""


async def test_project_default_application_uri_with_the_readme_certificate(
    secure_server, certs, tmp_path
):
    """No application_uri in the config: the client presents urn:pumproom-edge:<site>:<gateway>,
    and a certificate made with the README's openssl command for that URI is accepted by a
    server that checks the URI against the certificate (as real servers do)."""
    (server_cert, _), _ = certs
    cert, key = client_certificate(tmp_path, "urn:pumproom-edge:pr-7:gw-1")
    path = tmp_path / "site.yaml"
    path.write_text(
        SITE.format(endpoint=secure_server.endpoint, cert=cert, key=key, server_cert=server_cert,
                    ns=NAMESPACE_URI, buf=tmp_path / "b.sqlite")
    )  # fmt: skip
    (conn,) = load_config(path).connections()
    assert conn.spec.application_uri == "urn:pumproom-edge:pr-7:gw-1"
    drv = create(conn.spec)
    await drv.connect()
    try:
        got = await drv.read(drv.plan([p for g in conn.groups.values() for p in g]))
        assert [r.quality for r in got] == [Quality.GOOD]
    finally:
        await drv.close()
    # a certificate for another URI (asyncua's example one) is refused by the server
    other, other_key = client_certificate(tmp_path, "urn:freeopcua:client", "other")
    drv = create(replace(conn.spec, certificate=other, private_key=other_key))
    with pytest.raises(ConnectError):
        await drv.connect()
    await drv.close()
