"""The uplink's retained messages of a session: the ``online`` status (birth, then refreshed with
health) and the ``meta`` (point and command descriptions, in parts when one packet cannot hold
it), and, for ``cbor-c1`` telemetry, the point table that meta defines.

A refusal is named and counted (:mod:`agent.refusals`) and the session goes on; a lost
connection raises :class:`~agent.mqtt.PublishFailed` to the session loop
(:class:`agent.uplink.Uplink`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent import contract, wire_cbor
from agent.core.aio import wait_event, within
from agent.core.model import WallClock
from agent.mqtt import MqttConnection, PacketTooLarge, PublishFailed, PublishRefused
from agent.refusals import Refusals
from agent.uplink_settings import UplinkCounters, UplinkSettings
from agent.uplink_size import meta_parts
from agent.wire_cbor import PointTable

log = logging.getLogger("agent.uplink")


class RetainedMessages:
    """Publishes the retained ``online`` status and ``meta`` of a session.

    Args:
        topics: topic names of this gateway.
        catalogue: point descriptions for the retained ``meta`` message.
        settings: the uplink's settings (``status_interval_s``, ``telemetry_format``).
        clock: wall clock for stamps.
        status_extra: callable returning extra fields for the status message.
        meta_extra: extra fields for the retained meta message (versions, command bounds).
        refusals: where a refused publish is named and counted.
        counters: the uplink's counters (``last_error``).
    """

    def __init__(
        self,
        topics: contract.Topics,
        catalogue: Sequence[Mapping[str, Any]],
        settings: UplinkSettings,
        clock: WallClock,
        status_extra: Callable[[], dict[str, Any]],
        meta_extra: Mapping[str, Any],
        refusals: Refusals,
        counters: UplinkCounters,
    ) -> None:
        self.topics = topics
        self.catalogue = catalogue
        self.settings = settings
        self.clock = clock
        self.status_extra = status_extra
        self.meta_extra = meta_extra
        self.refusals = refusals
        self.counters = counters
        self.wake = asyncio.Event()
        """Set to republish the status soon (:meth:`refresh`)."""
        self.meta_sent = False
        self.table: PointTable | None = None
        """The point table of the meta published on this connection (``cbor-c1`` only)."""
        self._health_dropped = False

    async def birth(self, conn: MqttConnection, ident: contract.Identity) -> None:
        """The session's first status and meta (a refusal is counted and the session goes on).

        Raises:
            PublishFailed: the connection was lost.
            TimeoutError: a publish was not acknowledged within 10 s.
        """
        self.meta_sent = False
        await self.publish_status(conn, ident)
        await self.publish_meta(conn, ident)

    async def refresh(self, conn: MqttConnection, ident: contract.Identity) -> None:
        """Republish the retained ``online`` status with fresh health, periodically and soon
        after :attr:`wake` is set (a new kind of broker refusal, the alarm list changed), at
        most once a second (and the meta, while the broker has not taken it). Runs until
        cancelled."""
        while True:
            await wait_event(self.wake, self.settings.status_interval_s)
            self.wake.clear()
            try:
                await self.publish_status(conn, ident)
                if not self.meta_sent:
                    await self.publish_meta(conn, ident)
            except (TimeoutError, PublishFailed) as exc:  # the session's end is seen elsewhere
                log.debug("uplink: status refresh not acknowledged: %s", exc)
            self.refusals.summarise()
            await asyncio.sleep(1.0)  # a burst of changes: one refresh a second

    async def publish_status(self, conn: MqttConnection, ident: contract.Identity) -> None:
        """Publish the retained ``online`` status (birth or refresh). Too large for the broker
        with its health: without it. Refused: named and counted, the session goes on."""
        now = self.clock.now_ms()
        extra = self.status_extra()
        payload = contract.status(ident, "online", ts_ms=now, **extra)
        if not conn.fits(self.topics.status, len(payload)) and "health" in extra:
            extra.pop("health")
            payload = contract.status(ident, "online", ts_ms=now, **extra)
            if not self._health_dropped:
                log.warning(
                    "uplink: status health left out: it does not fit the broker's maximum"
                    " packet of %s bytes",
                    conn.max_packet_size,
                )
                self._health_dropped = True
        await self.publish_once(conn, "status", self.topics.status, payload, retain=True)

    async def publish_meta(self, conn: MqttConnection, ident: contract.Identity) -> None:
        """Publish the retained ``meta``, in parts when one packet cannot hold it
        (:func:`agent.uplink_size.meta_parts`)."""
        parts = meta_parts(
            conn, self.topics, ident, self.catalogue, self.clock.now_ms(), self.meta_extra
        )
        if self.settings.telemetry_format == wire_cbor.FORMAT:
            # the table is the meta as the platform gets it: points left out are sent by name
            published = [p for _, payload in parts for p in json.loads(payload)["points"]]
            try:
                self.table = wire_cbor.PointTable.of(published)
            except ValueError as exc:  # no index the platform could read unambiguously
                log.error("uplink: telemetry sent as JSON, not %s: %s", wire_cbor.FORMAT, exc)
                self.table = None
        ok = True
        for topic, payload in parts:
            ok = await self.publish_once(conn, "meta", topic, payload, retain=True) and ok
        self.meta_sent = ok

    async def publish_once(
        self, conn: MqttConnection, kind: str, topic: str, payload: bytes, *, retain: bool
    ) -> bool:
        """One retained publish of the session (status, meta): True once PUBACKed. A refusal
        is named and counted (the caller goes on); a lost connection raises PublishFailed."""
        try:
            await within(conn.publish(topic, payload, retain=retain), 10.0)
        except PublishRefused as exc:
            self.refusals.note("PUBACK", exc.code, exc.name, kind, "retrying with the status")
            self.counters.last_error = f"{kind} publish: {exc}"
            return False
        except PacketTooLarge as exc:
            log.warning("uplink: %s not published: %s", kind, exc)
            self.counters.last_error = f"{kind} publish: {exc}"
            return False
        return True
