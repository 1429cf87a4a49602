"""The in-flight window of one MQTT connection: QoS 1 publishes sent and awaiting their PUBACK,
and those waiting, in order, for a free place.

The limit is the connection's (:attr:`agent.mqtt.MqttConnection.inflight_limit`: ours, lowered to
the broker's Receive Maximum, MQTT 5 §3.3.4); nothing here touches the socket: sending is the
connection's ``transmit``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

from paho.mqtt.properties import Properties

from agent.mqtt_codes import PublishFailed


@dataclass(slots=True)
class Queued:
    """A publish: its packet's parts, and the future its caller waits on (resolved on PUBACK)."""

    topic: str
    payload: bytes
    retain: bool
    props: Properties | None
    fut: asyncio.Future[None]


class InflightWindow:
    """Publishes on the wire (by packet id) and those waiting for a place.

    Args:
        limit: the current in-flight limit (most publishes awaiting PUBACK at once).
        transmit: hands a publish to the client; returns its packet id (mid), raises
            :class:`~agent.mqtt_codes.PublishFailed` when the client refuses it.
    """

    def __init__(self, limit: Callable[[], int], transmit: Callable[[Queued], int]) -> None:
        self._limit = limit
        self._transmit = transmit
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._queued: collections.deque[Queued] = collections.deque()

    @property
    def inflight(self) -> int:
        """Publishes sent and not yet acknowledged (those waiting for a place not counted)."""
        return len(self._pending)

    def submit(self, item: Queued) -> None:
        """Send ``item`` now if a place is free and nobody waits before it; else queue it."""
        if len(self._pending) < self._limit() and not self._queued:
            self._send(item)
        else:
            self._queued.append(item)

    def acked(self, mid: int) -> asyncio.Future[None] | None:
        """PUBACK of packet ``mid``: its place is freed (waiting publishes go out) and its
        future returned for the caller to resolve (``None`` when unknown)."""
        fut = self._pending.pop(mid, None)
        self._send_queued()
        return fut

    def fail_all(self, why: str) -> None:
        """The connection ended: every publish sent or waiting fails with ``PublishFailed(why)``."""
        pending, self._pending = self._pending, {}
        queued, self._queued = [q.fut for q in self._queued], collections.deque()
        for fut in [*pending.values(), *queued]:
            if not fut.done():
                fut.set_exception(PublishFailed(why))

    def _send(self, q: Queued) -> None:
        try:
            mid = self._transmit(q)
        except PublishFailed as exc:
            q.fut.set_exception(exc)
            return
        # the PUBACK can only be handled later on this same loop: no race.
        self._pending[mid] = q.fut

    def _send_queued(self) -> None:
        """Send waiting publishes while places are free (a caller that gave up is skipped)."""
        while self._queued and len(self._pending) < self._limit():
            q = self._queued.popleft()
            if not q.fut.done():
                self._send(q)
