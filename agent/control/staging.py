"""Pump cascade for 2–4 pumps: which pumps run. Pure, no I/O, table-tested.

:func:`stage` takes :class:`StagingParams`, the previous :class:`StagingState` and this period's
:class:`StagingInput` and returns the new state plus the events of this period.

Rules (domain.md §1.3):

* Stage on when the lead output is at or above ``stage_on_hz`` and the pressure is below the
  staging bandwidth (SP·(1 − SBW)) for ``stage_delay_s`` — Danfoss FC 202 25-20 staging
  bandwidth and 25-23 SBW staging delay (default 15 s) [S2][S10]; the timer restarts when the
  pressure comes back inside the band. ABB 8109 START FREQ / 8115 AUX MOT START D [S12].
* Lead at full speed: once the lead output is at ``full_hz`` (its maximum) with the pressure
  below the staging band, the PI has no authority left and the pressure can only fall, so the
  pump is added after the shorter ``full_delay_s``, unless a pump was added within
  ``stage_delay_s`` (it may still be coming up) (ABB 8109 stages on the output frequency
  alone, above START FREQ + 1 Hz [S12]; derived).
* Override bandwidth: below SP·(1 − OBW) the staging timer is bypassed and pumps are added one
  per ``override_interval_s`` (Danfoss 25-21 OBW, suggested 10 % [S2]); after a stage-on,
  destaging is blocked for ``obw_time_s`` (Danfoss 25-25 OBW time, default 10 s [S10]). The
  interval must let the last pump come up to the speed where it delivers water (ABB 8115 AUX
  MOT START D [S12]): its drive ramps to the pump's shut-off speed — 33.75 Hz at the
  simulator's 0.2 MPa boost, reached in 3.4 s at 10 Hz/s — so 5 s by default (derived; the
  old 2 s started three pumps within 4.2 s after suction recovered, to 0.477 MPa).
* Stage off when the lead output is at or below ``stage_off_hz`` — or, when a per-pump capacity
  is configured, when the measured flow could be carried by one pump fewer — with the pressure
  not short of the band, for ``destage_delay_s`` (Danfoss 25-24, default 15 s [S10]; ABB 8112
  LOW FREQ / 8116 AUX MOT STOP D [S12]). A dip below the staging band while the flow or speed
  still says "one pump fewer" holds the destage timer instead of restarting it (only a dip
  below the override band, or the reason going away, restarts it: a draw's short dip must not
  keep three pumps running at 2–4 m³/h for minutes, as seen in issue 13's trials).
  Flow-based destaging follows curve-aware controllers (Grundfos CU 352 estimates flow,
  [S19]): on flat multistage curves a pure low-frequency rule never fires or flaps.
* Minimum run and stop times and a maximum number of starts per hour per pump (Grundfos CU 352
  "min time between start/stop", "max starts/hour" [S3]; ⚠ small motors ≤ 20 starts/h, §1.3).
* Choice: start the available pump with the fewest running hours, stop the running one with
  the most (Grundfos Hydro Multi-B [S14]) — this rotates duty by run hours. A pump that faults
  drops out at once and, if it was needed, another starts without delay (alarm-dependent
  changeover [S14]). ``standby`` pumps cap the number running (3 pumps, 1 standby → at most 2,
  [S14]).
* Topology ``all_vfd`` (one drive per pump, master/follower: every running pump gets the lead
  frequency) or ``one_vfd`` (pump 1 on the drive, the others fixed speed on contactors: the
  drive pump is always the first to run and the last to stop) [S1][S11].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass(frozen=True, slots=True)
class StagingParams:
    """Cascade settings. Frequencies Hz, times s, fractions of the setpoint, flow m³/h."""

    n_pumps: int = 3
    topology: Literal["all_vfd", "one_vfd"] = "all_vfd"
    standby: int = 0
    stage_on_hz: float = 48.0
    stage_off_hz: float = 30.0
    pump_capacity_m3h: float | None = None
    staging_band: float = 0.02
    override_band: float = 0.10
    stage_delay_s: float = 10.0
    destage_delay_s: float = 20.0
    obw_time_s: float = 10.0
    override_interval_s: float = 5.0
    min_run_s: float = 30.0
    min_stop_s: float = 10.0
    max_starts_per_hour: int = 20
    full_hz: float | None = None
    full_delay_s: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.n_pumps <= 4:
            raise ValueError("n_pumps must be 1..4")
        if not 0 <= self.standby < self.n_pumps:
            raise ValueError("standby must be 0..n_pumps-1")

    @property
    def max_running(self) -> int:
        """Most pumps allowed to run at once (n − standby)."""
        return self.n_pumps - self.standby


@dataclass(frozen=True, slots=True)
class StagingState:
    """Cascade memory. Times are control time ``now_s`` (monotonic seconds).

    Attributes:
        running: per pump, commanded to run.
        changed_s: per pump, time of its last start or stop.
        starts: per pump, start times within the last hour.
        on_timer_s, off_timer_s: accumulated time the stage-on / stage-off condition held.
        last_stage_on_s: time of the last stage-on.
    """

    running: tuple[bool, ...] = ()
    changed_s: tuple[float, ...] = ()
    starts: tuple[tuple[float, ...], ...] = ()
    on_timer_s: float = 0.0
    off_timer_s: float = 0.0
    last_stage_on_s: float = -1.0e9

    @classmethod
    def initial(cls, n: int, now_s: float = -1.0e9) -> StagingState:
        """Every pump stopped, long ago."""
        return cls((False,) * n, (now_s,) * n, ((),) * n)

    @property
    def count(self) -> int:
        """Number of pumps commanded to run."""
        return sum(self.running)


@dataclass(frozen=True, slots=True)
class StagingInput:
    """One period's inputs.

    Attributes:
        now_s: control time, s (monotonic).
        dt_s: time since the previous period, s.
        mv_hz: lead output of the PI law, Hz.
        pv: outlet pressure, MPa; sp: effective setpoint, MPa.
        available: per pump, may run (auto mode, no fault).
        hours: per pump, running hours (from the device, for the choice).
        flow_m3h: measured outlet flow, m³/h, or ``None``.
        demand: whether pumps are wanted at all (False while asleep, interlocked or in
            fallback ``stop``); when False everything stops regardless of minimum run times.
        allow_start: whether a pump may be started now (False while a low-supply condition is
            pending its interlock's raise delay: a pressure sagging for want of water is no
            demand for another pump).
    """

    now_s: float
    dt_s: float
    mv_hz: float
    pv: float
    sp: float
    available: Sequence[bool]
    hours: Sequence[float]
    flow_m3h: float | None = None
    demand: bool = True
    allow_start: bool = True


@dataclass(frozen=True, slots=True)
class StagingEvent:
    """A start or stop. ``kind`` ``stage_on``/``stage_off``/``pump_lost``; ``pump`` 0-based."""

    kind: str
    pump: int
    reason: str


@dataclass(frozen=True, slots=True)
class StagingResult:
    """New state and what happened."""

    state: StagingState
    events: tuple[StagingEvent, ...] = field(default_factory=tuple)


def _can_start(p: StagingParams, s: StagingState, i: int, now: float) -> bool:
    recent = [t for t in s.starts[i] if now - t < 3600.0]
    return now - s.changed_s[i] >= p.min_stop_s and len(recent) < p.max_starts_per_hour


def _set(s: StagingState, i: int, on: bool, now: float) -> StagingState:
    running = list(s.running)
    changed = list(s.changed_s)
    starts = list(s.starts)
    running[i], changed[i] = on, now
    if on:
        starts[i] = (*(t for t in starts[i] if now - t < 3600.0), now)
    return replace(s, running=tuple(running), changed_s=tuple(changed), starts=tuple(starts))


def _pick_start(p: StagingParams, s: StagingState, inp: StagingInput) -> int | None:
    if not inp.allow_start:
        return None
    cands = [
        i
        for i in range(p.n_pumps)
        if inp.available[i] and not s.running[i] and _can_start(p, s, i, inp.now_s)
    ]
    if p.topology == "one_vfd" and not s.running[0]:
        cands = [0] if 0 in cands else []  # the drive pump leads
    if not cands:
        return None
    return min(cands, key=lambda i: (inp.hours[i], i))


def _pick_stop(p: StagingParams, s: StagingState, inp: StagingInput) -> int | None:
    cands = [
        i for i in range(p.n_pumps) if s.running[i] and inp.now_s - s.changed_s[i] >= p.min_run_s
    ]
    if p.topology == "one_vfd" and s.count > 1:
        cands = [i for i in cands if i != 0]  # the drive pump stops last
    if not cands:
        return None
    return max(cands, key=lambda i: (inp.hours[i], -i))


def stage(p: StagingParams, s: StagingState, inp: StagingInput) -> StagingResult:
    """One period of the cascade (see the module docstring)."""
    now = inp.now_s
    events: list[StagingEvent] = []
    if len(s.running) != p.n_pumps:
        s = StagingState.initial(p.n_pumps)
    # A pump that is no longer available drops out at once (the cascade skips failed pumps).
    for i in range(p.n_pumps):
        if s.running[i] and not inp.available[i]:
            s = _set(s, i, False, now)
            events.append(StagingEvent("pump_lost", i, "not available"))
    if not inp.demand:
        for i in range(p.n_pumps):
            if s.running[i]:
                s = _set(s, i, False, now)
                events.append(StagingEvent("stage_off", i, "no demand"))
        return StagingResult(replace(s, on_timer_s=0.0, off_timer_s=0.0), tuple(events))
    lost = sum(1 for e in events if e.kind == "pump_lost")
    if s.count == 0 or lost:
        # Start the lead, or replace a lost pump at once (alarm-dependent changeover, [S14]).
        for _ in range(max(lost, 1 if s.count == 0 else 0)):
            j = _pick_start(p, s, inp)
            if j is None:
                break
            s = replace(_set(s, j, True, now), last_stage_on_s=now)
            events.append(StagingEvent("stage_on", j, "replace" if lost else "lead"))
        return StagingResult(replace(s, on_timer_s=0.0, off_timer_s=0.0), tuple(events))

    n = s.count
    lower = inp.sp * (1.0 - p.staging_band)
    # the lead near full speed too: a setpoint step alone must not stage pumps at once
    override = inp.pv < inp.sp * (1.0 - p.override_band) and inp.mv_hz >= p.stage_on_hz
    want_on = n < p.max_running and (override or (inp.mv_hz >= p.stage_on_hz and inp.pv < lower))
    on_timer = s.on_timer_s + inp.dt_s if want_on else 0.0
    if want_on:
        # …but not before the last pump added had time to come up
        full = (
            p.full_hz is not None
            and inp.mv_hz >= p.full_hz
            and now - s.last_stage_on_s >= p.stage_delay_s
        )
        due = (
            on_timer >= p.stage_delay_s
            or (full and on_timer >= p.full_delay_s)
            or (override and now - s.last_stage_on_s >= p.override_interval_s)
        )
        if due:
            j = _pick_start(p, s, inp)
            if j is not None:
                s = replace(_set(s, j, True, now), last_stage_on_s=now)
                events.append(StagingEvent("stage_on", j, "override" if override else "demand"))
                on_timer = 0.0
    n = s.count
    low_flow = (
        p.pump_capacity_m3h is not None
        and inp.flow_m3h is not None
        and inp.flow_m3h < p.pump_capacity_m3h * (n - 1)
    )
    reason_off = (
        n > 1
        and not want_on
        and (inp.mv_hz <= p.stage_off_hz or low_flow)
        and now - s.last_stage_on_s >= p.obw_time_s
    )
    want_off = reason_off and inp.pv >= lower
    hold = reason_off and inp.pv >= inp.sp * (1.0 - p.override_band)  # a small dip: hold
    off_timer = s.off_timer_s + inp.dt_s if want_off else (s.off_timer_s if hold else 0.0)
    if want_off and off_timer >= p.destage_delay_s:
        j = _pick_stop(p, s, inp)
        if j is not None:
            s = _set(s, j, False, now)
            events.append(StagingEvent("stage_off", j, "low flow" if low_flow else "low speed"))
            off_timer = 0.0
    return StagingResult(replace(s, on_timer_s=on_timer, off_timer_s=off_timer), tuple(events))
