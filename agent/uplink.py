"""The uplink stage: owns the MQTT session and moves buffered data to the broker.

Guarantee: a sample leaves the buffer only after a successful PUBACK (QoS 1) of a message that
contains it, so every sample the buffer accepted arrives at least once.

While connected, :class:`agent.telemetry.TelemetryFlow` moves samples (live first, the backlog
oldest first and rate-limited, a bounded in-flight window); this module owns the session around
it: connect and reconnect, birth and last will, retained metadata and status, events, and the
downlink (command requests and the platform's ingest watermark).

Reconnects follow :mod:`agent.reconnect`; broker refusals :mod:`agent.refusals`; every packet
fits the broker's Maximum Packet Size (:mod:`agent.uplink_size`) and at most min(configured
``inflight_window``, the broker's Receive Maximum) QoS 1 publishes of any kind are in flight.
``session`` grows on every connect and is persisted in the buffer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent import contract, faultpoint, wire_cbor
from agent.core import progress
from agent.core.aio import cancel_all, spawn, wait_event, within
from agent.core.model import Sample, WallClock
from agent.mqtt import (
    SESSION_TAKEN_OVER,
    BrokerSettings,
    ConnectFailed,
    MqttConnection,
    PacketTooLarge,
    PublishFailed,
    PublishRefused,
    Will,
)
from agent.reconnect import HEALTHY_AFTER_S, SPREAD_S, ReconnectPolicy
from agent.refusals import RefusalGate, Refusals
from agent.store import Store
from agent.telemetry import TelemetryFlow
from agent.uplink_events import EventSender
from agent.uplink_size import LearnedLimits, meta_parts
from agent.wire_cbor import PointTable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    """Batching and flow settings (see ``uplink:`` in the config).

    Attributes:
        batch_max_samples: most samples per telemetry message.
        batch_interval_s: longest a live sample waits for others to share its message, seconds.
        backlog_rate_per_s: most backlog samples published per second.
        inflight_window: most messages awaiting PUBACK at once.
        live_queue_max: most live samples held for publishing; beyond it the oldest are left to
            the backlog (they are safe in the buffer).
        compression: ``none`` or ``zlib`` (telemetry payloads over 256 bytes are deflated and
            sent with content type ``application/json+zlib`` or ``application/cbor+zlib``).
        telemetry_format: ``json`` (v1 JSON) or ``cbor-c1`` (:mod:`agent.wire_cbor`; its
            point table is the meta as published on this connection; should that meta name a
            point twice, telemetry goes as JSON, with an ERROR).
        status_interval_s: how often the retained ``online`` status is refreshed with health.
        reconnect_spread_s: full-jitter window of a reconnect once the broker answers again, s
            (:mod:`agent.reconnect`).
    """

    batch_max_samples: int = 500
    batch_interval_s: float = 0.05
    backlog_rate_per_s: float = 100_000.0
    inflight_window: int = 10
    live_queue_max: int = 50_000
    compression: str = "none"
    telemetry_format: str = "json"
    status_interval_s: float = 60.0
    reconnect_spread_s: float = SPREAD_S


@dataclass(slots=True)
class UplinkCounters:
    """Counters since start."""

    connects: int = 0
    connect_failures: int = 0
    messages_published: int = 0
    samples_live: int = 0
    samples_backfill: int = 0
    publish_failures: int = 0
    live_overflow: int = 0
    bytes_published: int = 0
    set_aside: int = 0
    """Messages that can never fit the broker's packet limit, reported and dropped."""
    last_error: str | None = None


