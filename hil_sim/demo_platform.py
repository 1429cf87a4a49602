"""The demo's platform side: one MQTT 5 client that watches the gateway and sends commands.

:class:`LiveView` subscribes to everything under the topic prefix (README "Topics"), keeps the
latest good sample per point, the retained ``status`` and ``meta``, the alarm events and the
command answers, and publishes ``setpoint.set`` as the platform operator would. It talks to the
agent only over MQTT (``hil_sim`` never imports ``agent``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hil_sim.demo_view import Room


class LiveView:
    """The platform's side: subscribes to the gateway's topics over MQTT 5, keeps the latest
    sample per point, the alarms and the command answers, and sends commands (the operator)."""

    def __init__(self, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.meta: dict[str, Any] = {}
        self.status: dict[str, Any] = {}
        self.latest: dict[str, tuple[int, Any, str]] = {}
        self.alarms: dict[str, str] = {}
        self.answers: list[dict[str, Any]] = []
        self.messages = 0
        self._lock = threading.Lock()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="demo-platform", protocol=paho.MQTTv5
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        with self._lock:
            self.messages += 1
            if msg.topic.endswith("/meta"):
                self.meta = body
            elif msg.topic.endswith("/status"):
                self.status = body
            elif "/cmd/res" in msg.topic:
                self.answers.append(body)
            elif msg.topic.endswith("/event"):
                for e in body.get("events", []):
                    if e.get("type") == "alarm" and "code" in e:
                        self.alarms[str(e["code"])] = str(e.get("state"))
            elif "/telemetry" in msg.topic:
                for point, series in body.get("series", {}).items():
                    for s in series["s"]:
                        q = s[3] if len(s) > 3 else "g"
                        if point not in self.latest or s[0] > self.latest[point][0]:
                            self.latest[point] = (s[0], s[2], q)

    def room(self) -> Room:
        """What the platform knows now, for :func:`hil_sim.demo_view.render`."""
        with self._lock:
            latest = {k: v for k, (_, v, q) in self.latest.items() if q == "g"}
            devices: dict[str, list[int]] = {}  # transport → [fully uplinked, devices]
            by_device: dict[str, tuple[str, list[str]]] = {}
            for p in self.meta.get("points", []):
                entry = by_device.setdefault(p["device"], (p["source"].split()[0], []))
                entry[1].append(p["name"])
            for transport, names in by_device.values():
                counts = devices.setdefault(transport, [0, 0])
                counts[0] += all(n in self.latest for n in names)
                counts[1] += 1
            return Room(
                latest=latest,
                status=dict(self.status),
                alarms=dict(self.alarms),
                devices={t: (d, n) for t, (d, n) in devices.items()},
                messages=self.messages,
            )

    def send_setpoint(self, value_mpa: float, reason: str) -> str:
        """Publish ``setpoint.set`` on ``cmd/req`` (QoS 1, MQTT 5 response topic, correlation
        data and 60 s message expiry, README "Commands"); returns the command id."""
        base = f"{self.prefix}/{self.status.get('site', 'demo-site')}/{self.status.get('gw')}"
        cid = f"c-demo-{uuid.uuid4().hex[:8]}"
        now_ms = int(time.time() * 1000)
        body = {
            "v": 1, "id": cid, "method": "setpoint.set", "issued_at": now_ms,
            "expires_at": now_ms + 60_000,
            "issuer": {"principal": "ops:demo", "reason": reason},
            "params": {"value": value_mpa, "unit": "MPa"},
        }  # fmt: skip
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{base}/cmd/res"
        props.CorrelationData = cid.encode()
        props.MessageExpiryInterval = 60
        self.client.publish(f"{base}/cmd/req", json.dumps(body), qos=1, properties=props)
        return cid

    def answers_for(self, cid: str) -> list[dict[str, Any]]:
        """The ``cmd/res`` answers received for command ``cid`` so far."""
        with self._lock:
            return [a for a in self.answers if a.get("id") == cid]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
