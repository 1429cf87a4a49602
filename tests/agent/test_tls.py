"""TLS to a real Mosquitto on loopback: server verification and a client certificate."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from agent import contract
from agent.app import broker_settings
from agent.config import load_config
from agent.core.model import Reading, WallClock
from agent.store import Poll, Store
from agent.uplink import Uplink, UplinkSettings
from tests.procs import EXAMPLE, Mosquitto, free_port, wait_for


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
             "-days", "2", "-subj", f"/CN={name}")  # fmt: skip
    return key, crt


def _leaf(d: Path, name: str, ca: tuple[Path, Path], san: str | None) -> tuple[Path, Path]:
    key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
    )
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]), "-CAcreateserial",
             "-out", str(crt), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return key, crt


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = _ca(tmp_path, "test-ca")
    server = _leaf(tmp_path, "server", ca, "IP:127.0.0.1")
    client = _leaf(tmp_path, "gateway", ca, None)
    other_ca = _ca(tmp_path, "other-ca")
    return {"ca": ca[1], "server_key": server[0], "server_crt": server[1], "client_key": client[0],
            "client_crt": client[1], "other_ca": other_ca[1]}  # fmt: skip


@pytest.fixture
def tls_broker(tmp_path: Path, pki: dict[str, Path]):
    port = free_port()
    conf = (f"user root\nlistener {port} 127.0.0.1\ncafile {pki['ca']}\ncertfile {pki['server_crt']}\n"
            f"keyfile {pki['server_key']}\nrequire_certificate true\n")  # fmt: skip
    broker = Mosquitto(tmp_path, port=port)
    broker.conf.write_text(
        conf + f"allow_anonymous true\nlog_dest file {broker.dir}/mosquitto.log\n"
    )
    broker.start()
    yield broker
    broker.stop()


def _uplink(tmp_path: Path, port: int, ca: Path, pki: dict[str, Path], store: Store) -> Uplink:
    cfg = load_config(EXAMPLE, [
        f"uplink.broker=mqtts://127.0.0.1:{port}", f"uplink.tls.ca_file={ca}",
        f"uplink.tls.cert_file={pki['client_crt']}", f"uplink.tls.key_file={pki['client_key']}",
        f"buffer.path={tmp_path / 'b.sqlite'}",
    ])  # fmt: skip
    broker = broker_settings(cfg, "gw-tls")
    assert broker.tls is not None and broker.port == port
    return Uplink(broker, contract.Topics.for_gateway("pumproom/v1", "tls-site", "gw-tls"),
                  contract.Identity("tls-site", "gw-tls"), store, {}, [], UplinkSettings(), WallClock())  # fmt: skip


def _subscriber(port: int, pki: dict[str, Path], got: list[bytes]) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="tls-platform")
    c.tls_set(
        ca_certs=str(pki["ca"]), certfile=str(pki["client_crt"]), keyfile=str(pki["client_key"])
    )
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("pumproom/v1/tls-site/#", qos=1)
    c.on_message = lambda cl, u, m: got.append(m.payload)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


async def test_uplink_over_tls_with_server_verification_and_client_certificate(
    tmp_path: Path, pki: dict[str, Path], tls_broker: Mosquitto
) -> None:
    got: list[bytes] = []
    sub = _subscriber(tls_broker.port, pki, got)
    store = await Store.open(tmp_path / "b.sqlite", 1 << 24)
    up = _uplink(tmp_path, tls_broker.port, pki["ca"], pki, store)
    task = asyncio.create_task(up.run())
    try:
        await asyncio.wait_for(up.connected.wait(), 10)
        result = await store.append([Poll([Reading("p_out", 0.42)], 1000, True)])
        up.offer(result.samples)
        await asyncio.to_thread(
            wait_for, lambda: any(b'"p_out"' in m for m in got), 10, "telemetry over TLS"
        )
        await asyncio.to_thread(wait_for, lambda: store.counters.acked == 1, 5, "the PUBACK")
        assert await store.pending() == 0
    finally:
        await up.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
        sub.loop_stop()


async def test_a_broker_certificate_from_another_ca_is_refused_and_nothing_leaves_the_buffer(
    tmp_path: Path, pki: dict[str, Path], tls_broker: Mosquitto
) -> None:
    store = await Store.open(tmp_path / "b.sqlite", 1 << 24)
    await store.append([Poll([Reading("p_out", 0.42)], 1000, True)])
    up = _uplink(tmp_path, tls_broker.port, pki["other_ca"], pki, store)
    task = asyncio.create_task(up.run())
    try:
        await asyncio.to_thread(
            wait_for, lambda: up.counters.connect_failures >= 1, 10, "a refused connect"
        )
        assert not up.connected.is_set()
        assert "certificate verify failed" in (up.counters.last_error or ""), up.counters.last_error
        assert await store.pending() == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