class Uplink:
    """The MQTT uplink: run :meth:`run` as a task, feed :meth:`offer`, end with :meth:`stop`.

    Args:
        broker: connection settings.
        topics: topic names of this gateway.
        ident: site and gateway ids (the session is filled in per connection).
        store: the buffer.
        units: point name → engineering unit, for telemetry.
        catalogue: point descriptions for the retained ``meta`` message.
        settings: batching and flow settings.
        clock: wall clock for stamps.
        status_extra: callable returning extra fields for the birth message.
        meta_extra: extra fields for the retained meta message (versions, command bounds).
    """

    def __init__(
        self,
        broker: BrokerSettings,
        topics: contract.Topics,
        ident: contract.Identity,
        store: Store,
        units: Mapping[str, str | None],
        catalogue: Sequence[Mapping[str, Any]],
        settings: UplinkSettings,
        clock: WallClock,
        status_extra: Callable[[], dict[str, Any]] | None = None,
        meta_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.ident = ident
        self.store = store
        self.units = units
        self.catalogue = catalogue
        self.settings = settings
        self.clock = clock
        self.status_extra = status_extra or (lambda: {})
        self.meta_extra = dict(meta_extra or {})
        self.counters = UplinkCounters()
        self.reconnect = ReconnectPolicy(spread_s=settings.reconnect_spread_s)
        self.refusals = Refusals()
        self._status_wake = asyncio.Event()
        self.refusals.on_new = self._status_wake.set
        self.gates = {k: RefusalGate(k, self.refusals) for k in ("telemetry", "event")}
        """Hold a refused stream (telemetry, events) with backoff: :mod:`agent.refusals`."""
        self.learned = LearnedLimits()
        self._meta_sent = False
        self._table: PointTable | None = None
        """The point table of the meta published on this connection (``cbor-c1`` only)."""
        self._health_dropped = False
        self.connected = asyncio.Event()
        self._conn: MqttConnection | None = None
        self._telemetry: TelemetryFlow | None = None
        self._events_wake = asyncio.Event()
        self._events_drained = asyncio.Event()
        """Set once the event sender found the buffered events all sent on this connection:
        until then the telemetry backlog waits (events go first; live telemetry does not)."""
        self.events = EventSender(
            store, topics, clock, self.counters, self.gates["event"], self._events_wake,
            drained=self._events_drained,
        )  # fmt: skip
        self._session = 0
        self._failing = False
        self._stopping = False
        self._inbox: set[asyncio.Task[None]] = set()
        self.on_command: Callable[[bytes, Any, bool], Coroutine[Any, Any, None]] | None = None
        """Handles a command request: (payload, MQTT 5 properties or None, retained)."""
        self.watermark: dict[str, int] = {}
        """The platform's last ``ingest`` watermark (stream → seq stored by the platform)."""

    # ---- pipeline side -----------------------------------------------------------------------

    def offer(self, samples: Sequence[Sample]) -> None:
        """Hand over samples already committed to the buffer for live publishing (never blocks).
        While disconnected they simply wait in the buffer for the backlog."""
        if self._telemetry is not None and not self._stopping:
            self._telemetry.offer(samples)

    def wake(self) -> None:
        """Tell the backlog drainer and the event sender that there is new buffered work."""
        if self._telemetry is not None:
            self._telemetry.wake()
        self._events_wake.set()

    def refresh_status(self) -> None:
        """Republish the retained status soon (e.g. the active alarm list changed); at most
        once a second."""
        self._status_wake.set()

    def limits(self) -> dict[str, int | None]:
        """What the current connection's broker imposes (all ``None`` while disconnected):
        ``receive_maximum``, ``inflight_limit`` (min of ours and it), ``max_packet_size``."""
        conn = self._conn
        if conn is None:
            return {"receive_maximum": None, "inflight_limit": None, "max_packet_size": None}
        return {
            "receive_maximum": conn.receive_maximum,
            "inflight_limit": conn.inflight_limit,
            "max_packet_size": conn.max_packet_size,
        }

    # ---- session life cycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect: forever, until cancelled or :meth:`stop`.

        Pacing (:mod:`agent.reconnect`): after a healthy session is lost, or while the broker
        cannot be reached by TCP, cheap TCP probes and a jittered connect; after a refused
        connect or a session the broker dropped before it proved healthy (while still
        answering TCP), the shared Backoff, which resets only after a session of
        :data:`~agent.reconnect.HEALTHY_AFTER_S` or more.
        """
        session = 0
        probe = False
        policy = self.reconnect
        while not self._stopping:
            await faultpoint.checkpoint("uplink")
            progress.beat("uplink")
            if probe:
                await policy.until_reachable(
                    self.broker.host, self.broker.port, on_probe=lambda: progress.beat("uplink")
                )  # a broker that is down is not a stuck uplink: each probe is progress
                probe = False
            if session == 0:  # failed attempts reuse the number; a connection uses one up
                session = await self.store.next_session()
            ident = contract.Identity(self.ident.site, self.ident.gateway, session)
            will = Will(
                self.topics.status,
                contract.status(ident, "offline", ts_ms=self.clock.now_ms(), reason="lwt"),
            )
            try:
                conn = await MqttConnection.connect(
                    self.learned.settings(self.broker, self.settings.inflight_window), will
                )
            except ConnectFailed as exc:
                self.counters.connect_failures += 1
                self.counters.last_error = str(exc)
                if not self._failing:
                    log.warning(
                        "uplink: cannot connect to %s (%s); retrying", self.broker.host, exc
                    )
                    self._failing = True
                if exc.unreachable:
                    probe = True  # paced by the probes: cheap, and fast once it is back
                else:
                    await asyncio.sleep(policy.backoff.next())
                continue
            self._failing = False
            self.counters.connects += 1
            log.info(
                "uplink: connected to %s:%d, session %d (receive maximum %d, in flight %d,"
                " maximum packet %s)",
                self.broker.host,
                self.broker.port,
                session,
                conn.receive_maximum,
                conn.inflight_limit,
                conn.max_packet_size or "unlimited",
            )
            session = 0  # the next connection takes a new number
            began = time.monotonic()
            try:
                await self._serve(conn, ident)
            except (PublishFailed, TimeoutError) as exc:
                # The link died during the birth/meta publish: reconnect, never end the task.
                self.counters.last_error = f"session start: {exc}"
            # Any other exception (a bug in a sub-task) ends run(): the supervisor
            # (agent.supervisor) logs it with its traceback, counts it and restarts the uplink.
            finally:
                self._conn = self._telemetry = None
                self.connected.clear()
                conn.abort()
            if self._stopping:
                continue
            healthy = time.monotonic() - began >= HEALTHY_AFTER_S
            if healthy:
                policy.backoff.reset()
            if conn.disconnect_reason == SESSION_TAKEN_OVER:
                # Another client uses our client id (a cloned gateway?): do not fight over it.
                log.error(
                    "uplink: the broker gave our client id %r to another connection; retrying"
                    " in %.0f s (is a cloned gateway using the same id?)",
                    self.broker.client_id,
                    policy.backoff.cap_s,
                )
                await asyncio.sleep(policy.backoff.cap_s)
            elif conn.disconnect_reason >= 0x80:
                self._broker_disconnected(conn)
                await asyncio.sleep(policy.backoff.next())
            elif healthy or not await policy.reachable(self.broker.host, self.broker.port):
                log.warning("uplink: connection lost; buffering until it is back")
                probe = True  # the broker is gone (a restart?): fast once it answers again
            else:  # the broker is there and dropped us before the session proved healthy
                if not self.broker.mqtt5:
                    self.learned.lost_early(conn)
                delay = policy.backoff.next()
                log.warning(
                    "uplink: connection lost %.1f s after connect; buffering, retrying in %.1f s",
                    time.monotonic() - began,
                    delay,
                )
                await asyncio.sleep(delay)

    def _broker_disconnected(self, conn: MqttConnection) -> None:
        """The broker ended the session with a reason code: name it, count it, learn from it."""
        code, name = conn.disconnect_reason, conn.disconnect_name
        action = "reconnecting with backoff" + self.learned.disconnected(conn)
        self.refusals.note("DISCONNECT", code, name, "session", action)
        self.counters.last_error = f"broker disconnected: {name} ({code:#04x})"

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Clean shutdown: flush what is queued live (bounded), publish ``offline``
        (reason ``shutdown``) and disconnect. Unacknowledged samples stay in the buffer."""
        conn = self._conn
        if conn is not None and not conn.closed.is_set():
            if self._telemetry is not None:
                await self._telemetry.drain(timeout_s)
            self._stopping = True
            ident = contract.Identity(self.ident.site, self.ident.gateway, self._session)
            payload = contract.status(
                ident, "offline", ts_ms=self.clock.now_ms(), reason="shutdown"
            )
            try:
                await within(conn.publish(self.topics.status, payload, retain=True), 2.0)
            except (TimeoutError, PublishFailed) as exc:
                log.warning("uplink: offline status not acknowledged: %s", exc)
            await conn.close()
        self._stopping = True

    async def _serve(self, conn: MqttConnection, ident: contract.Identity) -> None:
        self._session = ident.session
        # Listen first: the reply path is ready and SUBSCRIBE goes out before the birth, so a
        # platform that sends a command as soon as it sees ``online`` is always heard (the
        # broker handles one connection's packets in order).
        self._conn = conn
        conn.on_message = self._on_message
        conn.subscribe(self.topics.cmd_req)
        conn.subscribe(self.topics.ingest)
        self._meta_sent = False
        await self._publish_status(conn, ident)
        await self._publish_meta(conn, ident)
        self._events_drained.clear()
        flow = TelemetryFlow(
            conn, ident, self.topics, self.store, self.units, self.settings, self.clock,
            self.counters, self.gates["telemetry"], backlog_gate=self._events_drained,
            events_wake=self._events_wake, table=lambda: self._table,
        )  # fmt: skip
        self._telemetry = flow
        self.connected.set()
        tasks = [
            asyncio.create_task(flow.run(), name="uplink-telemetry"),
            asyncio.create_task(self.events.run(conn, ident), name="uplink-events"),
            asyncio.create_task(self._refresh_status(conn, ident), name="uplink-status"),
        ]
        closed = asyncio.create_task(conn.closed.wait(), name="uplink-watch")
        try:
            done, _ = await asyncio.wait([closed, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not closed and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            await cancel_all([closed, *tasks])

    async def _refresh_status(self, conn: MqttConnection, ident: contract.Identity) -> None:
        """Republish the retained ``online`` status with fresh health, periodically and soon
        after :meth:`refresh_status` or a new kind of broker refusal, at most once a second
        (and the meta, while the broker has not taken it)."""
        while True:
            await wait_event(self._status_wake, self.settings.status_interval_s)
            self._status_wake.clear()
            try:
                await self._publish_status(conn, ident)
                if not self._meta_sent:
                    await self._publish_meta(conn, ident)
            except (TimeoutError, PublishFailed) as exc:  # the session's end is seen elsewhere
                log.debug("uplink: status refresh not acknowledged: %s", exc)
            self.refusals.summarise()
            await asyncio.sleep(1.0)  # a burst of changes: one refresh a second

    async def _publish_status(self, conn: MqttConnection, ident: contract.Identity) -> None:
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
        await self._publish_once(conn, "status", self.topics.status, payload, retain=True)

    async def _publish_meta(self, conn: MqttConnection, ident: contract.Identity) -> None:
        """Publish the retained ``meta``, in parts when one packet cannot hold it
        (:func:`agent.uplink_size.meta_parts`)."""
        parts = meta_parts(
            conn, self.topics, ident, self.catalogue, self.clock.now_ms(), self.meta_extra
        )
        if self.settings.telemetry_format == wire_cbor.FORMAT:
            # the table is the meta as the platform gets it: points left out are sent by name
            published = [p for _, payload in parts for p in json.loads(payload)["points"]]
            try:
                self._table = wire_cbor.PointTable.of(published)
            except ValueError as exc:  # no index the platform could read unambiguously
                log.error("uplink: telemetry sent as JSON, not %s: %s", wire_cbor.FORMAT, exc)
                self._table = None
        ok = True
        for topic, payload in parts:
            ok = await self._publish_once(conn, "meta", topic, payload, retain=True) and ok
        self._meta_sent = ok

    async def _publish_once(
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

    # ---- downlink --------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, props: Any, retained: bool) -> None:
        if topic == self.topics.cmd_req and self.on_command is not None:
            spawn(self.on_command(payload, props, retained), "command", self._inbox, log)
        elif topic == self.topics.ingest:
            self._on_watermark(payload)

    def _on_watermark(self, payload: bytes) -> None:
        try:
            body = json.loads(payload)
            marks = {k: int(v) for k, v in body.items() if k in ("telemetry", "event")}
        except (ValueError, TypeError, AttributeError):
            log.warning("uplink: ignoring a malformed ingest watermark: %.100r", payload)
            return
        self.watermark.update(marks)

    async def reply(
        self, body: Mapping[str, Any], correlation: bytes | None, topic: str | None
    ) -> bool:
        """Publish a command response (stream ``cmd``, persisted seq); True once PUBACKed.

        ``topic`` (a request's MQTT 5 Response Topic) is used only when it is this gateway's
        ``cmd/res`` or below it (:meth:`agent.contract.Topics.response_topic`); otherwise
        ``cmd/res``. Returns False when not connected or refused.
        """
        conn = self._conn
        if conn is None:
            return False
        seq = await self.store.next_seq("cmd")
        ident = contract.Identity(self.ident.site, self.ident.gateway, self._session)
        target = self.topics.response_topic(topic)
        payload = contract.command_response(ident, seq, body)
        try:
            await within(conn.publish(target, payload, correlation=correlation), 10.0)
        except PublishRefused as exc:
            self.refusals.note("PUBACK", exc.code, exc.name, "cmd", "the answer is not repeated")
            return False
        except (TimeoutError, PublishFailed) as exc:
            log.warning("uplink: command response %s not delivered: %s", body.get("id"), exc)
            return False
        return True
