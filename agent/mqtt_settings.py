"""What an MQTT connection is opened with: the broker settings and the last will."""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Will:
    """Last will: published by the broker, retained, when the connection is lost uncleanly."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where and how to connect.

    Attributes:
        host: broker host.
        port: broker TCP port (1883 plain, 8883 TLS by IANA registration).
        client_id: MQTT client identifier.
        keepalive_s: MQTT keep-alive, seconds.
        mqtt5: MQTT 5 when true, else 3.1.1.
        tls: TLS context, or ``None`` for plain TCP.
        username: user name or ``None``.
        password: password or ``None``.
        connect_timeout_s: bound on TCP connect plus CONNACK, seconds.
        max_inflight: most QoS 1 publishes awaiting PUBACK on this connection, all topics
            together; the broker's Receive Maximum lowers it
            (:attr:`agent.mqtt.MqttConnection.inflight_limit`).
        max_packet_size: our own bound on a packet, bytes, or ``None``; the broker's Maximum
            Packet Size lowers it (:attr:`agent.mqtt.MqttConnection.max_packet_size`).
    """

    host: str
    port: int
    client_id: str
    keepalive_s: int = 30
    mqtt5: bool = True
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    connect_timeout_s: float = 10.0
    max_inflight: int = 10
    max_packet_size: int | None = None
