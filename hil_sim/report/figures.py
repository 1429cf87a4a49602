"""The report's figures: ground truth against what the agent uplinked, over one time window.

All times are wall-clock UTC ms (the clock of the truth's ``t`` and the agent's sample ``t``);
durations in s; pressures in MPa. Definitions:

* **coverage** of a point: good samples with ``t`` in the window ÷ the samples expected there
  (whole poll intervals in the window; the interval is the median spacing of its samples
  unless given);
* **latency change→uplink**: for each change of a non-float truth point (a bit, a state, a code,
  timed to one simulator step) whose new value then holds 3 s, arrival time of the first
  uplinked sample that carries the new value minus the time of the change; **sample age**:
  arrival − sample ``t`` for every live sample;
* **value error**: |uplinked − truth| for good samples of float points, the truth interpolated
  linearly between its states (states 1 s apart by default: the figure includes that
  interpolation);
* **uplink gaps**: spells over 3 s in which no telemetry arrived (a broker or link outage;
  store-and-forward then delivers the samples later as backfill, so coverage may stay 1);
* **gaps**: spacing of a point's good samples above 3 × its interval; telemetry seqs missing from
  the received range, and how many of them ``data_loss`` events explain;
* **control quality**: fraction of truth states with |``p_out`` − active setpoint| ≤ band; pump
  starts (rising edges of ``pumpN.running``), the most of one pump in any 60 min; top-floor
  (index-point) pressure ``plant.p_index`` against the 0.10 MPa service level (residential code
  ch. 7.1.2: ≥ 0.1 MPa at a household's draw-off; shared/reference/domain.md [S25]).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from hil_sim.report.uplink import Sample, Uplink
from hil_sim.truth import Truth

SERVICE_MPA = 0.10
"""Minimum pressure at a household's draw-off, MPa (domain.md [S25], residential code 7.1.2)."""
DEFAULT_BAND_MPA = 0.02
"""Band around the setpoint for time-in-band when the scenario gives none, MPa."""
SETTLED_MS = 3000
"""A change counts for latency only if the value then holds this long (ms): an integer that
moves every step (a speed in rpm) is sampled, not tracked change by change."""
ARRIVAL_GAP_S = 3.0
"""No telemetry arriving for longer than this (s) is an uplink gap (the agent publishes at
least every poll interval, 1 s in config/example.yaml)."""
SETPOINT_KEYS = ("cabinet.setpoint_active", "setpoint")
PUMPS = ("pump1", "pump2", "pump3")


@dataclass
class PointFigures:
    """Figures of one uplinked point."""

    point: str
    unit: str | None
    good: int
    not_good: int
    expected: float
    coverage: float
    interval_s: float
    gaps: list[tuple[int, int]] = field(default_factory=list)
    error_median: float | None = None
    error_max: float | None = None
    latency_s: list[float] = field(default_factory=list)


@dataclass
class Figures:
    """Everything the report shows in numbers (see the module docstring)."""

    start_ms: int
    stop_ms: int
    points: dict[str, PointFigures]
    never_uplinked: list[str]
    latency_s: list[float]
    missed_changes: int
    age_s: list[float]
    arrival_gaps: list[tuple[int, int]]
    """Spells (wall ms) longer than :data:`ARRIVAL_GAP_S` in which no telemetry arrived."""
    seq_missing: int
    seq_explained: int
    data_loss_events: int
    data_loss_samples: int
    alarms: list[dict[str, Any]]
    time_in_band: float | None
    band_mpa: float
    starts: dict[str, int]
    max_starts_in_hour: int
    index_min: float | None
    index_below_service_s: float
    undecoded: int = 0
    """Messages captured that were not JSON (e.g. CBOR telemetry): left out of every figure."""


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) of ``values`` by nearest rank; ``None`` when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def interpolate(
    series: list[tuple[int, Any]], t: float, ts: list[int] | None = None
) -> float | None:
    """Linear interpolation of a numeric (t_ms, value) series at ``t``; None outside it.
    ``ts``: the series' times, when the caller has them (saves a copy per call)."""
    ts = ts if ts is not None else [p[0] for p in series]
    i = bisect.bisect_right(ts, t)
    if i == 0 or i > len(series) or (i == len(series) and t > ts[-1]):
        return None
    if i == len(series):
        return float(series[-1][1])
    (t0, v0), (t1, v1) = series[i - 1], series[i]
    if t1 == t0:
        return float(v1)
    return float(v0) + (float(v1) - float(v0)) * (t - t0) / (t1 - t0)


