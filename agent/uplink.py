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
``session`` grows on every connect and is persisted in the buffer. The retained status and meta
are :mod:`agent.uplink_retained`'s, the downlink :mod:`agent.uplink_downlink`'s, the settings and
counters :mod:`agent.uplink_settings`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from agent import contract, faultpoint
from agent.core import progress
from agent.core.aio import cancel_all, within
from agent.core.model import Sample, WallClock
from agent.mqtt import (
    SESSION_TAKEN_OVER,
    BrokerSettings,
    ConnectFailed,
    MqttConnection,
    PublishFailed,
    Will,
)
from agent.reconnect import HEALTHY_AFTER_S, ReconnectPolicy
from agent.refusals import RefusalGate, Refusals
from agent.store import Store
from agent.telemetry import BACKLOG_STAGE, LIVE_STAGE, TelemetryFlow
from agent.uplink_downlink import Downlink
from agent.uplink_events import EventSender
from agent.uplink_retained import RetainedMessages
from agent.uplink_settings import UplinkCounters, UplinkSettings
from agent.uplink_size import LearnedLimits

__all__ = ["STAGES", "Uplink", "UplinkCounters", "UplinkSettings"]

log = logging.getLogger(__name__)

STAGES = ("uplink", LIVE_STAGE, BACKLOG_STAGE)
"""The uplink's heartbeats (:mod:`agent.core.progress`): the session loop (``uplink``: each
connect attempt or probe, and every second while it watches a connection), the live sender and
the backlog drainer (:mod:`agent.telemetry`). While disconnected the session loop beats all three:
there is nothing to send, and trying to connect is progress."""


def _beat_all() -> None:
    for name in STAGES:
        progress.beat(name)


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
        self.settings = settings
        self.clock = clock
        status_extra = status_extra or (lambda: {})
        self.counters = UplinkCounters()
        self.reconnect = ReconnectPolicy(spread_s=settings.reconnect_spread_s)
        self.refusals = Refusals()
        self.retained = RetainedMessages(
            topics, catalogue, settings, clock, status_extra, dict(meta_extra or {}),
            self.refusals, self.counters,
        )  # fmt: skip
        """The retained status and meta of each session."""
        self.refusals.on_new = self.retained.wake.set
        self.gates = {k: RefusalGate(k, self.refusals) for k in ("telemetry", "event")}
        """Hold a refused stream (telemetry, events) with backoff: :mod:`agent.refusals`."""
        self.learned = LearnedLimits()
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
        self.downlink = Downlink(topics, ident, store, self.refusals)
        """Command requests and the ingest watermark in, command responses out."""
        self.watermark = self.downlink.watermark
        """The platform's last ``ingest`` watermark (stream → seq stored by the platform)."""

    @property
    def catalogue(self) -> Sequence[Mapping[str, Any]]:
        """Point descriptions for the retained ``meta`` (held by :attr:`retained`)."""
        return self.retained.catalogue

    @catalogue.setter
    def catalogue(self, catalogue: Sequence[Mapping[str, Any]]) -> None:
        self.retained.catalogue = catalogue

    @property
    def status_extra(self) -> Callable[[], dict[str, Any]]:
        """Extra fields for the status message (held by :attr:`retained`)."""
        return self.retained.status_extra

    @property
    def meta_extra(self) -> Mapping[str, Any]:
        """Extra fields for the retained meta message (held by :attr:`retained`)."""
        return self.retained.meta_extra

    @property
    def on_command(self) -> Callable[[bytes, Any, bool], Coroutine[Any, Any, None]] | None:
        """Handles a command request: (payload, MQTT 5 properties or None, retained)."""
        return self.downlink.on_command

    @on_command.setter
    def on_command(
        self, handler: Callable[[bytes, Any, bool], Coroutine[Any, Any, None]] | None
    ) -> None:
        self.downlink.on_command = handler

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
        self.retained.wake.set()

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
            _beat_all()
            if probe:
                await policy.until_reachable(
                    self.broker.host, self.broker.port, on_probe=_beat_all
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
        conn.on_message = self.downlink.on_message
        conn.subscribe(self.topics.cmd_req)
        conn.subscribe(self.topics.ingest)
        await self.retained.birth(conn, ident)
        self._events_drained.clear()
        flow = TelemetryFlow(
            conn, ident, self.topics, self.store, self.units, self.settings, self.clock,
            self.counters, self.gates["telemetry"], backlog_gate=self._events_drained,
            events_wake=self._events_wake, table=lambda: self.retained.table,
        )  # fmt: skip
        self._telemetry = flow
        self.connected.set()
        tasks = [
            asyncio.create_task(flow.run(), name="uplink-telemetry"),
            asyncio.create_task(self.events.run(conn, ident), name="uplink-events"),
            asyncio.create_task(self.retained.refresh(conn, ident), name="uplink-status"),
        ]
        closed = asyncio.create_task(conn.closed.wait(), name="uplink-watch")
        try:
            done: set[asyncio.Task[Any]] = set()
            while not done:  # the session loop watches: it beats; the flow's tasks beat theirs
                progress.beat("uplink")
                done, _ = await asyncio.wait(
                    [closed, *tasks], timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
            for t in done:
                if t is not closed and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            await cancel_all([closed, *tasks])

    # ---- downlink --------------------------------------------------------------------------------

    async def reply(
        self, body: Mapping[str, Any], correlation: bytes | None, topic: str | None
    ) -> bool:
        """Publish a command response (stream ``cmd``, persisted seq); True once PUBACKed.

        ``topic`` (a request's MQTT 5 Response Topic) is used only when it is this gateway's
        ``cmd/res`` or below it (:meth:`agent.contract.Topics.response_topic`); otherwise
        ``cmd/res``. Returns False when not connected or refused.
        """
        return await self.downlink.reply(self._conn, self._session, body, correlation, topic)
