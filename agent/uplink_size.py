"""Every packet fits the broker's Maximum Packet Size (MQTT 5 §3.2.2.3.6).

AWS IoT Core takes at most 128 KB a message, Azure Event Grid 512 KB, a hardened Mosquitto
whatever ``max_packet_size`` says; the broker announces its limit in CONNACK and drops the
connection (DISCONNECT 0x95) on a larger packet. So the uplink sizes what it sends by encoded
bytes (topic and properties included, :meth:`agent.mqtt.MqttConnection.fits`):

* telemetry batches are halved until they fit (:mod:`agent.telemetry`);
* event batches take the longest prefix that fits (:func:`events_that_fit`);
* the retained ``meta`` is split into parts (:func:`meta_parts`): part 0 on ``meta`` with
  ``part: 0, parts: n`` and the first points, parts 1..n-1 on ``meta/1`` .. ``meta/{n-1}``
  (retained too), each with the header and its share of ``points``.

A message that cannot fit even alone (one event, one sample, one point description) is set
aside, never retried forever: it is named in a WARNING, counted (``uplink.set_aside`` in the
status) and, for a buffered sample or event, reported by a ``data_loss`` event with reason
``too_large``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from agent import contract
from agent.core.model import WallClock
from agent.mqtt import (
    PACKET_TOO_LARGE,
    RECEIVE_MAXIMUM_DEFAULT,
    RECEIVE_MAXIMUM_EXCEEDED,
    BrokerSettings,
    MqttConnection,
)
from agent.store import Event

log = logging.getLogger(__name__)

MIN_PACKET_CAP = 1024
"""Smallest packet bound the uplink learns from a DISCONNECT 0x95, bytes."""


def events_that_fit(
    conn: MqttConnection,
    topic: str,
    ident: contract.Identity,
    items: Sequence[Event],
    clock: WallClock,
) -> tuple[bytes | None, list[Event]]:
    """The longest prefix of ``items`` whose event batch fits one packet: (payload, events).

    Returns ``(None, [first])`` when even the first event alone does not fit. ``items`` must be
    non-empty. Halves the count until it fits: at most log2(len(items)) extra encodings.
    """
    n = len(items)
    while True:
        batch = list(items[:n])
        payload = contract.events(ident, [(e.seq, e.body) for e in batch], sent_ms=clock.now_ms())
        if conn.fits(topic, len(payload)):
            return payload, batch
        if n == 1:
            return None, batch
        n = max(1, n // 2)


def meta_parts(
    conn: MqttConnection,
    topics: contract.Topics,
    ident: contract.Identity,
    catalogue: Sequence[Mapping[str, Any]],
    ts_ms: int,
    extra: Mapping[str, Any],
) -> list[tuple[str, bytes]]:
    """The retained meta as (topic, payload) pairs that each fit one packet.

    One pair (``meta``, the whole catalogue, no ``part``) when it fits; else n parts (see the
    module docstring), n the smallest count whose every part fits. A point whose description
    does not fit even alone is left out, named in a WARNING.
    """
    whole = contract.meta(ident, catalogue, ts_ms=ts_ms, **extra)
    if conn.fits(topics.meta, len(whole)):
        return [(topics.meta, whole)]
    points = list(catalogue)
    limit = conn.max_packet_size or len(whole)
    n = max(2, -(-len(whole) // max(1, limit - 512)))
    while True:
        size = max(1, -(-len(points) // n))
        chunks = [points[i : i + size] for i in range(0, len(points), size)] or [[]]
        out = []
        for i, chunk in enumerate(chunks):
            topic = topics.meta if i == 0 else topics.meta_part(i)
            fields = dict(extra) if i == 0 else {}
            payload = contract.meta(ident, chunk, ts_ms=ts_ms, part=i, parts=len(chunks), **fields)
            out.append((topic, payload, chunk))
        too_big = [(t, p, c) for t, p, c in out if not conn.fits(t, len(p))]
        if not too_big:
            return [(t, p) for t, p, _ in out]
        if not points:
            log.warning(
                "uplink: meta not published: even without points it exceeds the broker's"
                " maximum packet of %s bytes",
                conn.max_packet_size,
            )
            return []
        if size == 1:  # a single point does not fit: leave those points out, say which
            for _, _, chunk in too_big:
                log.warning(
                    "uplink: meta leaves out point %r: its description alone exceeds the"
                    " broker's maximum packet of %s bytes",
                    chunk[0].get("name") if chunk else None,
                    conn.max_packet_size,
                )
                points.remove(chunk[0])
            continue
        n = min(len(points), n * 2)


class LearnedLimits:
    """What earlier sessions taught about a broker that enforces more than it announces.

    * DISCONNECT 0x93 (receive maximum exceeded): half the in-flight places of that session.
    * DISCONNECT 0x95 (packet too large): packets of at most half the largest one sent.
    * MQTT 3.1.1 (no limit can be announced, no reason given): a session lost before it proved
      healthy after a packet over :data:`MIN_PACKET_CAP` went out halves the packet bound too.

    Kept for the life of the process (a restart forgets them).
    """

    def __init__(self) -> None:
        self.inflight_cap = RECEIVE_MAXIMUM_DEFAULT
        self.packet_cap: int | None = None

    def settings(self, broker: BrokerSettings, inflight_window: int) -> BrokerSettings:
        """``broker`` with the configured window and what was learned."""
        return dataclasses.replace(
            broker,
            max_inflight=min(inflight_window, self.inflight_cap),
            max_packet_size=self.packet_cap,
        )

    def disconnected(self, conn: MqttConnection) -> str:
        """Learn from the session's DISCONNECT reason code; returns what changed, for the log
        (empty when nothing did)."""
        if conn.disconnect_reason == RECEIVE_MAXIMUM_EXCEEDED:
            self.inflight_cap = max(1, conn.inflight_limit // 2)
            return f", at most {self.inflight_cap} publishes in flight from now on"
        if conn.disconnect_reason == PACKET_TOO_LARGE and conn.largest_sent > MIN_PACKET_CAP:
            self.packet_cap = max(MIN_PACKET_CAP, conn.largest_sent // 2)
            return f", packets of at most {self.packet_cap} bytes from now on"
        return ""

    def lost_early(self, conn: MqttConnection) -> None:
        """An MQTT 3.1.1 session died before it proved healthy (see the class docstring)."""
        if conn.largest_sent <= MIN_PACKET_CAP:
            return
        self.packet_cap = max(MIN_PACKET_CAP, conn.largest_sent // 2)
        log.warning(
            "uplink: connection lost soon after a packet of %d bytes (MQTT 3.1.1: the broker"
            " cannot announce a limit); packets of at most %d bytes from now on",
            conn.largest_sent,
            self.packet_cap,
        )
