"""The uplink stage: owns the MQTT session and moves buffered data to the broker.

Guarantee: a sample leaves the buffer only after a successful PUBACK (QoS 1) of a message that
contains it, so every sample the buffer accepted arrives at least once.

How data flows while connected:

* **Live**: the pipeline calls :meth:`Uplink.offer` with samples that are already committed to the
  buffer. They are batched (up to ``batch_max_samples``, waiting at most ``batch_interval_s``
  for company) and published on ``telemetry``. Live data is never queued behind a backlog.
* **Backlog**: everything still in the buffer that is not in flight (samples taken while the broker
  was away, or whose publish failed) is read oldest first by seq and published on
  ``telemetry/backfill`` with ``hist: true``, at most ``backlog_rate_per_s`` samples per second.
* At most ``inflight_window`` messages await their PUBACK at once. On PUBACK the samples are acked
  in the buffer; on a failure reason code or a lost connection they stay buffered and the backlog
  cursor moves back so they are sent again (as backfill, with their original seq).

Reconnects use :class:`agent.model.Backoff`. ``session`` grows on every connect and is persisted
in the buffer.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
import zlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent import contract
from agent.model import Backoff, Sample, WallClock
from agent.mqtt import (
    SESSION_TAKEN_OVER,
    BrokerSettings,
    ConnectFailed,
    MqttConnection,
    PublishFailed,
    Will,
)
from agent.store import Store

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
            sent with content type ``application/json+zlib``).
        status_interval_s: how often the retained ``online`` status is refreshed with health.
    """

    batch_max_samples: int = 500
    batch_interval_s: float = 0.1
    backlog_rate_per_s: float = 20000.0
    inflight_window: int = 10
    live_queue_max: int = 50_000
    compression: str = "none"
    status_interval_s: float = 60.0


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
    last_error: str | None = None


