"""The alarm stage of the agent: feeds the engine, persists and publishes what it decides.

* :meth:`AlarmRuntime.observe` is called by the ingest stage for every poll, on the event loop,
  before the buffer commit: evaluation is pure CPU work of microseconds per reading.
* :meth:`AlarmRuntime.run` ticks every :data:`TICK_S` (delays, stale, frozen, comm loss,
  shelving expiry) and writes each transition, in order, as an ``alarm`` event together with
  the alarm's record (:meth:`agent.store.Store.add_alarm_event`: one transaction), then wakes
  the uplink. Events have their own seq; the broker being down changes nothing here: they wait
  in the buffer and go, in seq order, before the telemetry backlog (:mod:`agent.uplink`).
* :meth:`AlarmRuntime.command` carries out ``alarm.ack`` / ``alarm.shelve`` /
  ``alarm.unshelve`` (:mod:`agent.commands`); each accepted one is an event with ``by`` and
  ``cmd_id`` (the audit record).
* Log lines are rate-limited per transition kind (:class:`LogLimiter`): a burst of alarms
  writes a few lines and one summary, never one line per alarm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from agent.alarms.engine import AlarmEngine
from agent.alarms.rules import PointFacts, Spec, compile_rules
from agent.alarms.state import Alarm, Refused, State, Transition
from agent.config.alarms import AlarmsConfig
from agent.core.aio import wait_event
from agent.core.model import Reading, WallClock
from agent.store import Store

log = logging.getLogger("agent.alarms")

TICK_S = 0.5
"""Period of the time-driven evaluation, s (delays mature within this of their end)."""
LOG_BURST = 5
"""Transitions of one kind logged per :data:`LOG_WINDOW_S`; the rest are counted."""
LOG_WINDOW_S = 60.0


class LogLimiter:
    """At most :data:`LOG_BURST` lines per kind per :data:`LOG_WINDOW_S`, then one summary
    line per kind with the number left out."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    def allow(self, kind: str, mono: float) -> bool:
        """Whether a line of ``kind`` may be logged now (counts it either way)."""
        start, n = self._windows.get(kind, (mono, 0))
        if mono - start >= LOG_WINDOW_S:
            if n > LOG_BURST:
                log.warning("alarms: %d more '%s' transitions not logged", n - LOG_BURST, kind)
            start, n = mono, 0
        self._windows[kind] = (start, n + 1)
        return n < LOG_BURST


def event_body(tr: Transition, cmd_id: str | None = None) -> dict[str, Any]:
    """The ``alarm`` event of one transition (event.schema.json ``alarm``)."""
    a = tr.alarm
    body: dict[str, Any] = {
        "type": "alarm", "t": tr.t, "code": a.code,
        "state": "active" if a.active else "cleared", "severity": a.priority,
        "priority": a.priority, "id": a.id, "rule": a.rule, "transition": tr.what.value,
        "alarm_state": a.state.value, "value": a.value,
    }  # fmt: skip
    for key in ("limit", "unit", "point", "raised_at", "acked_at", "cleared_at", "shelved_until"):
        v = getattr(a, key)
        if v is not None:
            body[key] = v
    detail = dict(a.detail)
    if "device" in detail:
        body["device"] = detail.pop("device")
    if detail:
        body["detail"] = detail
    if tr.by is not None:
        body["by"] = tr.by
    if cmd_id is not None:
        body["cmd_id"] = cmd_id
    return body


def status_entry(a: Alarm) -> dict[str, Any]:
    """One entry of the ``alarms`` list in the status snapshot and the retained status."""
    return {
        "id": a.id, "point": a.point, "rule": a.rule, "code": a.code, "priority": a.priority,
        "state": a.state.value, "active": a.active, "value": a.value, "limit": a.limit,
        "unit": a.unit, "raised_at": a.raised_at, "acked_at": a.acked_at,
        "cleared_at": a.cleared_at, "shelved_until": a.shelved_until, "detail": dict(a.detail),
    }  # fmt: skip


