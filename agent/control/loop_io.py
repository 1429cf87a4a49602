"""The control loop's I/O helpers: reading the latest-value cache, queued writes, telemetry and
events (a base of :class:`agent.control.loop.ControlLoop`; no awaits, never blocks)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from agent.config.control import ControlConfig
from agent.control.io import EventQueue
from agent.control.law import Mode, PidState
from agent.control.lowdemand import SleepState
from agent.control.outputs import OutputSet
from agent.control.protect import InterlockState, PvReading
from agent.control.staging import StagingState
from agent.control.state import ACTIVE_BITS, MODE_CODES, LawParams, LoopState
from agent.core.cache import Cache
from agent.core.model import Quality, Reading, WallClock

log = logging.getLogger("agent.control.loop")

_QUALITY = {
    Quality.GOOD: "good",
    Quality.COMM_FAIL: "comms",
    Quality.BAD_VALUE: "bad",
    Quality.STALE: "stale",
}


class LoopIO:
    """Cache reads, coalesced writes, published state and events of the control loop.

    Declares every attribute of the loop that its parts share (set in
    :meth:`agent.control.loop.ControlLoop.__init__`), so mypy checks each use: no
    ``__getattr__`` escape hatch lets a misspelt attribute through."""

    cfg: ControlConfig
    law: LawParams
    cache: Cache
    out: OutputSet
    events: EventQueue
    wall: WallClock
    publish: Callable[[Sequence[Reading]], None] | None
    state: LoopState
    mode: Mode
    manual_hz: float
    local_lock: bool
    sp: float
    sp_eff: float
    pv: float | None
    pv_fault: str | None
    fallback: bool
    handed_back: bool
    active: set[str]
    inter: InterlockState
    pid: PidState
    staging: StagingState
    sleep: SleepState
    _waiting_pv: bool

    def _value(self, name: str | None) -> float | None:
        if name is None:
            return None
        latest = self.cache.get(name)
        if latest is None or latest.quality is not Quality.GOOD or latest.value is None:
            return None
        return float(latest.value)

    def _pv_reading(self, now: float, lead_hz: float | None, flow: float | None) -> PvReading:
        latest = self.cache.get(self.cfg.points.pv)
        if latest is None:
            return PvReading(now, None, "missing", lead_hz=lead_hz, flow_m3h=flow)
        value = None if latest.value is None else float(latest.value)
        ma = self._value(self.cfg.points.pv_ma) if self.cfg.points.pv_ma else None
        quality = _QUALITY[latest.quality]
        return PvReading(now, value, quality, now - latest.mono, ma, lead_hz, flow)

    def _lead_hz(self) -> float | None:
        vals = [self._value(p.freq) for p in self.cfg.pumps]
        known = [v for v in vals if v is not None]
        return max(known) if known else None

    def _available(self) -> list[bool]:
        out = []
        for pump in self.cfg.pumps:
            fault = self._value(pump.fault)
            mode = self._value(pump.mode)
            out.append(not fault and (mode is None or int(mode) == self.cfg.codes.pump_auto))
        return out

    def _hours(self) -> list[float]:
        return [self._value(p.hours) or 0.0 for p in self.cfg.pumps]

    def _write(
        self, name: str | None, value: float, now: float, tolerance: float = 0.0,
        force: bool = False, refresh: bool = True,
    ) -> None:  # fmt: skip
        """Want ``value`` on ``name``, rewritten until the device reads it back (:mod:`.outputs`)
        and, with ``refresh``, every ``watchdog_refresh_s`` as well (feeds the drives'
        communication watchdog; the cabinet's setpoint and run enable need no such feed)."""
        refresh_s = self.cfg.watchdog_refresh_s if refresh else None
        self.out.want(name, value, now, tolerance=tolerance, refresh_s=refresh_s, force=force)

    def _write_once(self, name: str | None, value: float, now: float) -> None:
        """Want ``value`` on ``name`` (a mode switch): written, then rewritten only until the
        device reads it back."""
        self.out.want(name, value, now)

    def _set_active(self, name: str, on: bool) -> None:
        (self.active.add if on else self.active.discard)(name)

    def _publish(self) -> None:
        if self.publish is None:
            return
        bits = sum(ACTIVE_BITS[a] for a in self.active)
        pv_q = Quality.GOOD if self.pv is not None else Quality.BAD_VALUE
        readings = [
            Reading("ctl.sp", round(self.sp_eff, 4)),
            Reading("ctl.pv", self.pv, pv_q, None if self.pv is not None else self._pv_why()),
            Reading("ctl.mv", round(self.pid.out, 2) if self.cfg.mode == "direct" else 0.0),
            Reading("ctl.mode", MODE_CODES[self.state]),
            Reading("ctl.pumps_running", self.staging.count),
            Reading("ctl.active", bits),
        ]
        self.publish(readings)

    def _pv_why(self) -> str:
        """Why ``ctl.pv`` has no value: the sensor fault, or ``starting`` (no PV polled yet)."""
        return self.pv_fault or ("starting" if self._waiting_pv else "unknown")

    def _event(self, kind: str, **detail: Any) -> None:
        body = {"type": f"control.{kind}", "t": self.wall.now_ms(), **detail}
        log.info("control: %s %s", kind, detail)
        self.events.put(body)
