"""The ingest stage between the pollers and the buffer.

Pollers call :meth:`Ingest.submit` (never blocks): the readings go into the latest-value cache at
once and into a queue. One task takes everything queued, commits it to the buffer in one
transaction, then offers the stamped samples to the uplink. So every sample is committed before
it is offered, and a slow disk delays only the uplink, never a poll or a control tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent import faultpoint
from agent.core import progress
from agent.core.aio import wait_event
from agent.core.cache import Cache
from agent.core.model import Reading, WallClock
from agent.exception import ReportByException
from agent.store import Evicted, Poll, Store
from agent.uplink import Uplink

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestCounters:
    """Counters since start: polls and readings submitted, readings the buffer refused (disk
    error), readings dropped by a queue overflow, good readings whose value could not be kept
    (buffered as bad-value samples, reason ``unstorable``)."""

    polls: int = 0
    readings: int = 0
    append_failures: int = 0
    dropped_overflow: int = 0
    unstorable: int = 0


@dataclass(slots=True)
class _Dropped:
    """Readings dropped by the queue bound and not yet reported: count, first/last poll time."""

    count: int = 0
    first_ts: int = 0
    last_ts: int = 0

    def add(self, n: int, ts_ms: int) -> None:
        if not self.count:
            self.first_ts = ts_ms
        self.first_ts, self.last_ts = min(self.first_ts, ts_ms), max(self.last_ts, ts_ms)
        self.count += n


class Ingest:
    """Cache + buffer + uplink hand-off. Run :meth:`run` as a task; :meth:`flush` before stop.

    Args:
        store: the buffer.
        cache: the latest-value cache.
        uplink: the uplink (offered every committed sample).
        clock: the wall clock used to stamp polls.
        queue_max: most readings waiting for the buffer; beyond that the oldest waiting polls
            are dropped (only when the disk stalls for a long time): counted, logged, and
            reported as a ``data_loss`` event (reason ``not_buffered``, cause
            ``ingest_overflow``, with the count and the poll-time range) once the buffer
            takes writes again.
        rbe: report-by-exception filter between the cache and the buffer (default: none).
    """

    def __init__(
        self,
        store: Store,
        cache: Cache,
        uplink: Uplink,
        clock: WallClock,
        queue_max: int = 200_000,
        rbe: ReportByException | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.uplink = uplink
        self.clock = clock
        self.queue_max = queue_max
        self.rbe = rbe or ReportByException({})
        self.counters = IngestCounters()
        self._queue: list[Poll] = []
        self._queued = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._synced = clock.synced()
        self._synced_at = time.monotonic()
        self._dropped = _Dropped()
        self._unstorable_logged: set[str] = set()
        self.observers: list[Callable[[Sequence[Reading], int, float], None]] = []
        """Called with every poll's readings, ``ts_ms`` and ``mono`` right after the cache
        (the alarm stage); they must not block or raise."""

    def submit(self, readings: Sequence[Reading], ts_ms: int | None = None) -> None:
        """Cache one poll's readings and queue them for the buffer.

        Args:
            readings: the poll's readings.
            ts_ms: wall-clock time the poll started, UTC ms (default: now).
        """
        mono = time.monotonic()
        if ts_ms is None:
            ts_ms = self.clock.now_ms()
        if mono - self._synced_at > 10.0:
            self._synced, self._synced_at = self.clock.synced(), mono
        self.cache.update(readings, ts_ms, mono)
        for observe in self.observers:
            observe(readings, ts_ms, mono)
        readings = self.rbe.filter(readings, mono)
        if not readings:
            return
        self._queue.append(Poll(readings, ts_ms, self._synced))
        self._queued += len(readings)
        self.counters.polls += 1
        self.counters.readings += len(readings)
        while self._queued > self.queue_max and len(self._queue) > 1:
            dropped = self._queue.pop(0)
            self._queued -= len(dropped.readings)
            self.counters.dropped_overflow += len(dropped.readings)
            self._dropped.add(len(dropped.readings), dropped.ts_ms)
        self._idle.clear()
        self._ready.set()

    async def run(self) -> None:
        """Commit queued polls to the buffer and offer them to the uplink, forever. Beats the
        ``ingest`` heartbeat after every turn, and at least every second when idle."""
        while True:
            await wait_event(self._ready, 1.0)
            await faultpoint.checkpoint("ingest")
            progress.beat("ingest")
            self._ready.clear()
            polls, self._queue, self._queued = self._queue, [], 0
            if polls:
                await self._commit(polls)
            if self._dropped.count:
                await self._report_overflow()
            if not self._queue:
                self._idle.set()

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait (bounded) until everything submitted so far is committed to the buffer."""
        if not await wait_event(self._idle, timeout_s):
            log.error("ingest: %d readings not committed at stop", self._queued)

    async def _commit(self, polls: list[Poll]) -> None:
        try:
            result = await self.store.append(polls)
        except Exception as exc:  # the ingest task must outlive any disk trouble
            n = sum(len(p.readings) for p in polls)
            self.counters.append_failures += n
            log.error("ingest: %d readings could not be buffered: %s", n, exc)
            await self._record_loss(
                {"stream": "telemetry", "reason": "not_buffered", "count": n,
                 "t_range": [polls[0].ts_ms, polls[-1].ts_ms]}
            )  # fmt: skip
            return
        for ev in result.evicted:
            await self._data_loss(ev)
        if result.unstorable:
            self._note_unstorable(result.unstorable)
        self.uplink.offer(result.samples)

    async def _report_overflow(self) -> None:
        """Report the readings the queue bound dropped since the last report: one ERROR line
        and one ``data_loss`` event (they never got a seq, so it carries their poll times)."""
        d, self._dropped = self._dropped, _Dropped()
        log.error(
            "ingest: queue over %d readings while the buffer was slow: dropped the %d oldest"
            " (polls %d..%d)", self.queue_max, d.count, d.first_ts, d.last_ts,
        )  # fmt: skip
        await self._record_loss(
            {"stream": "telemetry", "reason": "not_buffered", "cause": "ingest_overflow",
             "count": d.count, "t_range": [d.first_ts, d.last_ts]}
        )  # fmt: skip

    def _note_unstorable(self, items: list[tuple[str, str]]) -> None:
        """Count good readings whose value could not be kept; log each point's first one."""
        self.counters.unstorable += len(items)
        for point, value in items:
            if point not in self._unstorable_logged:
                self._unstorable_logged.add(point)
                log.warning(
                    "ingest: %s: value %s cannot be kept; buffered as a bad-value sample"
                    " (reason 'unstorable'); further ones are only counted", point, value,
                )  # fmt: skip

    async def _data_loss(self, ev: Evicted) -> None:
        await self._record_loss(
            {"stream": "telemetry", "seq_range": [ev.first_seq, ev.last_seq], "count": ev.count,
             "reason": "buffer_full", "cause": ev.cause}
        )  # fmt: skip

    async def _record_loss(self, detail: dict[str, object]) -> None:
        """Buffer a ``data_loss`` event (best effort: the disk may be what failed)."""
        body = {"type": "data_loss", "t": self.clock.now_ms(), **detail}
        try:
            await self.store.add_event(body)
        except Exception as exc:
            log.error("ingest: data-loss event could not be buffered: %s (%s)", exc, body)
        self.uplink.wake()
