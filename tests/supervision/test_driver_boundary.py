"""No library exception escapes ``drivers/`` (drivers/base.py maps them at the interface).

Two real cases against the simulator's OPC UA server with Basic256Sha256: a server that does
not trust the client certificate (asyncua raises a bare ``AssertionError``) and a client
certificate made with an elliptic-curve key, the default of many modern certificate tools
(asyncua raises ``TypeError``). Before the mapping both escaped the driver and ended the
connection's poller for good: no samples, no retry, nothing in status.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from pathlib import Path

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent import status
from agent.core.model import ConnectError, ConnectionLost, Quality, WriteError
from agent.poller import ConnectionPoller
from drivers import Driver, create
from drivers.specs import OpcUaConnection, OpcUaPoint
from hil_sim.devices.opcua_server import NAMESPACE_URI, UA_POINTS, OpcUaFacade
from hil_sim.plant import Plant
from tests.procs import free_port

POINTS = [
    OpcUaPoint(p.name, "analyser", f"ns=2;s={p.node}", namespace_uri=NAMESPACE_URI)
    for p in UA_POINTS[:2]
]


def ec_certificate(d: Path) -> tuple[str, str]:
    """A self-signed client certificate with a P-256 key (DER) and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec-client")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("urn:pumproom-edge:ec")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (d / "ec.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (d / "ec.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(d / "ec.der"), str(d / "ec.pem")


async def _server_certificate(d: Path, name: str, use) -> tuple[str, str]:
    key, cert = d / f"{name}.pem", d / f"{name}.der"
    await setup_self_signed_certificate(
        key, cert, f"urn:pumproom-edge:{name}", "localhost", [use], {"commonName": name}
    )
    return str(cert), str(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """Certificate and key files, made once: server, client, other (RSA), ec (P-256)."""
    d = tmp_path_factory.mktemp("pki")

    async def make() -> dict[str, tuple[str, str]]:
        return {
            "server": await _server_certificate(d, "server", ExtendedKeyUsageOID.SERVER_AUTH),
            "client": await _server_certificate(d, "client", ExtendedKeyUsageOID.CLIENT_AUTH),
            "other": await _server_certificate(d, "other", ExtendedKeyUsageOID.CLIENT_AUTH),
        }

    made = asyncio.run(make())
    made["ec"] = ec_certificate(d)
    return made


@pytest.fixture
async def server(pki):
    """The simulator's OPC UA server, Basic256Sha256 only, trusting only the ``other`` client
    certificate."""
    cert, key = pki["server"]
    s = OpcUaFacade(
        Plant(), "127.0.0.1", free_port(), certificate=cert, private_key=key,
        users={"op": "secret"}, trusted_clients=[pki["other"][0]],
    )  # fmt: skip
    await s.start()
    yield s
    await s.stop()


async def test_a_refused_client_is_a_connect_error_retried_and_shown(server, pki, caplog):
    """Two real cases on one server: the ``client`` certificate is not trusted (the server
    refuses the secure channel in its OpenSecureChannel response; asyncua raises a bare
    ``AssertionError``, the case issue 11 reported), and the ``ec`` certificate has a P-256 key
    (asyncua's RSA signing call raises ``TypeError`` inside ``connect()``)."""
    for client, kind in (("client", "AssertionError"), ("ec", "TypeError")):
        await _refused_connection(server, pki, client, kind, caplog)


async def _refused_connection(server, pki, client, kind, caplog):
    cert, key = pki[client]
    spec = OpcUaConnection(
        "analyser", server.endpoint, 2.0, 4.0, security_policy="Basic256Sha256",
        security_mode="SignAndEncrypt", certificate=cert, private_key=key,
        server_certificate=pki["server"][0], username="op", password="secret",
    )  # fmt: skip
    drv = create(spec)
    with pytest.raises(ConnectError, match=kind):
        await drv.connect()
    await drv.close()

    got = []
    poller = ConnectionPoller(create(spec), {0.2: POINTS}, lambda r, ts: got.extend(r))
    poller.backoff.initial_s = 0.2  # the shared Backoff, quicker for the test
    caplog.set_level(logging.WARNING)
    caplog.clear()
    task = asyncio.create_task(poller.run())
    try:
        deadline = time.monotonic() + 20
        while poller.counters.connect_failures < 4 and time.monotonic() < deadline:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
        assert not task.done(), "the poller ended"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    c = poller.counters
    assert c.connect_failures >= 4 and poller.backoff.failures >= 4
    assert got and {r.quality for r in got} == {Quality.COMM_FAIL}  # every tick says so
    entry = status._connection(poller, time.monotonic())
    assert entry["ok"] is False and kind in entry["last_error"]
    assert entry["driver"]["unmapped_errors"] == {kind: c.connect_failures}
    # logged once by name: one ERROR with the traceback, one WARNING from the poller (then a
    # summary every 10 minutes: agent.logs.Repeated)
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("drivers")
    ]
    assert len(errors) == 1 and errors[0].exc_info and "analyser" in errors[0].getMessage()
    lines = [r.getMessage() for r in caplog.records if ": cannot connect:" in r.getMessage()]
    assert len(lines) == 1 and kind in lines[0]


class _Leaky(Driver):
    """A driver whose library lets everything through (what asyncua, pymodbus and pyserial
    occasionally do), to pin each method's mapping at the interface."""

    name = "leaky"

    def plan(self, points):  # pragma: no cover - not used
        raise NotImplementedError

    async def connect(self) -> None:
        raise AssertionError  # asyncua when the server answers OpenSecureChannel with a fault

    async def read(self, plan):
        raise KeyError("node")

    async def write(self, point, value) -> None:
        raise TypeError("bad variant")

    async def close(self) -> None:
        raise RuntimeError("socket already gone")


class _Cancelled(_Leaky):
    async def connect(self) -> None:
        raise asyncio.CancelledError


async def test_every_method_maps_what_its_library_lets_through(caplog):
    drv = _Leaky()
    with pytest.raises(ConnectError, match="leaky: connect: unexpected AssertionError"):
        await drv.connect()
    with pytest.raises(ConnectionLost, match="unexpected KeyError"):
        await drv.read(None)
    with pytest.raises(WriteError) as info:
        await drv.write(None, 1.0)
    assert info.value.reason == "driver:TypeError"
    assert await drv.close() is None  # never raises
    with pytest.raises(ConnectError):
        await drv.connect()
    assert drv.unmapped_errors == {
        "AssertionError": 2, "KeyError": 1, "TypeError": 1, "RuntimeError": 1,
    }  # fmt: skip
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 4 and all(r.exc_info for r in logged)  # the first of each type
    with pytest.raises(asyncio.CancelledError):  # a cancellation is never mapped
        await _Cancelled().connect()
