"""Fail-safes of the pressure loop: outlet-sensor validation and the pump interlocks. Pure.

* :func:`check_pv` classifies the outlet pressure each period: ``comms`` (the poll failed),
  ``stale`` (not refreshed within ``stale_s``), ``bad`` (the driver marked it bad), ``open`` /
  ``short`` (4–20 mA loop current below 3.6 mA or above 21 mA — NAMUR NE 43: < 3.6 mA or
  > 21 mA is a failure signal, 3.8–20.5 mA valid including saturation [S31]; domain.md §2),
  ``range`` (outside the plausible range), ``frozen`` (bit-identical for ``frozen_s`` while the
  process moved: the lead drive's speed by ``frozen_hz`` or the measured flow by
  ``frozen_flow_m3h`` — "stuck detection (no variance vs. speed changes)", domain.md §6.2;
  the flow catches a frozen sensor at steady speed, where the PI, seeing no error, holds the
  speed). Any fault puts the loop into its fallback on the same period.
* :func:`interlocks` stops the pumps on low suction pressure / suction switch / low tank level
  once the condition has lasted ``raise_delay_s`` (one low sample is no water shortage:
  Grundfos stops on water shortage lasting > 5 s [S14]; Aquavar's pump-protect input has a
  delay [S5][S27]), and holds them until it has been gone for ``recover_delay_s`` (Grundfos
  water shortage > 5 s → stop, automatic reset [S14]; CMBE restarts after a delay [S26]; "no
  remote restart until level recovers", domain.md §2), and at once on high outlet pressure
  (Wilo "max pressure" bit [S4]; GB 50015-2019 §3.4: fixture working pressure ≤ 0.60 MPa
  [S24]).

The gateway's interlocks do not replace the hard-wired dry-run and overpressure trips of the
cabinet (domain.md §2 "Split"): they stop the loop's own commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

NE43_LOW_MA = 3.6
"""NAMUR NE 43 failure threshold, low: loop current below 3.6 mA = sensor/loop fault [S31]."""
NE43_HIGH_MA = 21.0
"""NAMUR NE 43 failure threshold, high: loop current above 21 mA = sensor fault [S31]."""


@dataclass(frozen=True, slots=True)
class SensorParams:
    """Outlet-pressure validation. Pressures MPa, times s, frequency Hz."""

    stale_s: float = 1.0
    pv_min: float = 0.0
    pv_max: float = 1.2
    frozen_s: float = 3.0
    frozen_hz: float = 2.0
    frozen_flow_m3h: float = 1.0


@dataclass(frozen=True, slots=True)
class SensorState:
    """Memory of the frozen-value check: the value, since when it has not changed, and the
    range of lead frequencies (Hz) and flows (m³/h) seen since then."""

    value: float | None = None
    since_s: float = 0.0
    hz_lo: float = 0.0
    hz_hi: float = 0.0
    flow_lo: float | None = None
    flow_hi: float | None = None


@dataclass(frozen=True, slots=True)
class PvReading:
    """The outlet pressure as the loop sees it this period.

    Attributes:
        now_s: control time, s (monotonic).
        value: MPa, or ``None`` when the driver gave none.
        quality: ``good``, ``comms`` (comm-fail), ``bad`` or ``stale`` (the cache's quality), or
            ``missing`` when never polled.
        age_s: time since the poll that produced it, s.
        ma: loop current of a 4–20 mA input for the same sensor, mA, when one is configured.
        lead_hz: actual output frequency of the lead drive, Hz (``None`` unknown).
        flow_m3h: measured outlet flow, m³/h (``None`` unknown).
    """

    now_s: float
    value: float | None
    quality: str = "good"
    age_s: float = 0.0
    ma: float | None = None
    lead_hz: float | None = None
    flow_m3h: float | None = None


def check_pv(p: SensorParams, s: SensorState, r: PvReading) -> tuple[SensorState, str | None]:
    """Classify one outlet-pressure reading. Returns the new state and the fault or ``None``."""
    if r.quality == "missing":
        return s, "comms"
    if r.quality in ("comms", "stale", "bad"):
        return SensorState(), r.quality
    if r.age_s > p.stale_s:
        return s, "stale"
    if r.ma is not None:
        if r.ma < NE43_LOW_MA:
            return SensorState(), "open"
        if r.ma > NE43_HIGH_MA:
            return SensorState(), "short"
    if r.value is None:
        return SensorState(), "bad"
    if not p.pv_min <= r.value <= p.pv_max:
        return SensorState(), "range"
    hz = r.lead_hz if r.lead_hz is not None else 0.0
    q = r.flow_m3h
    if s.value is None or r.value != s.value:
        return SensorState(r.value, r.now_s, hz, hz, q, q), None
    s = replace(s, hz_lo=min(s.hz_lo, hz), hz_hi=max(s.hz_hi, hz))
    if q is not None:
        lo = q if s.flow_lo is None else min(s.flow_lo, q)
        hi = q if s.flow_hi is None else max(s.flow_hi, q)
        s = replace(s, flow_lo=lo, flow_hi=hi)
    flow_moved = (
        s.flow_lo is not None
        and s.flow_hi is not None
        and s.flow_hi - s.flow_lo >= p.frozen_flow_m3h
    )
    moved = s.hz_hi - s.hz_lo >= p.frozen_hz or flow_moved
    if r.now_s - s.since_s >= p.frozen_s and moved:
        return s, "frozen"
    return s, None


@dataclass(frozen=True, slots=True)
class InterlockParams:
    """Interlock thresholds. Pressures MPa, level m, times s.

    Attributes:
        suction_min_mpa: stop below this suction pressure (``None`` = no check).
        suction_recover_mpa: considered recovered at or above this.
        tank_min_m: stop below this break-tank level (``None`` = no check).
        tank_recover_m: considered recovered at or above this.
        raise_delay_s: a low-supply condition (suction, switch, tank) must last this long
            before the pumps are stopped, s.
        recover_delay_s: the low-supply condition must be gone this long before a restart.
        outlet_max_mpa: stop and alarm above this outlet pressure (``None`` = no check).
        outlet_recover_mpa: considered normal again at or below this.
        outlet_recover_s: high outlet pressure must be gone this long.
    """

    suction_min_mpa: float | None = 0.05
    suction_recover_mpa: float = 0.08
    tank_min_m: float | None = None
    tank_recover_m: float = 0.5
    raise_delay_s: float = 2.0
    recover_delay_s: float = 10.0
    outlet_max_mpa: float | None = 0.60
    outlet_recover_mpa: float = 0.55
    outlet_recover_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SupplyReading:
    """Supply-side inputs; any may be ``None`` (not configured or not good)."""

    now_s: float
    suction_mpa: float | None = None
    suction_switch_low: bool | None = None
    tank_m: float | None = None
    outlet_mpa: float | None = None


@dataclass(frozen=True, slots=True)
class InterlockState:
    """Active interlocks (name → time they were last still violated, s) and conditions not
    yet raised (name → since when violated, s)."""

    active: dict[str, float] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)


def interlocks(
    p: InterlockParams, s: InterlockState, r: SupplyReading
) -> tuple[InterlockState, list[tuple[str, bool]]]:
    """Update the interlocks. Returns the new state and ``(name, raised)`` transitions; names
    are ``low_suction``, ``low_tank`` and ``high_outlet``."""
    violated: dict[str, bool | None] = {}
    recovered: dict[str, bool] = {}
    if p.suction_min_mpa is not None or r.suction_switch_low is not None:
        low = bool(r.suction_switch_low) or (
            p.suction_min_mpa is not None
            and r.suction_mpa is not None
            and r.suction_mpa < p.suction_min_mpa
        )
        violated["low_suction"] = low
        recovered["low_suction"] = not r.suction_switch_low and (
            r.suction_mpa is None or r.suction_mpa >= p.suction_recover_mpa
        )
    if p.tank_min_m is not None and r.tank_m is not None:
        violated["low_tank"] = r.tank_m < p.tank_min_m
        recovered["low_tank"] = r.tank_m >= p.tank_recover_m
    if p.outlet_max_mpa is not None and r.outlet_mpa is not None:
        violated["high_outlet"] = r.outlet_mpa > p.outlet_max_mpa
        recovered["high_outlet"] = r.outlet_mpa <= p.outlet_recover_mpa
    active, pending = dict(s.active), dict(s.pending)
    changes: list[tuple[str, bool]] = []
    for name, bad in violated.items():
        delay = p.outlet_recover_s if name == "high_outlet" else p.recover_delay_s
        raise_after = 0.0 if name == "high_outlet" else p.raise_delay_s
        if name not in active:
            if not bad:
                pending.pop(name, None)
                continue
            since = pending.setdefault(name, r.now_s)
            if r.now_s - since < raise_after:
                continue
            del pending[name]
            changes.append((name, True))
            active[name] = r.now_s
        elif bad or not recovered[name]:
            active[name] = r.now_s
        elif r.now_s - active[name] >= delay:
            del active[name]
            changes.append((name, False))
    return InterlockState(active, pending), changes
