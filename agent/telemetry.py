"""Telemetry flow over one MQTT connection: live first, backlog rate-limited, bounded in flight.

One :class:`TelemetryFlow` lives exactly as long as one connection, so nothing of a dead session
(claims, cursor, window) can leak into the next one.

* **Live**: :meth:`TelemetryFlow.offer` takes samples already committed to the buffer. They are
  batched (up to ``batch_max_samples``, waiting at most ``batch_interval_s`` for company) and
  published on ``telemetry`` at once: live data never waits behind a backlog.
* **Backlog**: what was buffered before this connection began, and whatever the live path could
  not deliver (a failed publish, a live-queue overflow), is read oldest first by seq and published
  on ``telemetry/backfill`` (``hist: true``, original seqs), at most ``backlog_rate_per_s``
  samples a second. The backlog is bounded above, so it never chases the live data.
* At most min(``inflight_window``, the broker's Receive Maximum) messages await their PUBACK.
  On success their samples are acked in the buffer; on a failure reason code or a lost
  connection they stay buffered, and the backlog cursor moves back so they go again.
* Each batch is v1 JSON (:func:`agent.contract.telemetry`) or, with ``telemetry_format:
  cbor-c1``, the compact CBOR encoding of :mod:`agent.wire_cbor`, optionally deflated.
* Every message fits the broker's Maximum Packet Size: a batch too large is halved until it
  fits (:mod:`agent.uplink_size`); a single sample that cannot fit is set aside (out of the
  buffer, WARNING, ``data_loss`` event with reason ``too_large``), never retried forever.
* A refusal (PUBACK reason code 0x80 and up) holds the stream (:class:`agent.refusals.RefusalGate`):
  the next publish waits for the shared backoff, then one message at a time until the broker
  takes one again.

A sample is *claimed* while it is queued live or in flight; the backlog skips claimed samples, so
nothing is sent twice by this gateway within one connection (the broker may still duplicate).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from agent import contract, faultpoint, wire_cbor
from agent.core import progress
from agent.core.aio import wait_event
from agent.core.model import Sample, WallClock
from agent.mqtt import MqttConnection, PublishRefused
from agent.refusals import RefusalGate
from agent.store import Store
from agent.wire_cbor import PointTable

if TYPE_CHECKING:
    from agent.uplink_settings import UplinkCounters, UplinkSettings

log = logging.getLogger(__name__)

COMPRESS_OVER = 256
"""Payloads up to this many bytes are sent uncompressed even with compression on."""
BACKLOG_GATE_MAX_S = 30.0
"""Longest the telemetry backlog waits for the buffered events to go first, s."""
LIVE_STAGE = "uplink-live"
"""Heartbeat (:mod:`agent.core.progress`) of the live sender: beats at each turn, at least every
second while connected (the uplink's session loop beats it while disconnected)."""
BACKLOG_STAGE = "uplink-backlog"
"""Heartbeat of the backlog drainer, likewise: one stuck while the other goes on is seen."""


class TelemetryFlow:
    """Moves samples from the buffer to one connection. Run :meth:`run`; feed :meth:`offer`."""

    def __init__(
        self,
        conn: MqttConnection,
        ident: contract.Identity,
        topics: contract.Topics,
        store: Store,
        units: Mapping[str, str | None],
        settings: UplinkSettings,
        clock: WallClock,
        counters: UplinkCounters,
        refusal: RefusalGate,
        backlog_gate: asyncio.Event | None = None,
        events_wake: asyncio.Event | None = None,
        table: Callable[[], PointTable | None] | None = None,
    ) -> None:
        self.conn, self.ident, self.topics, self.store = conn, ident, topics, store
        self.units, self.settings, self.clock, self.counters = units, settings, clock, counters
        self.refusal = refusal
        self._live: collections.deque[Sample] = collections.deque()
        self._live_ready = asyncio.Event()
        self._claimed: set[int] = set()
        self._cursor = 0
        self._rewinds = 0
        """Counts rewinds, so a read of the backlog that a rewind overtook is not trusted."""
        self._upto: int | None = None
        """The backlog's upper bound: every seq above it was offered live on this connection,
        except those whose publish failed or overflowed, which raise it again."""
        self._wake = asyncio.Event()
        self._window = asyncio.Semaphore(min(settings.inflight_window, conn.inflight_limit))
        self._settling: set[asyncio.Future[None]] = set()
        """Publishes awaiting their PUBACK."""
        self._gate = backlog_gate
        """Set when the buffered events are out: the backlog starts only then (events go
        before the telemetry backlog), or after :data:`BACKLOG_GATE_MAX_S` at the latest."""
        self._events_wake = events_wake
        self._table = table
        """The point table of the published meta, for ``telemetry_format: cbor-c1``."""
        """Set after this flow buffers an event (a sample set aside), so the event sender
        sends it now rather than at its safety-net interval."""

    def offer(self, samples: Sequence[Sample]) -> None:
        """Queue committed samples for live publishing (never blocks)."""
        claimed, live = self._claimed, self._live
        for s in samples:
            if s.seq not in claimed:
                claimed.add(s.seq)
                live.append(s)
        overflow = len(live) - self.settings.live_queue_max
        if overflow > 0:  # they are safe in the buffer: leave them to the backlog
            dropped = [live.popleft().seq for _ in range(overflow)]
            claimed.difference_update(dropped)
            self.counters.live_overflow += overflow
            self._rewind(dropped[0] - 1, dropped[-1])
        self._live_ready.set()

    def wake(self) -> None:
        """There may be buffered samples the backlog has not seen."""
        self._wake.set()

    async def run(self) -> None:
        """Publish live batches and drain the backlog until cancelled."""
        # Offers reach this flow from now on, so whatever is buffered up to here is backlog.
        upto = await self.store.last_seq()
        self._upto = upto if self._upto is None else max(self._upto, upto)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._send_live(), name="telemetry-live")
            tg.create_task(self._drain_backlog(), name="telemetry-backlog")

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until the live queue is published and every PUBACK has come back."""
        deadline = time.monotonic() + timeout_s
        while self._live or self._settling:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._settling:
                await asyncio.wait(set(self._settling), timeout=left)
            else:
                await asyncio.sleep(min(left, self.settings.batch_interval_s))

    async def _send_live(self) -> None:
        s = self.settings
        while True:
            progress.beat(LIVE_STAGE)  # turns at least every second while connected
            await faultpoint.checkpoint(LIVE_STAGE)
            if not await wait_event(self._live_ready, 1.0):
                continue
            if len(self._live) < s.batch_max_samples:  # let one poll's neighbours join
                await asyncio.sleep(s.batch_interval_s)
            self._live_ready.clear()
            while self._live:
                n = min(len(self._live), s.batch_max_samples)
                batch = [self._live.popleft() for _ in range(n)]
                await self._publish(batch, hist=False)
                self.counters.samples_live += n

    async def _drain_backlog(self) -> None:
        if self._gate is not None:  # events first; bounded, so refused events never stall it
            await wait_event(self._gate, BACKLOG_GATE_MAX_S)
        s = self.settings
        pace = time.monotonic()  # when the backlog may send next (``backlog_rate_per_s``)
        while True:
            progress.beat(BACKLOG_STAGE)  # turns at least every second while connected
            await faultpoint.checkpoint("uplink")
            await faultpoint.checkpoint(BACKLOG_STAGE)
            rows = []
            rewinds = self._rewinds
            if self._upto is not None and self._cursor < self._upto:
                rows = await self.store.begin(
                    s.batch_max_samples * 4, after_seq=self._cursor, upto_seq=self._upto
                )
            if self._rewinds != rewinds:
                continue  # a publish failed while we read: read again from the rewound cursor
            if not rows:
                self._cursor = max(self._cursor, self._upto or 0)
                self._wake.clear()
                await wait_event(self._wake, 1.0)
                continue
            self._cursor = rows[-1].seq
            todo = [r for r in rows if r.seq not in self._claimed]
            for i in range(0, len(todo), s.batch_max_samples):
                batch = todo[i : i + s.batch_max_samples]
                self._claimed.update(r.seq for r in batch)
                await self._publish(batch, hist=True)
                self.counters.samples_backfill += len(batch)
                # A schedule, not a fixed pause per batch: the time the publish itself took
                # counts, and at most one second of unused rate carries over.
                now = time.monotonic()
                pace = max(pace, now - 1.0) + len(batch) / s.backlog_rate_per_s
                if pace > now:
                    await asyncio.sleep(pace - now)

    async def _publish(self, batch: list[Sample], *, hist: bool) -> None:
        await self._hold()
        topic = self.topics.backfill if hist else self.topics.telemetry
        payload, content_type = self._encode(batch, hist)
        if not self.conn.fits(topic, len(payload), content_type=content_type):
            if len(batch) > 1:  # halve it: each half is sized again
                half = len(batch) // 2
                await self._publish(batch[:half], hist=hist)
                await self._publish(batch[half:], hist=hist)
            else:
                await self._set_aside(batch[0], len(payload))
            return
        await self._window.acquire()
        fut = self.conn.publish(topic, payload, content_type=content_type)
        self.counters.bytes_published += len(payload)
        self.counters.messages_published += 1
        seqs = [b.seq for b in batch]
        self._settling.add(fut)
        fut.add_done_callback(lambda f: self._settle(f, seqs))

    def _encode(self, batch: list[Sample], hist: bool) -> tuple[bytes, str]:
        """The payload of one batch and its MQTT 5 Content Type: v1 JSON, or ``cbor-c1``
        (:mod:`agent.wire_cbor`) when configured and the meta's point table is known; deflated
        (zlib) over :data:`COMPRESS_OVER` bytes when ``compression: zlib``."""
        sent = self.clock.now_ms()
        table = self._table() if self._table is not None else None
        if self.settings.telemetry_format == wire_cbor.FORMAT and table is not None:
            payload = wire_cbor.encode(
                self.ident, batch, self.units, table, hist=hist, sent_ms=sent
            )
            content_type = wire_cbor.CONTENT_TYPE
        else:
            payload = contract.telemetry(self.ident, batch, self.units, hist=hist, sent_ms=sent)
            content_type = "application/json"
        if self.settings.compression == "zlib" and len(payload) > COMPRESS_OVER:
            payload, content_type = zlib.compress(payload, 6), content_type + "+zlib"
        return payload, content_type

    async def _hold(self) -> None:
        """Wait while the broker's refusals hold the stream; while probing, send one message
        at a time (the first PUBACK that succeeds opens the window again)."""
        while True:
            await self.refusal.wait()
            if not self.refusal.probing or not self._settling:
                return
            await asyncio.wait(set(self._settling))

    async def _set_aside(self, sample: Sample, payload_len: int) -> None:
        """A sample whose message cannot fit the broker's packet limit even alone: named,
        reported as data loss (reason ``too_large``) and taken out of the buffer."""
        log.warning(
            "uplink: sample seq %d (%s) set aside: its message of %d bytes exceeds the broker's"
            " maximum packet of %s bytes",
            sample.seq,
            sample.point,
            payload_len,
            self.conn.max_packet_size,
        )
        self.counters.set_aside += 1
        await self.store.add_event(
            {"type": "data_loss", "t": self.clock.now_ms(), "stream": "telemetry",
             "reason": "too_large", "seq_range": [sample.seq, sample.seq], "count": 1}
        )  # fmt: skip
        if self._events_wake is not None:
            self._events_wake.set()
        self._claimed.discard(sample.seq)
        self.store.ack([sample.seq])

    def _settle(self, fut: asyncio.Future[None], seqs: list[int]) -> None:
        """The publish's PUBACK came (ack its samples) or it failed (leave them buffered and
        send them again); either way its place in the in-flight window is free."""
        self._settling.discard(fut)
        self._window.release()
        self._claimed.difference_update(seqs)
        failure = "publish cancelled" if fut.cancelled() else fut.exception()
        if failure is None:
            self.refusal.accepted()
            self.store.ack(seqs)
            return
        if isinstance(failure, PublishRefused):
            self.refusal.refused("PUBACK", failure.code, failure.name)
        self.counters.publish_failures += 1
        self.counters.last_error = str(failure)
        self.store.reject(seqs)
        self._rewind(min(seqs) - 1, max(seqs))

    def _rewind(self, seq: int, upto: int) -> None:
        """Make the backlog (re)send seqs ``seq + 1`` .. ``upto`` that are still buffered."""
        self._cursor = min(self._cursor, seq)
        self._upto = upto if self._upto is None else max(self._upto, upto)
        self._rewinds += 1
        self._wake.set()
