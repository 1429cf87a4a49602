"""Fail-safes of the pressure loop: outlet-sensor validation and the pump interlocks. Pure.

* :func:`check_pv` classifies the outlet pressure each period: ``comms`` (the poll failed),
  ``stale`` (not refreshed within ``stale_s``), ``bad`` (the driver marked it bad), ``open`` /
  ``short`` (4–20 mA loop current below 3.6 mA or above 21 mA — NAMUR NE 43: < 3.6 mA or
  > 21 mA is a failure signal, 3.8–20.5 mA valid including saturation [S31]; domain.md §2),
  ``range`` (outside the plausible range), ``frozen`` (bit-identical while the lead drive's
  speed moved by ``frozen_hz`` or more: "stuck detection (no variance vs. speed changes)",
  domain.md §6.2). Any fault puts the loop into its fallback on the same period.
* :func:`interlocks` holds the pumps stopped on low suction pressure / suction switch / low tank
  level until the condition has been gone for ``recover_delay_s`` (Grundfos water shortage
  > 5 s → stop, automatic reset [S14]; CMBE restarts after a delay [S26]; domain.md §2 "no
  remote restart until level recovers"), and on high outlet pressure (Wilo "max pressure" bit
  [S4]; GB 50015-2019 §3.4: fixture working pressure ≤ 0.60 MPa [S24]).

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


@dataclass(frozen=True, slots=True)
class SensorState:
    """Memory of the frozen-value check: the value, since when it has not changed, and the
    range of lead frequencies seen since then."""

    value: float | None = None
    since_s: float = 0.0
    hz_lo: float = 0.0
    hz_hi: float = 0.0


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
    """

    now_s: float
    value: float | None
    quality: str = "good"
    age_s: float = 0.0
    ma: float | None = None
    lead_hz: float | None = None


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
    if s.value is None or r.value != s.value:
        return SensorState(r.value, r.now_s, hz, hz), None
    s = replace(s, hz_lo=min(s.hz_lo, hz), hz_hi=max(s.hz_hi, hz))
    if r.now_s - s.since_s >= p.frozen_s and s.hz_hi - s.hz_lo >= p.frozen_hz:
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
        recover_delay_s: the low-supply condition must be gone this long before a restart.
        outlet_max_mpa: stop and alarm above this outlet pressure (``None`` = no check).
        outlet_recover_mpa: considered normal again at or below this.
        outlet_recover_s: high outlet pressure must be gone this long.
    """

    suction_min_mpa: float | None = 0.05
    suction_recover_mpa: float = 0.08
    tank_min_m: float | None = None
    tank_recover_m: float = 0.5
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
    """Active interlocks (name → time they were last still violated, s)."""

    active: dict[str, float] = field(default_factory=dict)


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
    active = dict(s.active)
    changes: list[tuple[str, bool]] = []
    for name, bad in violated.items():
        delay = p.outlet_recover_s if name == "high_outlet" else p.recover_delay_s
        if bad or (name in active and not recovered[name]):
            if name not in active:
                changes.append((name, True))
            active[name] = r.now_s
        elif name in active and r.now_s - active[name] >= delay:
            del active[name]
            changes.append((name, False))
    return InterlockState(active), changes
