"""MQTT vocabulary the uplink reacts to: failures, MQTT 5 reason codes, PUBLISH packet sizes.

Reason codes from MQTT 5.0 §2.4 (DISCONNECT §3.14.2.1, PUBACK §3.4.2.1); sizes from §1.5.5
(Variable Byte Integer) and §3.3 (PUBLISH).
"""

from __future__ import annotations

from paho.mqtt.properties import Properties


class PublishFailed(Exception):
    """A QoS 1 publish was not acknowledged with success (failure reason code, or the connection
    ended first). The message must be sent again later."""


class PublishRefused(PublishFailed):
    """The broker answered with a PUBACK failure reason code (MQTT 5 §3.4.2.1: 0x80 and up).

    Attributes:
        code: the reason code, e.g. 0x87 (not authorised), 0x97 (quota exceeded).
        name: its name in MQTT 5 §2.4 (``Not authorized``).
    """

    def __init__(self, code: int, name: str) -> None:
        super().__init__(f"PUBACK reason {name} ({code:#04x})")
        self.code, self.name = code, name


class PacketTooLarge(PublishFailed):
    """The PUBLISH packet would exceed the broker's Maximum Packet Size (MQTT 5 §3.2.2.3.6: the
    client MUST NOT send it). Nothing was sent; the caller must make the message smaller.

    Attributes:
        size: the encoded PUBLISH packet, bytes.
        limit: the largest packet the broker accepts, bytes.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"packet of {size} bytes exceeds the broker's maximum of {limit} bytes")
        self.size, self.limit = size, limit


SESSION_TAKEN_OVER = 0x8E
"""MQTT 5 §3.14.2.1 DISCONNECT reason: another connection with the same client id."""

RECEIVE_MAXIMUM_EXCEEDED = 0x93
"""MQTT 5 §3.14.2.1 DISCONNECT reason: more QoS 1 publishes in flight than Receive Maximum."""

PACKET_TOO_LARGE = 0x95
"""MQTT 5 §3.14.2.1 DISCONNECT (and §3.4.2.1 PUBACK) reason: a packet over the broker's limit."""

RECEIVE_MAXIMUM_DEFAULT = 65535
"""MQTT 5 §3.2.2.3.3: a CONNACK without Receive Maximum means 65,535."""


class ConnectFailed(Exception):
    """The broker could not be reached, refused the connection, or did not answer in time.

    Attributes:
        unreachable: True when not even the TCP connection was made (refused, no route, timed
            out): the broker is down or cut off, and a cheap TCP probe tells when it is back.
    """

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def varint_len(n: int) -> int:
    """Bytes of MQTT's Variable Byte Integer encoding of ``n`` (MQTT 5 §1.5.5: 7 bits a byte)."""
    size = 1
    while n >= 128:
        n >>= 7
        size += 1
    return size


def publish_packet_size(topic: str, payload_len: int, properties: Properties | None) -> int:
    """Bytes of a QoS 1 PUBLISH packet on the wire (MQTT 5 §3.3; 3.1.1 §3.3 without properties).

    Fixed header (1 byte + Remaining Length), topic name (2 + UTF-8 bytes), packet identifier
    (2), the property block (its own length prefix included, MQTT 5 only) and the payload.
    """
    remaining = 2 + len(topic.encode()) + 2 + payload_len
    if properties is not None:
        remaining += len(properties.pack())
    return 1 + varint_len(remaining) + remaining
