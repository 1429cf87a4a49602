"""A few-line stand-in for the ThingsBoard server's answer to the gateway's ``getSessionLimits``.

The peer (tb-mqtt-client 1.13, ``tb_device_mqtt.TBDeviceMqttClient``) after every CONNACK
subscribes to ``v1/devices/me/rpc/response/+`` and publishes
``{"method": "getSessionLimits", "params": {"timeout": 5000}}`` to
``v1/devices/me/rpc/request/<id>``; ``tb_client.TBClient.is_connected()`` stays false, so the
gateway sends nothing, until the answer arrives on ``v1/devices/me/rpc/response/<id>``
(``tb_gateway_mqtt.TBGatewayMqttClient.__on_service_configuration``). A plain broker never
answers. The answer below says "no limits": rate limits ``"0:0,"`` (``RateLimit``: no limit),
``maxInflightMessages`` 100 and ``maxPayloadSize`` 65536 bytes, the shape the ThingsBoard server
sends (source read: the peer's installed ``tb_device_mqtt.py``, ``on_service_configuration``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as paho

REQUEST_TOPIC = "v1/devices/me/rpc/request/"
RESPONSE_TOPIC = "v1/devices/me/rpc/response/"
NO_LIMIT = "0:0,"
LIMITS: dict[str, Any] = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    "rateLimits": {
        "messages": NO_LIMIT,
        "telemetryMessages": NO_LIMIT,
        "telemetryDataPoints": NO_LIMIT,
    },
    "gatewayRateLimits": {
        "messages": NO_LIMIT,
        "telemetryMessages": NO_LIMIT,
        "telemetryDataPoints": NO_LIMIT,
    },
}


def answer(topic: str, payload: bytes) -> tuple[str, bytes] | None:
    """The (topic, payload) to publish for a request on ``topic``, or ``None`` when it is not a
    ``getSessionLimits`` RPC request. Raises ``ValueError`` on a request that is not JSON."""
    if not topic.startswith(REQUEST_TOPIC):
        return None
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise ValueError(f"RPC request on {topic} is not JSON: {payload[:80]!r}") from exc
    if not isinstance(body, dict) or body.get("method") != "getSessionLimits":
        return None
    return RESPONSE_TOPIC + topic[len(REQUEST_TOPIC) :], json.dumps(LIMITS).encode()


class SessionLimitsStandIn:
    """An MQTT client on the benchmark's broker that answers every ``getSessionLimits`` (see the
    module docstring); ``answered`` counts the answers. ``start()`` waits up to 10 s for the
    SUBACK and raises ``TimeoutError`` otherwise."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.answered = 0
        self.errors: list[str] = []
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="tb-standin")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(REQUEST_TOPIC + "+", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            reply = answer(msg.topic, msg.payload)
        except ValueError as exc:
            self.errors.append(str(exc))
            return
        if reply is not None:
            client.publish(reply[0], reply[1], qos=1)
            self.answered += 1

    def start(self) -> SessionLimitsStandIn:
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.stop()
            raise TimeoutError(f"stand-in: no SUBACK from the broker on port {self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
