"""The rule evaluator (pure): a rule's tracked state in, a sample or the time in, its raw and
debounced condition out. No I/O, no clock: callers pass ``mono`` (``time.monotonic()``, s).

* :func:`on_sample` updates the raw condition from one reading of a point the rule watches.
* :func:`on_time` updates the conditions that time alone changes (stale, frozen, comm lost).
* :func:`debounce` applies the on- and off-delays: the raw condition must hold for the delay
  before the debounced one follows (a contact that chatters faster never raises).

Hysteresis (ISA-18.2 §10.3.3 "deadband"): an active high alarm clears only below
``limit − deadband``, an active low alarm only above ``limit + deadband``; a rate alarm clears
below ``limit − deadband``. A value rule holds its condition while samples are not good (the
``bad_quality``, ``stale`` and comm rules speak for those).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.alarms.rules import COMM_KIND, Spec
from agent.core.model import Quality, Value

EPS_S = 1e-6
"""Tolerance of delay comparisons, s (a delay of exactly 0 fires at once)."""


@dataclass(slots=True)
class Track:
    """What the evaluator keeps per rule between samples.

    Attributes:
        raw: the condition as the last sample or tick saw it.
        active: the debounced condition.
        since: ``mono`` when ``raw`` began to differ from ``active`` (``None``: they agree).
        value / limit / detail: what the alarm event reports.
        last_good: ``mono`` of the last good sample (stale, comm lost).
        prev: rate: ``(mono, value)`` of the previous good sample.
        ref / changed_at: frozen: the value at its last change, and when.
        folded: the active condition is folded into its group cause (not annunciated).
        cleared_mono: ``mono`` when the debounced condition last cleared.
        affected: points folded into this cause.
        comm: bad_quality: the bad samples are comm failures (the device did not answer), so
            the device's comm-loss alarm may fold this one; a bad value (NE 43 failure
            current, out of range) never waits for that.
    """

    raw: bool = False
    active: bool = False
    since: float | None = None
    value: Value = None
    limit: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    last_good: float | None = None
    prev: tuple[float, float] | None = None
    ref: float | None = None
    changed_at: float | None = None
    folded: bool = False
    cleared_mono: float | None = None
    affected: set[str] = field(default_factory=set)
    comm: bool = False


def _number(v: Value) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    return float(v)


def on_sample(s: Spec, t: Track, point: str, value: Value, quality: Quality,
              reason: str | None, mono: float) -> None:  # fmt: skip
    """Update ``t.raw`` (and what the event reports) from one reading of ``point``."""
    k = s.kind
    good = quality is Quality.GOOD
    if k == COMM_KIND or k == "stale":
        if good:
            t.last_good, t.raw = mono, False
        return
    if k == "bad_quality":
        t.raw = not good
        t.comm = quality in (Quality.COMM_FAIL, Quality.STALE)
        t.value, t.detail = None, ({"reason": reason, "q": quality.code} if not good else {})
        return
    if point != s.point:  # the frozen rule's moving point: on_time reads it
        return
    if not good or value is None:
        return  # hold
    if k == "state":
        t.raw = (bool(value) == s.state) if isinstance(s.state, bool) else (value == s.state)
        t.value = value
    elif k == "fault":
        assert s.fault_map is not None
        code = int(value)
        faults = s.fault_map.decode(code)
        t.raw, t.value = bool(faults), code
        if faults:
            f = faults[0]
            t.detail = {"cause": f.cause.value, "vendor_code": code, "vendor": f.vendor,
                        "text": f.text, "map": s.fault_map.name}  # fmt: skip
            if len(faults) > 1:
                t.detail["causes"] = [x.cause.value for x in faults]
    elif (v := _number(value)) is None:
        return
    elif k in ("high", "high_high"):
        assert s.limit is not None
        t.raw = v > (s.limit - s.deadband if t.active else s.limit)
        t.value, t.limit = v, s.limit
    elif k in ("low", "low_low"):
        assert s.limit is not None
        t.raw = v < (s.limit + s.deadband if t.active else s.limit)
        t.value, t.limit = v, s.limit
    elif k == "rate":
        assert s.limit is not None
        if t.prev is not None and mono > t.prev[0]:
            rate = abs(v - t.prev[1]) / (mono - t.prev[0])
            t.raw = rate > (s.limit - s.deadband if t.active else s.limit)
            t.value, t.limit = round(rate, 6), s.limit
        t.prev = (mono, v)
    elif k == "frozen":
        if t.ref is None:  # the first sample; restored active: unchanged long enough already
            assert s.after_s is not None
            t.ref, t.changed_at = v, mono - (s.after_s if t.active else 0.0)
        elif abs(v - t.ref) > s.min_change:
            t.ref, t.changed_at, t.raw = v, mono, False
        t.value = v


def on_time(s: Spec, t: Track, mono: float, moved_at: float | None) -> None:
    """Update the conditions time alone changes. ``moved_at``: for a frozen rule with a
    ``moving`` point, ``mono`` of that point's last change (``None``: never seen)."""
    k = s.kind
    if k in (COMM_KIND, "stale"):
        assert s.after_s is not None
        if t.last_good is None:  # start: count from now; restored active: already due
            t.last_good = mono - (s.after_s if t.active else 0.0)
        age = mono - t.last_good
        t.raw = age >= s.after_s - EPS_S
        t.value, t.limit = round(age, 1), s.after_s
    elif k == "frozen" and t.changed_at is not None:
        assert s.after_s is not None
        still = mono - t.changed_at >= s.after_s - EPS_S
        if s.moving is None:
            t.raw = still
        else:
            t.raw = (
                still
                and moved_at is not None
                and moved_at > t.changed_at
                and mono - moved_at <= s.after_s
            )
        t.limit = s.after_s


def debounce(s: Spec, t: Track, mono: float) -> bool:
    """Apply the on-/off-delay to ``t.raw``; True when ``t.active`` changed now."""
    if t.raw == t.active:
        t.since = None
        return False
    if t.since is None:
        t.since = mono
    if not t.raw:
        delay = s.off_delay_s
    elif s.kind == "bad_quality" and not t.comm:
        delay = s.on_delay_s  # a bad value: the device answers, no comm loss to wait for
    else:
        delay = s.delay_on
    if mono - t.since >= delay - EPS_S:
        t.active, t.since = t.raw, None
        if not t.active:
            t.cleared_mono = mono
        return True
    return False
