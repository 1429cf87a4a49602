"""Low-demand functions of the pressure loop: sleep with boost and wake, the clock program
(night setpoint reduction) and proportional pressure. Pure, table-tested.

* Sleep (Danfoss FC 202 22-4* sequence [S15][S16]; ABB 4022–4031 [S17][S18]; Grundfos CU 352
  stop function [S19]): one pump running at low demand — speed at or below ``sleep_hz``
  (Danfoss 22-47 sleep speed, ABB 4023 sleep level) or, when a flow meter is configured, the
  flow below ``sleep_flow_m3h`` (Grundfos "Q < Qmin") — for ``sleep_delay_s`` (Danfoss 22-40
  minimum run time, ABB 4024 sleep delay) → setpoint boost by ``boost_mpa`` until the pressure
  reaches it or ``boost_max_s`` passed (Danfoss 22-45 setpoint boost / 22-46 maximum boost
  time, ABB 4030/4031) → all pumps stop. Wake when the pressure falls ``wake_band_mpa`` below
  the setpoint (Danfoss 22-44 wake-up reference/feedback difference, ABB 4025 wake-up
  deviation; Grundfos Hydro Multi-E ΔH default 10 % of the setpoint [S20]) once the
  minimum sleep time (Danfoss 22-41) passed, or at once at twice that deviation.
* Clock program: setpoint periods by local time of day (Grundfos booster active function
  "clock program" / "alternative setpoint", [S22]; domain.md §1.5 night-time reduction).
* Proportional pressure: setpoint rising with flow to make up riser friction
  (Grundfos "proportional pressure" [S22], domain.md §1.5):
  SP(Q) = SP + rise·min(1, (Q/Q_nom)²) — friction losses grow with the square of the flow.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Phase(enum.StrEnum):
    """Sleep state: ``run`` (normal), ``boost`` (raising the pressure before sleep),
    ``sleep`` (all pumps stopped)."""

    RUN = "run"
    BOOST = "boost"
    SLEEP = "sleep"


@dataclass(frozen=True, slots=True)
class SleepParams:
    """Sleep settings. Frequencies Hz, flow m³/h, pressures MPa, times s."""

    enabled: bool = True
    sleep_hz: float = 36.0
    sleep_flow_m3h: float | None = None
    sleep_delay_s: float = 30.0
    boost_mpa: float = 0.03
    boost_max_s: float = 15.0
    wake_band_mpa: float = 0.04
    min_sleep_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SleepState:
    """Phase and since when (control time, s); ``low_s`` accumulates low-demand time."""

    phase: Phase = Phase.RUN
    since_s: float = 0.0
    low_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SleepInput:
    """One period: control time and step (s), pumps running, lead output (Hz), flow (m³/h or
    ``None``), pressure and setpoint (MPa)."""

    now_s: float
    dt_s: float
    running: int
    mv_hz: float
    flow_m3h: float | None
    pv: float
    sp: float


def sleep_step(p: SleepParams, s: SleepState, i: SleepInput) -> SleepState:
    """Advance the sleep state machine one period (see the module docstring)."""
    if not p.enabled:
        return SleepState()
    if s.phase is Phase.RUN:
        if p.sleep_flow_m3h is not None and i.flow_m3h is not None:
            low = i.flow_m3h < p.sleep_flow_m3h
        else:
            low = i.mv_hz <= p.sleep_hz
        low_s = s.low_s + i.dt_s if (i.running == 1 and low and i.pv >= i.sp - 0.01) else 0.0
        if low_s >= p.sleep_delay_s:
            return SleepState(Phase.BOOST, i.now_s)
        return SleepState(Phase.RUN, s.since_s, low_s)
    if s.phase is Phase.BOOST:
        if i.pv >= i.sp + p.boost_mpa or i.now_s - s.since_s >= p.boost_max_s:
            return SleepState(Phase.SLEEP, i.now_s)
        return s
    deficit = i.sp - i.pv
    slept = i.now_s - s.since_s
    if deficit >= 2 * p.wake_band_mpa or (deficit >= p.wake_band_mpa and slept >= p.min_sleep_s):
        return SleepState(Phase.RUN, i.now_s)
    return s


def sleep_offset(p: SleepParams, s: SleepState) -> float:
    """Setpoint offset of the sleep function this period, MPa (the boost)."""
    return p.boost_mpa if s.phase is Phase.BOOST else 0.0


@dataclass(frozen=True, slots=True)
class ClockPeriod:
    """One clock-program period: from ``start_s`` to ``end_s`` (seconds since local midnight;
    may wrap past midnight) the setpoint is ``setpoint_mpa``."""

    name: str
    start_s: float
    end_s: float
    setpoint_mpa: float

    def covers(self, tod_s: float) -> bool:
        """Whether ``tod_s`` (seconds since midnight) lies in this period."""
        if self.start_s <= self.end_s:
            return self.start_s <= tod_s < self.end_s
        return tod_s >= self.start_s or tod_s < self.end_s


def scheduled_setpoint(
    base_mpa: float, program: Sequence[ClockPeriod], tod_s: float
) -> tuple[float, str | None]:
    """The setpoint of the clock program at ``tod_s`` and the active period's name (the first
    period that covers it), or ``(base_mpa, None)``."""
    for period in program:
        if period.covers(tod_s % 86400.0):
            return period.setpoint_mpa, period.name
    return base_mpa, None


def proportional_setpoint(
    sp_mpa: float, flow_m3h: float | None, nominal_m3h: float, rise_mpa: float
) -> float:
    """SP(Q) = SP + rise·min(1, (Q/Q_nom)²), MPa; the plain setpoint without a flow."""
    if flow_m3h is None or nominal_m3h <= 0 or rise_mpa == 0:
        return sp_mpa
    return sp_mpa + rise_mpa * min(1.0, (max(flow_m3h, 0.0) / nominal_m3h) ** 2)


def parse_hhmm(text: str) -> float:
    """``"HH:MM"`` → seconds since midnight. Raises ValueError."""
    hh, _, mm = text.partition(":")
    h, m = int(hh), int(mm)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(f"expected HH:MM, got {text!r}")
    return h * 3600.0 + m * 60.0
