"""The pressure control law: PI(D) on outlet pressure → lead-drive frequency. Pure, no I/O.

:func:`pid_step` takes the parameters, the previous :class:`PidState` and this period's
:class:`PidInput` and returns the new state (whose ``out`` is the manipulated variable, Hz).
:func:`ramp` moves a setpoint towards its target at a bounded rate.

Control law (parallel/ideal form, Danfoss 20-81 "normal" acting: the output falls when the
feedback is above the setpoint, domain.md §1.2, [S6])::

    e = SP − PV
    P = Kp·e
    I += Kp·dt/Ti·e            (only while the output is not held at a limit in e's direction)
    D = −Kp·Td·dPV/dt          (on the measurement, first-order filter Tf = Td/N)
    I += FF                    (feed-forward increment of the period, e.g. from flow)
    u = clamp(P + I + D, out_min, out_max), then rate-limited to ±rate·dt per period

* Anti-windup by conditional integration (the integrator is frozen while the output is held at
  a limit or by the rate limit in the direction the error pushes it) plus clamping of the
  integral itself into the output range: after a saturation the loop recovers at once.
* Derivative on the measurement (a setpoint step gives no derivative kick) with the usual
  first-order filter of time constant Td/N (N = 10 by default).
* Bumpless transfer: in MANUAL the output follows ``manual_out`` and the integrator tracks it
  (I = u − P − D), so switching to AUTO or REMOTE starts from the present output. The same
  tracking applies while an external ``track`` value holds the output (fallback freeze, pump
  staging, a drive that is stopped).

Default gains: Danfoss FC 202 20-93 PID proportional gain 0.50 (range 0–10, normalised: the
proportional band is max reference/Kp) and 20-94 integral time 20 s [S6]; Grundfos CR(E)
Kp 0.5, Ti 0.5 s [S7]; Wilo IP-E P 0.5, I 0.5 s, D off [S8]. Here the gain is in Hz per MPa:
normalised Kp = kp_hz_per_mpa × (sensor span MPa / f_max Hz); with the simulator's 1.6 MPa
transmitter and 50 Hz, 100 Hz/MPa ≈ normalised 3.2 (tuned on the simulator: the loop
closed over RS-485 has 0.2–0.4 s of dead time). Ti 1–20 s for a loop closed over the
fieldbus at 200–500 ms (domain.md §1.2 design notes).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace


class Mode(enum.StrEnum):
    """Where the loop's setpoint and output come from.

    * ``auto``: closed loop on the local (configured / clock-program) setpoint.
    * ``remote``: closed loop on the setpoint the platform requested.
    * ``manual``: the output is set by hand; the controller only tracks.
    """

    AUTO = "auto"
    REMOTE = "remote"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class PidParams:
    """Tuning and limits. Units: PV/SP MPa, output Hz, times s.

    Attributes:
        kp: proportional gain, Hz per MPa of error (see the module docstring for the
            conversion to Danfoss' normalised 20-93 gain).
        ti_s: integral time, s (Danfoss 20-94, default 20 s [S6]); ``math.inf`` = no I.
        td_s: derivative time, s; 0 = off (Wilo IP-E factory D 0 [S8]).
        d_filter_n: derivative filter ratio N, the filter time constant is Td/N.
        out_min: lowest output while running, Hz (ABB LOW FREQ 25–30 Hz [S12][S13]).
        out_max: highest output, Hz.
        rate_hz_per_s: largest output change per second, Hz/s; ``math.inf`` = no limit.
    """

    kp: float = 100.0
    ti_s: float = 2.0
    td_s: float = 0.0
    d_filter_n: float = 10.0
    out_min: float = 25.0
    out_max: float = 50.0
    rate_hz_per_s: float = 10.0

    def __post_init__(self) -> None:
        if self.kp < 0 or self.ti_s <= 0 or self.td_s < 0 or self.d_filter_n <= 0:
            raise ValueError("kp, td_s ≥ 0 and ti_s, d_filter_n > 0 required")
        if self.out_min > self.out_max or self.rate_hz_per_s <= 0:
            raise ValueError("out_min ≤ out_max and rate_hz_per_s > 0 required")


@dataclass(frozen=True, slots=True)
class PidState:
    """The controller's memory between periods.

    Attributes:
        integral: integral term, Hz.
        d_term: filtered derivative term, Hz.
        last_pv: PV of the previous period, MPa (``None`` before the first).
        out: output of the previous period, Hz.
    """

    integral: float = 0.0
    d_term: float = 0.0
    last_pv: float | None = None
    out: float = 0.0


@dataclass(frozen=True, slots=True)
class PidInput:
    """One period's inputs.

    Attributes:
        dt_s: time since the previous period, s (> 0).
        sp: setpoint (already ramped), MPa.
        pv: measured outlet pressure, MPa.
        mode: :class:`Mode`.
        manual_out: the output in MANUAL, Hz.
        track: when not ``None``, the output is held at this value (Hz) and the controller
            tracks it, whatever the mode (bumpless return).
        ff: feed-forward increment of this period, Hz: added to the integrator (so the output
            moves by it at once, within the limits, and the controller stays bumpless).
    """

    dt_s: float
    sp: float
    pv: float
    mode: Mode = Mode.AUTO
    manual_out: float = 0.0
    track: float | None = None
    ff: float = 0.0


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def pid_step(p: PidParams, s: PidState, i: PidInput) -> PidState:
    """One period of the PI(D) law (see the module docstring). Returns the new state.

    Raises:
        ValueError: ``dt_s`` ≤ 0 or a non-finite PV/SP.
    """
    if not i.dt_s > 0 or not (math.isfinite(i.pv) and math.isfinite(i.sp)):
        raise ValueError(f"bad input {i}")
    dt = i.dt_s
    e = i.sp - i.pv
    prop = p.kp * e
    d = 0.0
    if p.td_s > 0 and s.last_pv is not None:
        tf = p.td_s / p.d_filter_n
        d = (tf * s.d_term - p.kp * p.td_s * (i.pv - s.last_pv)) / (tf + dt)
    forced = i.track if i.track is not None else (i.manual_out if i.mode is Mode.MANUAL else None)
    if forced is not None:
        out = _clamp(forced, p.out_min, p.out_max) if forced > 0 else forced
        integral = _clamp(out - prop - d, p.out_min - prop - d, p.out_max - prop - d)
        return PidState(integral, d, i.pv, out)

    ki = 0.0 if math.isinf(p.ti_s) else p.kp / p.ti_s
    base = s.integral + i.ff
    trial = base + ki * e * dt
    u = _clamp(prop + trial + d, p.out_min, p.out_max)
    step = p.rate_hz_per_s * dt
    prev = s.out if s.out > 0 else u  # from standstill the drive's own ramp applies
    out = _clamp(u, prev - step, prev + step)
    unsat = prop + trial + d
    held_high = (out < unsat) and e > 0
    held_low = (out > unsat) and e < 0
    integral = base if (held_high or held_low) else trial
    integral = _clamp(integral, p.out_min - prop - d, p.out_max - prop - d)
    return PidState(integral, d, i.pv, out)


def ramp(current: float, target: float, rate_per_s: float, dt_s: float) -> float:
    """Move ``current`` towards ``target`` by at most ``rate_per_s × dt_s``.

    Used for setpoint ramps (MPa/s). ``rate_per_s`` ≤ 0 or infinite jumps at once.
    """
    if rate_per_s <= 0 or math.isinf(rate_per_s):
        return target
    step = rate_per_s * dt_s
    if abs(target - current) <= step:
        return target
    return current + math.copysign(step, target - current)


def reset_for(state: PidState, out: float) -> PidState:
    """A state that will continue bumplessly from output ``out`` (Hz) on the next period."""
    return replace(state, integral=out, d_term=0.0, out=out)
