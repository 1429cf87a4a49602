"""The arithmetic of the control-quality benchmark (``tests/benchmarks/control_quality.py``).

Pure functions on sampled series, tested on synthetic series by
``tests/benchmarks/test_control_figures.py``. Times are in s, pressures in MPa.

* :func:`resample`: a change-only record (the simulator's truth file, MQTT samples) held as a
  step function and sampled every ``dt`` s;
* :func:`moving_average`: what a damped gauge shows (the benchmark uses 0.5 s);
* :func:`settling_time`, :func:`first_reach`, :func:`overshoot`: step response figures, as in
  Åström & Murray, *Feedback Systems* (2008) §5.3 (settling time: the time until the response
  stays within a band around its final value; overshoot: how far it goes beyond it);
* :func:`fraction_in_band`: share of samples with ``|error| <= band``;
* :func:`starts_per_hour`: pump starts from each pump's start counter;
* :func:`oscillation`: Hägglund's oscillation detector with a regularity test
  (:func:`regularity`; see their docstrings).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


def resample(
    changes: Sequence[tuple[float, float]], t0: float, t1: float, dt: float = 0.1
) -> tuple[list[float], list[float]]:
    """Sample a change-only record every ``dt`` s from ``t0`` up to (not including) ``t1``.

    ``changes``: (time s, value) pairs in time order, each value holding until the next one
    (step hold). Returns (times, values); a time before the first change takes no sample.
    Raises ValueError when ``dt`` <= 0 or the pairs are not in time order.
    """
    if dt <= 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if any(b[0] < a[0] for a, b in itertools.pairwise(changes)):
        raise ValueError("changes are not in time order")
    ts: list[float] = []
    vs: list[float] = []
    i, value = 0, None
    n = max(0, math.ceil((t1 - t0) / dt - 1e-9))
    for k in range(n):
        t = t0 + k * dt
        while i < len(changes) and changes[i][0] <= t:
            value = changes[i][1]
            i += 1
        if value is not None:
            ts.append(t)
            vs.append(value)
    return ts, vs


def moving_average(values: Sequence[float], n: int) -> list[float]:
    """Trailing mean of the last ``n`` values (fewer at the start). Raises ValueError if n < 1."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [statistics.fmean(values[max(0, i - n + 1) : i + 1]) for i in range(len(values))]


def settling_time(
    ts: Sequence[float],
    vs: Sequence[float],
    target: float,
    band: float,
    t0: float,
    hold_s: float | None = None,
) -> float | None:
    """Seconds from ``t0`` until ``vs`` enters ``target ± band`` and stays inside: for good (up
    to the end of the series) when ``hold_s`` is None, else for at least ``hold_s`` s (later
    excursions, e.g. a new disturbance, do not count). ``None`` when it never does (with
    ``hold_s``: no stay inside lasts ``hold_s`` within the series). Samples before ``t0`` are
    ignored; 0.0 when it is inside from ``t0`` on."""
    entered: float | None = t0
    for t, v in zip(ts, vs, strict=True):
        if t < t0:
            continue
        if abs(v - target) > band:
            entered = None
        elif entered is None:
            entered = t
        if hold_s is not None and entered is not None and t - entered >= hold_s:
            return entered - t0
    if hold_s is not None:
        return None
    return None if entered is None else entered - t0


def first_reach(
    ts: Sequence[float], vs: Sequence[float], target: float, band: float, t0: float
) -> float | None:
    """Seconds from ``t0`` until ``vs`` is first within ``target ± band``; ``None`` if never."""
    for t, v in zip(ts, vs, strict=True):
        if t >= t0 and abs(v - target) <= band:
            return t - t0
    return None


def overshoot(vs: Sequence[float], start: float, target: float) -> float:
    """How far ``vs`` went beyond ``target`` in the direction of the step from ``start``
    (MPa, >= 0; 0 when it never passed the target). Raises ValueError when start == target."""
    if start == target:
        raise ValueError("a step needs start != target")
    direction = 1.0 if target > start else -1.0
    return max([0.0, *((v - target) * direction for v in vs)])


def fraction_in_band(errors: Sequence[float], band: float) -> float:
    """Share (0..1) of ``errors`` with ``|e| <= band``. Raises ValueError on an empty series."""
    if not errors:
        raise ValueError("no samples")
    return sum(1 for e in errors if abs(e) <= band) / len(errors)


def starts_per_hour(
    counters: Sequence[tuple[float, int]], window_s: float = 3600.0
) -> tuple[int, float]:
    """Pump starts from one pump's start counter record ((time s, counter) in time order).

    Returns (most starts within any ``window_s`` window, that figure per hour: × 3600 /
    ``window_s``, or × 3600 / the record's length when the record is shorter than the window).
    A counter that goes down (a drive replaced, a reset) counts no starts for that step.
    """
    starts = [t for (t, c), (_, prev) in zip(counters[1:], counters, strict=False)
              for _ in range(max(0, c - prev))]  # fmt: skip
    best, window = 0, deque[float]()
    for t in starts:
        window.append(t)
        while window[0] <= t - window_s:
            window.popleft()
        best = max(best, len(window))
    span = counters[-1][0] - counters[0][0] if counters else 0.0
    per = window_s if span >= window_s else span
    return best, (best * 3600.0 / per if per > 0 else 0.0)


