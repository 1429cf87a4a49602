"""The MQTT connection against a real Mosquitto (private, loopback) and a real silent listener:
what the agent learns of a retained message, and what a connect failure says."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from agent.mqtt import BrokerSettings, ConnectFailed, MqttConnection
from tests.procs import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


def _publish(port: int, topic: str, payload: bytes, retain: bool) -> None:
    """Publish once at QoS 1 from another client (the platform), blocking until PUBACK."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"p-{uuid.uuid4().hex[:6]}",
                    protocol=paho.MQTTv5)  # fmt: skip
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


PROBE = b"probe-"
"""Payloads of the messages that show a subscription is in force."""


async def _received(
    port: int, mqtt5: bool, topic: str, publish: list[tuple[bytes, bool]]
) -> list[tuple[bytes, bool]]:
    """Connect an agent-side MqttConnection, subscribe, have the platform publish ``publish``
    (payload, retain) while subscribed; return (payload, retained flag) as the agent saw them."""
    got: list[tuple[bytes, bool]] = []
    settings = BrokerSettings("127.0.0.1", port, f"gw-{uuid.uuid4().hex[:6]}", mqtt5=mqtt5)
    conn = await MqttConnection.connect(settings)
    try:
        conn.on_message = lambda t, p, props, retained: got.append((p, retained))
        conn.subscribe(topic)
        # the subscription is in force once a probe published on the topic comes back (a fixed
        # 0.3 s for the SUBACK lost the race on a loaded machine); a retained message already
        # there arrives first, as on any subscription. Probes are left out of what is returned.
        for n in range(100):
            await asyncio.to_thread(_publish, port, topic, PROBE + b"%d" % n, False)
            await asyncio.sleep(0.2)
            if any(p.startswith(PROBE) for p, _ in got):
                break
        else:
            raise AssertionError(f"no probe on {topic} came back: not subscribed after 20 s")
        for payload, retain in publish:
            await asyncio.to_thread(_publish, port, topic, payload, retain)
        for _ in range(200):  # causality: wait for the last one published, generously
            if any(p == publish[-1][0] for p, _ in got):
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return [(p, r) for p, r in got if not p.startswith(PROBE)]


async def test_mqtt5_sees_the_retain_flag_of_a_message_published_while_subscribed(
    broker: Mosquitto,
) -> None:
    """Failed before retain-as-published: the broker cleared the flag on live delivery, so a
    retained command was carried out as a normal one."""
    got = await _received(broker.port, True, "t/cmd", [(b"normal", False), (b"kept", True)])
    assert got == [(b"normal", False), (b"kept", True)]


async def test_mqtt311_cannot_see_the_flag_on_live_delivery_only_on_subscription(
    broker: Mosquitto,
) -> None:
    """The documented MQTT 3.1.1 limitation (§3.3.1.3): live delivery clears the flag; the next
    subscription (the agent's reconnect) gets the retained message flagged."""
    live = await _received(broker.port, False, "t/cmd3", [(b"kept", True)])
    assert live == [(b"kept", False)]
    again = await _received(broker.port, False, "t/cmd3", [(b"marker", False)])
    assert (b"kept", True) in again


class SilentListener:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


async def test_a_broker_that_never_answers_is_named_in_the_error() -> None:
    """Failed before: the message was '127.0.0.1:PORT: ' (str(TimeoutError()) is empty)."""
    listener = SilentListener()
    try:
        settings = BrokerSettings("127.0.0.1", listener.port, "gw-silent", connect_timeout_s=1.0)
        with pytest.raises(ConnectFailed) as info:
            await MqttConnection.connect(settings)
        assert listener.accepted, "the TCP connection was made: it is the CONNACK that is missing"
        text = str(info.value)
        assert text == f"127.0.0.1:{listener.port}: no CONNACK within 1 s", text
        assert not info.value.unreachable, "TCP answered: back off, do not probe"
    finally:
        listener.close()


async def test_a_refused_tcp_connect_keeps_its_os_error_text() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])  # bound, not listening: connection refused
        with pytest.raises(ConnectFailed) as info:
            await MqttConnection.connect(BrokerSettings("127.0.0.1", port, "gw-refused"))
    text: Any = str(info.value)
    assert text.startswith(f"127.0.0.1:{port}: ") and "refused" in text.lower(), text
    assert info.value.unreachable, "no TCP connection: probe until the broker is back"