def compute(truth: Truth, up: Uplink, start_ms: int, stop_ms: int, band_mpa: float) -> Figures:
    """All figures over [start_ms, stop_ms]. Raises ValueError on an empty window."""
    if stop_ms <= start_ms:
        raise ValueError(f"report window is empty: {start_ms} .. {stop_ms} ms")
    window_s = (stop_ms - start_ms) / 1000.0
    truth_keys = truth.keys()
    points: dict[str, PointFigures] = {}
    all_latency: list[float] = []
    missed = 0
    for point, samples in sorted(up.samples.items()):
        pf = point_figures(point, samples, up.units.get(point), start_ms, stop_ms, window_s)
        if point in truth_keys:
            series = truth.series(point)
            if series and isinstance(series[0][1], float):
                _errors(pf, samples, series, start_ms, stop_ms)
            elif series:
                n = _latencies(pf, samples, series, start_ms, stop_ms)
                missed += n
                all_latency += pf.latency_s
        points[point] = pf
    ages = [
        (s.r - s.t) / 1000.0
        for ss in up.samples.values()
        for s in ss
        if start_ms <= s.t <= stop_ms and not s.hist
    ]
    arrivals = sorted(s.r for ss in up.samples.values() for s in ss if start_ms <= s.r <= stop_ms)
    edges = list(itertools.pairwise([start_ms, *arrivals, stop_ms]))
    arrival_gaps = [(x, y) for x, y in edges if (y - x) / 1000.0 > ARRIVAL_GAP_S]
    seqs = sorted(s.seq for ss in up.samples.values() for s in ss)
    missing = (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0
    got = set(seqs)
    explained = 0
    losses = up.data_loss()
    for e in losses:
        lo, hi = e.get("seq_range", [0, -1])
        explained += sum(1 for q in range(int(lo), int(hi) + 1) if q not in got)
    in_band, starts, worst_hour, index_min, below_s = control_quality(
        truth, start_ms, stop_ms, band_mpa
    )
    return Figures(
        start_ms=start_ms,
        stop_ms=stop_ms,
        points=points,
        never_uplinked=sorted(
            k for k in truth_keys - set(up.samples) if not k.startswith("plant.")
        ),
        latency_s=all_latency,
        missed_changes=missed,
        age_s=ages,
        arrival_gaps=arrival_gaps,
        seq_missing=missing,
        seq_explained=min(explained, missing),
        data_loss_events=len(losses),
        data_loss_samples=sum(int(e.get("count", 0)) for e in losses),
        alarms=up.alarms(),
        time_in_band=in_band,
        band_mpa=band_mpa,
        starts=starts,
        max_starts_in_hour=worst_hour,
        index_min=index_min,
        index_below_service_s=below_s,
        undecoded=len(up.undecoded),
    )


def point_figures(
    point: str, samples: list[Sample], unit: str | None, a: int, b: int, window_s: float
) -> PointFigures:
    good = sorted(s.t for s in samples if s.q == "g" and a <= s.t <= b)
    spacing = [(y - x) / 1000.0 for x, y in itertools.pairwise(good) if y > x]
    interval = statistics.median(spacing) if spacing else 1.0
    expected = max(math.floor(window_s / interval + 1e-9), 1)  # whole polls in the window
    gaps = [
        (x, y)
        for x, y in zip([a, *good], [*good, b], strict=True)
        if (y - x) / 1000.0 > 3 * interval
    ]
    return PointFigures(
        point,
        unit,
        len(good),
        sum(1 for s in samples if s.q != "g" and a <= s.t <= b),
        expected,
        min(len(good) / expected, 1.0),
        interval,
        gaps,
    )


def _errors(
    pf: PointFigures, samples: list[Sample], series: list[tuple[int, Any]], a: int, b: int
) -> None:
    errs = []
    ts = [p[0] for p in series]
    for s in samples:
        if s.q == "g" and a <= s.t <= b and isinstance(s.value, int | float):
            ref = interpolate(series, s.t, ts)
            if ref is not None:
                errs.append(abs(float(s.value) - ref))
    if errs:
        pf.error_median, pf.error_max = statistics.median(errs), max(errs)


def _latencies(
    pf: PointFigures,
    samples: list[Sample],
    series: list[tuple[int, Any]],
    a: int,
    b: int,
    horizon_ms: int = 60_000,
) -> int:
    """Latency of each change of the truth series in the window; returns the changes missed
    (the new value not uplinked within ``horizon_ms`` nor before the window's end)."""
    missed = 0
    good = sorted((s for s in samples if s.q == "g"), key=lambda s: s.t)
    ts = [s.t for s in good]
    changes = [(t, v) for (_, v0), (t, v) in itertools.pairwise(series) if v != v0]
    for (t, value), (t_next, _) in itertools.pairwise([*changes, (b + SETTLED_MS, None)]):
        if not a <= t <= b or t_next - t < SETTLED_MS:
            continue  # outside, or a value that did not hold: a poll may never have seen it
        i = bisect.bisect_left(ts, t - 5)  # ≤ 5 ms: the agent may stamp the same instant
        hit = next((s for s in good[i:] if s.value == value and s.t <= t + horizon_ms), None)
        if hit is not None:
            pf.latency_s.append(max(0.0, (hit.r - t) / 1000.0))
        elif t + horizon_ms < b:
            missed += 1
    return missed


def control_quality(
    truth: Truth, a: int, b: int, band: float
) -> tuple[float | None, dict[str, int], int, float | None, float]:
    states = [s for s in truth.states if a <= s["t"] <= b]
    in_band = [
        abs(s["values"]["p_out"] - sp) <= band
        for s in states
        if "p_out" in s["values"] and (sp := setpoint_of(s["values"])) is not None
    ]
    starts: dict[str, int] = {}
    worst = 0
    for pump in PUMPS:
        rises = []
        series = [(t, v) for t, v in truth.series(f"{pump}.running") if a <= t <= b]
        for (_, v0), (t, v1) in itertools.pairwise(series):
            if v1 and not v0:
                rises.append(t)
        starts[pump] = len(rises)
        for i, t in enumerate(rises):
            worst = max(worst, bisect.bisect_right(rises, t + 3_600_000) - i)
    index = [
        (s["t"], s["values"]["plant.p_index"]) for s in states if "plant.p_index" in s["values"]
    ]
    below = sum(
        (t1 - t0) / 1000.0 for (t0, v0), (t1, _) in itertools.pairwise(index) if v0 < SERVICE_MPA
    )
    return (
        sum(in_band) / len(in_band) if in_band else None,
        starts,
        worst,
        min((v for _, v in index), default=None),
        below,
    )


def setpoint_of(values: dict[str, Any]) -> float | None:
    """The active setpoint (MPa) of one truth state: the cabinet's active setpoint, else the
    configured one; ``None`` when the state has neither."""
    for k in SETPOINT_KEYS:
        if isinstance(values.get(k), int | float):
            return float(values[k])
    return None