@dataclass(frozen=True)
class Oscillation:
    """Result of :func:`oscillation`: the load disturbances (time s of the zero crossing that
    ended each, IAE MPa·s), the most of them within any supervision window, the highest
    :func:`regularity` of a window with more than ``n_lim`` (else that of the busiest window),
    the detector's limits, and whether it detected an oscillation."""

    disturbances: list[tuple[float, float]]
    most_in_window: int
    regularity: float
    iae_lim: float
    t_sup_s: float
    n_lim: int

    @property
    def detected(self) -> bool:
        """More than ``n_lim`` load disturbances within one supervision window, at regular
        intervals (regularity > 1)."""
        return self.most_in_window > self.n_lim and self.regularity > 1.0


def regularity(times: Sequence[float]) -> float:
    """Regularity r = mean / (3 × standard deviation) of the intervals between successive
    ``times`` (s): r > 1 is a regular oscillation (N.F. Thornhill, B. Huang, H. Zhang,
    "Detection of multiple oscillations in control loops", J. Process Control 13 (2003) 91–100,
    ⚠ recalled; they take the intervals between zero crossings of the error's autocorrelation,
    here those between the zero crossings that ended load disturbances). ``inf`` when every
    interval is the same, 0.0 with fewer than two intervals."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if len(gaps) < 2:
        return 0.0
    sd = statistics.pstdev(gaps)
    return math.inf if sd == 0 else statistics.fmean(gaps) / (3.0 * sd)


def oscillation(
    ts: Sequence[float], errors: Sequence[float], a: float, ti_s: float, n_lim: int = 10
) -> Oscillation:
    """Hägglund's oscillation detector, with a regularity test, on the control error
    ``errors`` (MPa) sampled at ``ts`` (s): a *sustained zero-crossing pattern* of the error.

    Source: T. Hägglund, "A control-loop performance monitor", Control Engineering Practice
    3(11), 1543–1551 (1995) (⚠ recalled, not checked against the paper's text): between two
    zero crossings of the error the integrated absolute error IAE = ∫|e|dt is computed; a
    half-period whose IAE exceeds IAE_lim = 2a/ω is a *load disturbance*, where ``a`` is the
    smallest oscillation amplitude worth detecting and ω the ultimate frequency, replaced by the
    integral frequency ω_i = 2π/T_i when it is unknown (so IAE_lim = a·T_i/π). Hägglund detects
    an oscillation when more than ``n_lim`` (10) load disturbances occur within a supervision
    time T_sup = 5·n_lim·T_u (T_u ≈ T_i here); he counts with exponential forgetting, this
    counts in a sliding window of T_sup. Noise and quantisation cross zero often but with a
    tiny IAE: they do not count. Frequent random load changes (the simulator's water draws, a
    compressed day's peak) also exceed n_lim, so the busiest window must in addition be
    regular (:func:`regularity` > 1), as an oscillation is and random draws are not.

    ``a``: MPa (the benchmark uses 0.01, its band); ``ti_s``: the PI integral time (s).
    Raises ValueError when ``a`` or ``ti_s`` is not > 0.
    """
    if a <= 0 or ti_s <= 0:
        raise ValueError(f"a and ti_s must be > 0, got {a}, {ti_s}")
    iae_lim = a * ti_s / math.pi
    t_sup = 5.0 * n_lim * ti_s
    found: list[tuple[float, float]] = []
    iae, sign = 0.0, 0
    for i in range(1, len(ts)):
        e = errors[i]
        iae += abs(e) * (ts[i] - ts[i - 1])
        s = (e > 0) - (e < 0)
        if s == 0:
            continue
        if sign != 0 and s != sign:  # a zero crossing ends a half-period
            if iae > iae_lim:
                found.append((ts[i], iae))
            iae = 0.0
        sign = s
    best, best_r, over_r, window = 0, 0.0, 0.0, deque[float]()
    for t, _ in found:
        window.append(t)
        while window[0] <= t - t_sup:
            window.popleft()
        n, r = len(window), regularity(window)
        if n > best:
            best, best_r = n, r
        if n > n_lim:
            over_r = max(over_r, r)
    return Oscillation(found, best, over_r if best > n_lim else best_r, iae_lim, t_sup, n_lim)


def verdict(name: str, value: object, goal: str, ok: bool | None) -> str:
    """One printed line: figure, value, goal and PASS/FAIL (``ok`` None: no goal, REPORT)."""
    word = "REPORT" if ok is None else ("PASS" if ok else "FAIL")
    return f"{word:6} {name:44} {value!s:>14}   goal {goal}"