@dataclass(slots=True)
class _Flow:
    """Per-connection state of what is claimed (queued or in flight) and where the backlog is."""

    claimed: set[int] = field(default_factory=set)
    cursor: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


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
        self.backoff = Backoff(initial_s=0.5, cap_s=30.0)
        self.connected = asyncio.Event()
        self._conn: MqttConnection | None = None
        self._live: collections.deque[Sample] = collections.deque()
        self._live_ready = asyncio.Event()
        self._flow = _Flow()
        self._window = asyncio.Semaphore(settings.inflight_window)
        self._events_wake = asyncio.Event()
        self._session = 0
        self._failing = False
        self._stopping = False
        self._settling: set[asyncio.Task[None]] = set()
        self._inbox: set[asyncio.Task[None]] = set()
        self.on_command: Callable[[bytes, Any, bool], Coroutine[Any, Any, None]] | None = None
        """Handles a command request: (payload, MQTT 5 properties or None, retained)."""
        self.watermark: dict[str, int] = {}
        """The platform's last ``ingest`` watermark (stream → seq stored by the platform)."""

    # ---- pipeline side -----------------------------------------------------------------------

    def offer(self, samples: Sequence[Sample]) -> None:
        """Hand over samples already committed to the buffer for live publishing (never blocks)."""
        if self._conn is None or self._stopping:
            self._flow.wake.set()
            return
        claimed = self._flow.claimed
        for s in samples:
            if s.seq not in claimed:
                claimed.add(s.seq)
                self._live.append(s)
        overflow = len(self._live) - self.settings.live_queue_max
        if overflow > 0:
            for _ in range(overflow):
                claimed.discard(self._live.popleft().seq)
            self.counters.live_overflow += overflow
            self._rewind(0)
        self._live_ready.set()

    def wake(self) -> None:
        """Tell the backlog drainer and the event sender that there is new buffered work."""
        self._flow.wake.set()
        self._events_wake.set()

    # ---- session life cycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff: forever, until cancelled or :meth:`stop`."""
        while not self._stopping:
            session = await self.store.next_session()
            ident = contract.Identity(self.ident.site, self.ident.gateway, session)
            will = Will(
                self.topics.status,
                contract.status(ident, "offline", ts_ms=self.clock.now_ms(), reason="lwt"),
            )
            try:
                conn = await MqttConnection.connect(self.broker, will)
            except ConnectFailed as exc:
                self.counters.connect_failures += 1
                self.counters.last_error = str(exc)
                if not self._failing:
                    log.warning(
                        "uplink: cannot connect to %s (%s); retrying", self.broker.host, exc
                    )
                    self._failing = True
                await asyncio.sleep(self.backoff.next())
                continue
            self.backoff.reset()
            self._failing = False
            self.counters.connects += 1
            log.info(
                "uplink: connected to %s:%d, session %d",
                self.broker.host,
                self.broker.port,
                session,
            )
            try:
                await self._serve(conn, ident)
            except (PublishFailed, TimeoutError) as exc:
                # The link died during the birth/meta publish: reconnect, never end the task.
                self.counters.last_error = f"session start: {exc}"
            except Exception:  # a bug must not end the uplink for good: log and reconnect
                log.exception("uplink: session failed")
            finally:
                self._conn = None
                self.connected.clear()
                conn.abort()
            if self._stopping:
                continue
            if conn.disconnect_reason == SESSION_TAKEN_OVER:
                # Another client uses our client id (a cloned gateway?): do not fight over it.
                log.error(
                    "uplink: the broker gave our client id %r to another connection; retrying"
                    " in %.0f s (is a cloned gateway using the same id?)",
                    self.broker.client_id,
                    self.backoff.cap_s,
                )
                await asyncio.sleep(self.backoff.cap_s)
            else:
                log.warning("uplink: connection lost; buffering until it is back")
                await asyncio.sleep(self.backoff.next())

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Clean shutdown: flush what is queued live (bounded), publish ``offline``
        (reason ``shutdown``) and disconnect. Unacknowledged samples stay in the buffer."""
        conn = self._conn
        if conn is not None and not conn.closed.is_set():
            await self._drain_live(timeout_s)
            self._stopping = True
            ident = contract.Identity(self.ident.site, self.ident.gateway, self._session)
            payload = contract.status(
                ident, "offline", ts_ms=self.clock.now_ms(), reason="shutdown"
            )
            try:
                await asyncio.wait_for(conn.publish(self.topics.status, payload, retain=True), 2.0)
            except (TimeoutError, PublishFailed) as exc:
                log.warning("uplink: offline status not acknowledged: %s", exc)
            await conn.close()
        self._stopping = True

    async def _drain_live(self, timeout_s: float) -> None:
        """Wait (bounded) until the live queue is published and every PUBACK has come back."""
        deadline = time.monotonic() + timeout_s
        while self._live or self._settling:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            pending = set(self._settling)
            if pending:
                await asyncio.wait(pending, timeout=left)
            else:
                await asyncio.sleep(min(left, self.settings.batch_interval_s))

    async def _serve(self, conn: MqttConnection, ident: contract.Identity) -> None:
        self._session = ident.session
        self._flow = _Flow()
        self._live.clear()
        self._window = asyncio.Semaphore(self.settings.inflight_window)
        now = self.clock.now_ms()
        birth = contract.status(ident, "online", ts_ms=now, **self.status_extra())
        meta = contract.meta(ident, self.catalogue, ts_ms=now, **self.meta_extra)
        await asyncio.wait_for(conn.publish(self.topics.status, birth, retain=True), 10.0)
        await asyncio.wait_for(conn.publish(self.topics.meta, meta, retain=True), 10.0)
        conn.on_message = self._on_message
        conn.subscribe(self.topics.cmd_req)
        conn.subscribe(self.topics.ingest)
        self._conn = conn
        self.connected.set()
        tasks = [
            asyncio.create_task(self._send_live(conn, ident), name="uplink-live"),
            asyncio.create_task(self._drain_backlog(conn, ident), name="uplink-backlog"),
            asyncio.create_task(self._send_events(conn, ident), name="uplink-events"),
            asyncio.create_task(self._refresh_status(conn, ident), name="uplink-status"),
        ]
        closed = asyncio.create_task(conn.closed.wait(), name="uplink-watch")
        try:
            done, _ = await asyncio.wait([closed, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not closed and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            # Cancel until they end: Python 3.11's wait_for can swallow a cancellation that
            # arrives as its inner future completes (CPython gh-86296), and then a plain
            # gather() would wait for ever.
            pending: set[asyncio.Task[Any]] = {closed, *tasks}
            while pending:
                for t in pending:
                    t.cancel()
                _, pending = await asyncio.wait(pending, timeout=1.0)

    # ---- telemetry -----------------------------------------------------------------------------

    async def _send_live(self, conn: MqttConnection, ident: contract.Identity) -> None:
        s = self.settings
        while True:
            await self._live_ready.wait()
            if len(self._live) < s.batch_max_samples:
                await asyncio.sleep(min(s.batch_interval_s, 0.05))
            self._live_ready.clear()
            while self._live:
                n = min(len(self._live), s.batch_max_samples)
                batch = [self._live.popleft() for _ in range(n)]
                await self._publish(conn, ident, batch, hist=False)
                self.counters.samples_live += n

    async def _drain_backlog(self, conn: MqttConnection, ident: contract.Identity) -> None:
        s = self.settings
        flow = self._flow
        while True:
            rows = await self.store.begin(s.batch_max_samples * 4, after_seq=flow.cursor)
            if not rows:
                flow.wake.clear()
                await _wait_event(flow.wake, 1.0)
                continue
            flow.cursor = rows[-1].seq
            todo = [r for r in rows if r.seq not in flow.claimed]
            for i in range(0, len(todo), s.batch_max_samples):
                batch = todo[i : i + s.batch_max_samples]
                flow.claimed.update(r.seq for r in batch)
                await self._publish(conn, ident, batch, hist=True)
                self.counters.samples_backfill += len(batch)
                await asyncio.sleep(len(batch) / s.backlog_rate_per_s)

    async def _publish(
        self, conn: MqttConnection, ident: contract.Identity, batch: list[Sample], *, hist: bool
    ) -> None:
        window = self._window
        await window.acquire()
        payload = contract.telemetry(
            ident, batch, self.units, hist=hist, sent_ms=self.clock.now_ms()
        )
        topic = self.topics.backfill if hist else self.topics.telemetry
        content_type = "application/json"
        if self.settings.compression == "zlib" and len(payload) > 256:
            payload, content_type = zlib.compress(payload, 6), "application/json+zlib"
        fut = conn.publish(topic, payload, content_type=content_type)
        self.counters.bytes_published += len(payload)
        self.counters.messages_published += 1
        seqs = [b.seq for b in batch]
        task = asyncio.create_task(self._settle(fut, seqs, window), name="uplink-settle")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(
        self, fut: asyncio.Future[None], seqs: list[int], window: asyncio.Semaphore
    ) -> None:
        flow = self._flow
        try:
            await fut
        except PublishFailed as exc:
            self.counters.publish_failures += 1
            self.counters.last_error = str(exc)
            self.store.reject(seqs)
            flow.claimed.difference_update(seqs)
            self._rewind(seqs[0] - 1)
            return
        finally:
            window.release()
        await self.store.ack(seqs)
        flow.claimed.difference_update(seqs)

    def _rewind(self, seq: int) -> None:
        self._flow.cursor = min(self._flow.cursor, seq)
        self._flow.wake.set()

    async def _refresh_status(self, conn: MqttConnection, ident: contract.Identity) -> None:
        """Republish the retained ``online`` status with fresh health, periodically."""
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            payload = contract.status(
                ident, "online", ts_ms=self.clock.now_ms(), **self.status_extra()
            )
            try:
                await asyncio.wait_for(conn.publish(self.topics.status, payload, retain=True), 10.0)
            except (TimeoutError, PublishFailed) as exc:
                log.debug("uplink: status refresh not acknowledged: %s", exc)

    # ---- events --------------------------------------------------------------------------------

    async def _send_events(self, conn: MqttConnection, ident: contract.Identity) -> None:
        while True:
            items = await self.store.begin_events(100)
            if not items:
                self._events_wake.clear()
                await _wait_event(self._events_wake, 1.0)
                continue
            payload = contract.events(
                ident, [(e.seq, e.body) for e in items], sent_ms=self.clock.now_ms()
            )
            try:
                await asyncio.wait_for(conn.publish(self.topics.event, payload), 30.0)
            except (TimeoutError, PublishFailed) as exc:
                self.counters.last_error = f"event publish: {exc}"
                await asyncio.sleep(1.0)
                continue
            await self.store.ack_events(e.seq for e in items)

    # ---- downlink --------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, props: Any, retained: bool) -> None:
        if topic == self.topics.cmd_req and self.on_command is not None:
            task = asyncio.create_task(self.on_command(payload, props, retained), name="command")
            self._inbox.add(task)
            task.add_done_callback(self._inbox.discard)
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

        ``topic`` (a request's MQTT 5 Response Topic) is used only when it lies under this
        gateway's topics; otherwise ``cmd/res``. Returns False when not connected or refused.
        """
        conn = self._conn
        if conn is None:
            return False
        seq = await self.store.next_seq("cmd")
        ident = contract.Identity(self.ident.site, self.ident.gateway, self._session)
        target = (
            topic if topic and topic.startswith(self.topics.base + "/") else self.topics.cmd_res
        )
        payload = contract.command_response(ident, seq, body)
        try:
            await asyncio.wait_for(conn.publish(target, payload, correlation=correlation), 10.0)
        except (TimeoutError, PublishFailed) as exc:
            log.warning("uplink: command response %s not delivered: %s", body.get("id"), exc)
            return False
        return True


async def _wait_event(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for ``event`` at most ``timeout_s`` seconds. Unlike ``asyncio.wait_for`` in Python
    3.11 (CPython gh-86296), ``asyncio.timeout`` never swallows a cancellation of the caller."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass
