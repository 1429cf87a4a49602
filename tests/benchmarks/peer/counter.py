"""The counter subscriber: values delivered to the broker by either gateway.

Ours publishes telemetry on ``pumproom/v1/{site}/{gw}/telemetry[/backfill]`` as contract v1
JSON (``{"series": {point: {"s": [[seq, t, value, ...], ...]}}}``, zlib-compressed when the first
byte is 0x78, RFC 1950); the peer publishes on ``v1/gateway/telemetry`` as
``{device: [{"ts": ms, "values": {key: value, ...}}, ...]}`` (ThingsBoard gateway MQTT API).
Anything else (status, meta, events, the peer's own statistics) is not counted.
"""

from __future__ import annotations

import json
import threading
import zlib
from typing import Any

import paho.mqtt.client as paho

PEER_TELEMETRY = "v1/gateway/telemetry"


def count_values(topic: str, payload: bytes, last: dict[str, Any] | None = None) -> int:
    """Telemetry values in one message (0 for a message that is not telemetry); ``last``, when
    given, gets each point's (key's) latest value. Raises ``ValueError`` naming the topic when a
    telemetry message is not valid JSON."""
    ours = topic.startswith("pumproom/") and ("/telemetry" in topic)
    if not ours and topic != PEER_TELEMETRY:
        return 0
    try:
        if ours and payload[:1] == b"\x78":
            payload = zlib.decompress(payload)
        body = json.loads(payload)
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"telemetry on {topic} is not JSON: {exc}") from exc
    if ours:
        if last is not None:
            last.update((p, series["s"][-1][2]) for p, series in body["series"].items())
        return sum(len(series["s"]) for series in body["series"].values())
    if last is not None:
        for entries in body.values():
            for entry in entries:
                last.update(entry["values"])
    return sum(len(entry["values"]) for entries in body.values() for entry in entries)


class Counter:
    """Subscribes to ``#`` on the broker at ``port`` and counts :func:`count_values`; bad
    messages are kept in ``errors``. ``start()`` raises ``TimeoutError`` without a SUBACK in
    10 s."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.errors: list[str] = []
        self._values = 0
        self._bytes = 0
        self.last: dict[str, Any] = {}
        """Latest value per point (ours: ``f.7``) or key (the peer: ``f7``)."""
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="peer-counter")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    @property
    def values(self) -> int:
        with self._lock:
            return self._values

    @property
    def payload_bytes(self) -> int:
        """MQTT payload bytes of the telemetry messages counted (as sent: compressed if so)."""
        with self._lock:
            return self._bytes

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            n = count_values(msg.topic, msg.payload, self.last)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.errors.append(f"{msg.topic}: {exc!r}")
            return
        with self._lock:
            self._values += n
            self._bytes += len(msg.payload) if n else 0

    def start(self) -> Counter:
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.stop()
            raise TimeoutError(f"counter: no SUBACK from the broker on port {self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