class AlarmRuntime:
    """See the module docstring. Build with :meth:`open`; run :meth:`run` as a task.

    Args:
        engine: the engine, restored from the buffer.
        store: the buffer.
        clock: wall clock (event times).
        on_change: called after transitions were buffered (wakes the uplink's event sender
            and its retained-status refresh).
    """

    def __init__(
        self, engine: AlarmEngine, store: Store, clock: WallClock, on_change: Callable[[], None]
    ) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock
        self.on_change = on_change
        self._queue: list[tuple[Transition, str | None]] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._logs = LogLimiter()
        self.counters = {"transitions": 0, "evaluation_errors": 0, "persist_failures": 0}

    @classmethod
    async def open(
        cls,
        cfg: AlarmsConfig,
        points: dict[str, PointFacts],
        config_dir: Path,
        store: Store,
        clock: WallClock,
        on_change: Callable[[], None],
    ) -> AlarmRuntime:
        """Compile the rules and restore the alarm records from ``store``.

        Raises:
            FaultMapError: a configured fault map cannot be read.
        """
        specs = compile_rules(cfg, points, config_dir)
        records = await store.alarm_records()
        restored = {}
        for aid, body in records.items():
            try:
                restored[aid] = Alarm.from_json(body)
            except (TypeError, ValueError) as exc:
                log.error("alarms: stored record %s unreadable (%s); it starts normal", aid, exc)
        gone = sorted(set(records) - set(specs))
        if gone:  # a rule removed from the config: its alarm is no more (never listed again)
            log.warning("alarms: no rule for the stored alarms %s any more; dropped", gone)
            await store.drop_alarm_records(gone)
        engine = AlarmEngine(specs, restored, cfg.shelve_max_s)
        active = [a.id for a in engine.active_list()]
        log.info("alarms: %d rules, %d alarms restored from the buffer %s", len(specs),
                 len(active), active[:10])  # fmt: skip
        return cls(engine, store, clock, on_change)

    async def replace_rules(self, specs: dict[str, Spec]) -> list[str]:
        """Run with ``specs`` from now on (a reload changed ``devices:``): every alarm whose
        rule is still there keeps its state (active, acknowledged, shelved, times); the records
        of rules gone with their points are dropped from the buffer, as at a start. Delays and
        debounce timers start again. Returns the ids dropped."""
        engine = AlarmEngine(specs, dict(self.engine.alarms), self.engine.shelve_max_s)
        gone = sorted(set(self.engine.alarms) - set(specs))
        self.engine = engine  # no await between building and swapping: one tick sees one
        if gone:
            log.warning("alarms: reload: no rule for %s any more; dropped", gone)
            await self.store.drop_alarm_records(gone)
        log.info("alarms: reload: %d rules", len(specs))
        return gone

    def observe(self, readings: Sequence[Reading], ts_ms: int, mono: float) -> None:
        """Evaluate one poll's readings (never raises, never blocks)."""
        try:
            self._enqueue(self.engine.observe(readings, ts_ms, mono))
        except Exception:  # a bug in a rule must not stop the ingest of samples
            self.counters["evaluation_errors"] += 1
            if self._logs.allow("evaluation error", mono):
                log.exception("alarms: evaluation failed")

    async def command(
        self, method: str, params: dict[str, Any], cmd_id: str, by: str
    ) -> dict[str, Any]:
        """Carry out an alarm command; returns the result (the alarm's entry after it).

        Raises:
            Refused: with the command result code (INVALID_ARGUMENT for an unknown alarm,
                OUT_OF_RANGE for a shelving time out of bounds, NOT_PERMITTED).
        """
        now = self.clock.now_ms()
        aid = str(params.get("alarm"))
        if method == "alarm.ack":
            tr = self.engine.acknowledge(aid, now, by)
        elif method == "alarm.shelve":
            tr = self.engine.shelve(aid, float(params["duration_s"]), now, by)
        elif method == "alarm.unshelve":
            tr = self.engine.unshelve(aid, now, by)
        else:
            raise Refused("INVALID_ARGUMENT", {"reason": f"unknown method {method}"})
        self._enqueue([tr], cmd_id)
        await self.flush()
        return {"alarm": status_entry(tr.alarm)}

    def status_list(self) -> list[dict[str, Any]]:
        """The active alarm list (most urgent first) for status."""
        return [status_entry(a) for a in self.engine.active_list()]

    async def run(self) -> None:
        """Tick and persist, forever."""
        next_tick = time.monotonic()
        while True:
            await wait_event(self._ready, max(0.0, next_tick - time.monotonic()))
            mono = time.monotonic()
            if mono >= next_tick:
                next_tick = mono + TICK_S
                try:
                    self._enqueue(self.engine.tick(self.clock.now_ms(), mono))
                except Exception:
                    self.counters["evaluation_errors"] += 1
                    if self._logs.allow("evaluation error", mono):
                        log.exception("alarms: tick failed")
            self._ready.clear()
            if self._queue:
                await self._persist()

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until every transition so far is buffered."""
        await wait_event(self._idle, timeout_s)

    def _enqueue(self, transitions: Iterable[Transition], cmd_id: str | None = None) -> None:
        items = [(t, cmd_id) for t in transitions]
        if items:
            self._queue.extend(items)
            self._idle.clear()
            self._ready.set()

    async def _persist(self) -> None:
        batch, self._queue = self._queue, []
        mono = time.monotonic()
        done = 0
        try:
            for tr, cmd_id in batch:
                a = tr.alarm
                record = a.to_json() if a.state is not State.NORMAL else None
                ev = await self.store.add_alarm_event(event_body(tr, cmd_id), a.id, record)
                done += 1
                self.counters["transitions"] += 1
                if self._logs.allow(tr.what.value, mono):
                    log.warning(
                        "alarm %s %s (%s, %s): value %s limit %s, event seq %d",
                        a.id, tr.what.value, a.code, a.priority, a.value, a.limit, ev.seq,
                    )  # fmt: skip
        except Exception as exc:  # disk trouble: keep the rest for the next round, in order
            self.counters["persist_failures"] += 1
            self._queue[:0] = batch[done:]
            if self._logs.allow("persist failure", mono):
                log.error("alarms: %d transitions not buffered yet: %s", len(batch) - done, exc)
            await asyncio.sleep(1.0)
            self._ready.set()
        finally:
            if done:
                self.on_change()
        if not self._queue:
            self._idle.set()
