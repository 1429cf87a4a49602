"""The booster cabinet's own controller: constant-pressure PI, lead/lag staging, sleep/wake.

Pure: :meth:`CabinetController.step` takes measurements and returns a decision; no I/O, no clock.
It imitates the cascade controllers of domain.md §1.2–1.4 in the "one VFD per pump"
(master/follower) topology: every running pump gets the same frequency reference.

Parameter sources (domain.md):

* PI: normal acting (output falls when feedback > setpoint, Danfoss 20-81, [S6]); gain and
  integral time in the ranges of Danfoss 20-93/20-94 ([S6]) and Grundfos/Wilo factory values
  (Kp 0.5, Ti 0.5 s, [S7][S8]) scaled here to Hz per MPa of error for this plant.
* Staging: stage on at ≥ 48 Hz for 10 s, stage off at ≤ 30 Hz for 15 s (§1.3 "typical values",
  derived from Danfoss 25-23/25-24 defaults 15 s [S10] and the master/follower stage-on 48.5 Hz
  example [S11]); override bandwidth 10 % stages at once (Danfoss 25-21, [S2]); destaging blocked
  10 s after staging (Danfoss 25-25 OBW time, [S10]); at least 5 s between two stagings so a
  pump can reach speed first (derived; cf. ABB 8115 AUX MOT START D, [S12]).
* Pump choice: start the available pump with the fewest running hours, stop the running one
  with the most (Grundfos Hydro Multi-B, [S14]).
* Destaging uses the pump curve, as curve-aware controllers estimate flow from pressure and speed
  (Grundfos CU 352, [S19]): a pump stops when the remaining pumps could carry the measured flow at
  ≤ ``destage_hz`` (derived: a plain low-frequency rule flaps on flat multistage curves, whose
  shut-off speed at a 0.2 MPa boost is already ~35 Hz).
* Sleep/wake: sleep after 30 s on one pump with the flow below ``sleep_flow_m3h`` and the
  pressure at setpoint (Grundfos CU 352 stop function "Q < Qmin", [S19]; Danfoss 22-4* sequence
  [S15]); wake when the pressure falls 10 % below setpoint (Grundfos Hydro Multi-E ΔH default
  10 %, [S20]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hil_sim.hydraulics import PumpCurve


@dataclass(frozen=True, slots=True)
class ControllerParams:
    """Tuning of :class:`CabinetController`. Frequencies Hz, times s, pressures MPa."""

    kp_hz_per_mpa: float = 150.0
    ti_s: float = 2.0
    f_min_hz: float = 25.0
    f_max_hz: float = 50.0
    stage_on_hz: float = 48.0
    stage_on_delay_s: float = 10.0
    destage_hz: float = 44.0
    stage_off_delay_s: float = 15.0
    override_band: float = 0.10
    destage_block_s: float = 10.0
    stage_interval_s: float = 5.0
    sleep_flow_m3h: float = 0.6
    sleep_delay_s: float = 30.0
    wake_band: float = 0.10
    max_running: int = 3


@dataclass(frozen=True, slots=True)
class Decision:
    """What the controller wants this step.

    Attributes:
        run: per pump, whether it should run (index 0 = pump 1).
        freq_ref_hz: frequency reference for every running pump, Hz.
        sleeping: True while the set is in the stop (sleep) function.
    """

    run: tuple[bool, ...]
    freq_ref_hz: float
    sleeping: bool


@dataclass
class CabinetController:
    """Constant-pressure PI with lead/lag staging and sleep, for ``n_pumps`` pumps.

    Args:
        n_pumps: number of pumps in the set.
        params: tuning, see :class:`ControllerParams`.
        curve: the pumps' curve at 50 Hz (for the destaging estimate).
    """

    n_pumps: int
    params: ControllerParams = field(default_factory=ControllerParams)
    curve: PumpCurve = field(default_factory=PumpCurve)
    integral_hz: float = 0.0
    running: list[bool] = field(default_factory=list)
    sleeping: bool = False
    _stage_on_timer: float = 0.0
    _stage_off_timer: float = 0.0
    _sleep_timer: float = 0.0
    _since_stage: float = 1.0e9

    def __post_init__(self) -> None:
        if not self.running:
            self.running = [False] * self.n_pumps

    def reset(self) -> None:
        """Forget the loop state (used when the cabinet leaves automatic mode)."""
        self.integral_hz = 0.0
        self.running = [False] * self.n_pumps
        self.sleeping = False
        self._stage_on_timer = self._stage_off_timer = self._sleep_timer = 0.0

    def takeover(self, running: Sequence[bool], freq_hz: float) -> None:
        """Take over bumplessly from another controller (bus mode → automatic, as real cascade
        cabinets do on a fieldbus hand-back): the pumps that run keep running, the PI starts
        from their frequency ``freq_hz`` (Hz), staging waits ``stage_interval_s`` and
        destaging ``destage_block_s`` as after a staging."""
        self.reset()
        self.running = [bool(r) for r in running]
        if any(self.running):
            self.integral_hz = min(max(freq_hz, self.params.f_min_hz), self.params.f_max_hz)
        self._since_stage = 0.0

    def step(
        self,
        dt_s: float,
        pv_mpa: float,
        setpoint_mpa: float,
        available: Sequence[bool],
        hours: Sequence[float],
        flow_m3h: float,
        head_m: float,
    ) -> Decision:
        """Advance the controller by ``dt_s`` seconds.

        Args:
            dt_s: step, s (> 0).
            pv_mpa: measured outlet pressure (process value), MPa.
            setpoint_mpa: pressure setpoint, MPa.
            available: per pump, whether the controller may run it (auto mode, no fault).
            hours: per pump, running hours so far (for the start/stop choice).
            flow_m3h: measured outlet flow, m³/h.
            head_m: measured boost head (outlet − suction pressure), m.

        Returns:
            The :class:`Decision`.
        """
        p = self.params
        # A pump that became unavailable drops out at once (the cascade skips failed pumps, §2).
        self.running = [r and a for r, a in zip(self.running, available, strict=True)]
        n_run = sum(self.running)
        error = setpoint_mpa - pv_mpa

        if self.sleeping or n_run == 0:
            if pv_mpa < setpoint_mpa * (1.0 - p.wake_band) or not self.sleeping:
                if self._start_one(available, hours):
                    self.sleeping = False
                    self.integral_hz = max(self.integral_hz, p.f_min_hz + 10.0)
                    self._since_stage = 0.0
            n_run = sum(self.running)
            if n_run == 0:
                return Decision(tuple(self.running), 0.0, self.sleeping)

        # PI with clamping anti-windup (integrator held inside [f_min, f_max]).
        self.integral_hz += p.kp_hz_per_mpa * error * dt_s / p.ti_s
        self.integral_hz = min(max(self.integral_hz, p.f_min_hz), p.f_max_hz)
        ref = min(max(self.integral_hz + p.kp_hz_per_mpa * error, p.f_min_hz), p.f_max_hz)
        self._since_stage += dt_s

        # Staging: all running pumps near full speed and pressure short of the setpoint.
        below = pv_mpa < setpoint_mpa
        override = pv_mpa < setpoint_mpa * (1.0 - p.override_band)
        if ref >= p.stage_on_hz and below and n_run < min(p.max_running, self.n_pumps):
            self._stage_on_timer += dt_s
            due = override or self._stage_on_timer >= p.stage_on_delay_s
            if due and self._since_stage >= p.stage_interval_s:
                if self._start_one(available, hours):
                    self._since_stage = 0.0
                self._stage_on_timer = 0.0
        else:
            self._stage_on_timer = 0.0

        # Destaging: n − 1 pumps could carry the flow comfortably; not just after staging.
        n_run = sum(self.running)
        if (
            n_run > 1
            and self._speed_needed_hz(n_run - 1, flow_m3h, head_m) <= p.destage_hz
            and self._since_stage >= p.destage_block_s
        ):
            self._stage_off_timer += dt_s
            if self._stage_off_timer >= p.stage_off_delay_s:
                self._stop_one(hours)
                self._stage_off_timer = 0.0
        else:
            self._stage_off_timer = 0.0

        # Sleep: the last pump idling at low speed with the pressure satisfied.
        if sum(self.running) == 1 and flow_m3h < p.sleep_flow_m3h and error <= 0.0:
            self._sleep_timer += dt_s
            if self._sleep_timer >= p.sleep_delay_s:
                self.running = [False] * self.n_pumps
                self.sleeping = True
                self._sleep_timer = 0.0
                return Decision(tuple(self.running), 0.0, True)
        else:
            self._sleep_timer = 0.0
        return Decision(tuple(self.running), ref, False)

    def _speed_needed_hz(self, n: int, flow_m3h: float, head_m: float) -> float:
        """Frequency at which ``n`` equal pumps deliver ``flow_m3h`` against ``head_m``."""
        c = self.curve
        s2 = (max(head_m, 0.0) + c.b_m_per_m3h2 * (flow_m3h / n) ** 2) / c.a_m
        return self.params.f_max_hz * s2**0.5

    def _start_one(self, available: Sequence[bool], hours: Sequence[float]) -> bool:
        candidates = [i for i in range(self.n_pumps) if available[i] and not self.running[i]]
        if not candidates:
            return False
        self.running[min(candidates, key=lambda i: (hours[i], i))] = True
        return True

    def _stop_one(self, hours: Sequence[float]) -> None:
        candidates = [i for i in range(self.n_pumps) if self.running[i]]
        self.running[max(candidates, key=lambda i: (hours[i], -i))] = False
