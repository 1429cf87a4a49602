"""The control-quality benchmark's arithmetic (``tests/benchmarks/control_figures.py``) on
synthetic series with known answers, and its reading of config/example.yaml's control section.
Cheap and untimed: no process, no sleep."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from tests.benchmarks import control_figures as cf
from tests.benchmarks.control_plant import example_control, site_config

DT = 0.01


def _grid(t_end: float, dt: float = DT) -> list[float]:
    return [i * dt for i in range(round(t_end / dt))]


def _first_order(t_end: float, tau: float = 2.0) -> tuple[list[float], list[float]]:
    """0.40 → 0.45 MPa with time constant ``tau``: enters ±0.005 at tau·ln 10."""
    ts = _grid(t_end)
    return ts, [0.45 - 0.05 * math.exp(-t / tau) for t in ts]


def _second_order(zeta: float, wn: float, t_end: float) -> tuple[list[float], list[float]]:
    """Unit-step response of a standard second-order system, scaled 0.40 → 0.45 MPa."""
    wd = wn * math.sqrt(1 - zeta * zeta)
    k = zeta / math.sqrt(1 - zeta * zeta)
    ts = _grid(t_end, 0.001)
    return ts, [
        0.45 - 0.05 * math.exp(-zeta * wn * t) * (math.cos(wd * t) + k * math.sin(wd * t))
        for t in ts
    ]


def test_resample_holds_each_value_until_the_next_change() -> None:
    ts, vs = cf.resample([(1.0, 5.0), (1.25, 6.0), (2.0, 7.0)], 0.5, 2.5, 0.25)
    assert ts == [1.0, 1.25, 1.5, 1.75, 2.0, 2.25]  # nothing before the first change
    assert vs == [5.0, 6.0, 6.0, 6.0, 7.0, 7.0]
    with pytest.raises(ValueError, match="time order"):
        cf.resample([(2.0, 1.0), (1.0, 2.0)], 0, 3)


def test_moving_average_is_trailing() -> None:
    assert cf.moving_average([0.0, 2.0, 4.0, 6.0], 2) == [0.0, 1.0, 3.0, 5.0]


def test_settling_time_of_a_first_order_step() -> None:
    ts, vs = _first_order(30.0)
    expected = 2.0 * math.log(10.0)  # 0.05·e^(−t/2) = 0.005
    assert cf.settling_time(ts, vs, 0.45, 0.005, 0.0) == pytest.approx(expected, abs=DT)
    assert cf.first_reach(ts, vs, 0.45, 0.005, 0.0) == pytest.approx(expected, abs=DT)
    # from a later t0 on it is inside at once
    assert cf.settling_time(ts, vs, 0.45, 0.005, 10.0) == 0.0
    assert cf.settling_time(ts, vs, 0.45, 0.001, 0.0) == pytest.approx(2 * math.log(50), abs=DT)
    assert cf.settling_time(ts, vs, 0.50, 0.005, 0.0) is None  # never near 0.50
    assert cf.first_reach(ts, vs, 0.50, 0.005, 0.0) is None


def test_a_later_disturbance_is_not_the_step_with_a_hold_time() -> None:
    ts, vs = _first_order(40.0)
    vs = [v - 0.02 if 20.0 <= t < 21.0 else v for t, v in zip(ts, vs, strict=True)]
    # for good: only after the excursion at 20–21 s
    assert cf.settling_time(ts, vs, 0.45, 0.005, 0.0) == pytest.approx(21.0, abs=DT)
    # held 10 s: the step itself settled at 4.6 s
    held = cf.settling_time(ts, vs, 0.45, 0.005, 0.0, hold_s=10.0)
    assert held == pytest.approx(2.0 * math.log(10.0), abs=DT)
    # a hold longer than any stay inside: not proven settled
    assert cf.settling_time(ts, vs, 0.45, 0.005, 0.0, hold_s=25.0) is None


def test_overshoot_of_a_second_order_step() -> None:
    zeta = 0.5
    _, vs = _second_order(zeta, 2.0, 20.0)
    expected = 0.05 * math.exp(-math.pi * zeta / math.sqrt(1 - zeta**2))  # 8.15 kPa
    assert cf.overshoot(vs, 0.40, 0.45) == pytest.approx(expected, rel=1e-3)
    # a step down: the overshoot is below the target
    assert cf.overshoot([0.90 - v for v in vs], 0.50, 0.45) == pytest.approx(expected, rel=1e-3)
    assert cf.overshoot(_first_order(30.0)[1], 0.40, 0.45) == 0.0
    with pytest.raises(ValueError):
        cf.overshoot(vs, 0.45, 0.45)


def test_fraction_in_band_of_a_sine() -> None:
    ts = _grid(100.0, 0.001)
    errors = [0.02 * math.sin(2 * math.pi * t / 10.0) for t in ts]
    # |sin| <= 1/2 for a third of the period
    assert cf.fraction_in_band(errors, 0.01) == pytest.approx(1 / 3, abs=1e-3)
    with pytest.raises(ValueError):
        cf.fraction_in_band([], 0.01)


def test_starts_per_hour_counts_the_busiest_window() -> None:
    # starts at 100, 200, 300 s, then 3 more at 4000 s (counter +3), then a counter reset
    rec = [(0.0, 5), (100.0, 6), (200.0, 7), (300.0, 8), (4000.0, 11), (4100.0, 0), (7200.0, 0)]
    best, rate = cf.starts_per_hour(rec)
    assert best == 3  # 100–300 s, or the three at 4000 s: never 6 within one hour
    assert rate == 3.0
    # a 900-s record: its starts scaled to one hour
    assert cf.starts_per_hour([(0.0, 0), (450.0, 2), (900.0, 3)]) == (3, 12.0)


def _oscillation(amplitude: float, period_s: float, noise: float = 0.0, seconds: float = 300):
    rng = random.Random(7)
    ts = _grid(seconds, 0.05)
    errors = [amplitude * math.sin(2 * math.pi * t / period_s) + rng.gauss(0, noise) for t in ts]
    return cf.oscillation(ts, errors, a=0.005, ti_s=2.0)


def test_hagglund_detects_a_sustained_oscillation() -> None:
    osc = _oscillation(0.010, 2.5)  # ±10 kPa at 2.5 s: what issue 13 saw with 3 pumps
    assert osc.iae_lim == pytest.approx(0.005 * 2.0 / math.pi)
    assert osc.t_sup_s == 100.0
    assert osc.detected
    # every half period is a load disturbance: IAE = A·T/π = 0.0080 MPa·s each
    assert osc.disturbances[5][1] == pytest.approx(0.010 * 2.5 / math.pi, rel=0.05)
    assert osc.most_in_window == pytest.approx(80, abs=2)  # 2 per period in 100 s


def test_hagglund_ignores_noise_small_and_slow_swings_and_a_damped_step() -> None:
    assert not _oscillation(0.0, 1.0, noise=0.002).detected  # many zero crossings, tiny IAE
    small = _oscillation(0.002, 2.5)  # below the amplitude a worth detecting
    assert small.disturbances == [] and not small.detected
    slow = _oscillation(0.010, 60.0)  # a load that comes and goes: 2 per minute
    assert slow.disturbances and not slow.detected
    ts, vs = _second_order(0.5, 2.0, 100.0)
    assert not cf.oscillation(ts, [v - 0.45 for v in vs], a=0.005, ti_s=2.0).detected


def test_the_example_control_section_is_read(tmp_path: Path) -> None:
    section = example_control()  # enabled, or the commented block uncommented
    assert section["points"]["pv"] and len(section["pumps"]) == 3
    path, notes = site_config(tmp_path, "direct")
    assert path.exists()
    assert all("poll_interval_s" in n for n in notes)
    commented = tmp_path / "c.yaml"
    commented.write_text("site: {id: x}\n# control:\n#   mode: direct\n#   period_s: 0.2\nx: 1\n")
    assert example_control(commented) == {"mode": "direct", "period_s": 0.2}
    none = tmp_path / "n.yaml"
    none.write_text("site: {id: x}\n")
    with pytest.raises(ValueError, match=r"n\.yaml: no control section"):
        example_control(none)


def test_frequent_random_loads_are_not_an_oscillation() -> None:
    """Load changes at random intervals (the simulator's water draws): Hägglund's count alone
    exceeds its limit, the regularity test tells them from an oscillation."""
    rng = random.Random(3)
    ts, errors, t = [], [], 0.0
    while t < 300.0:
        level = rng.choice((-1, 1)) * rng.uniform(0.008, 0.02)
        end = t + rng.expovariate(1 / 4.0) + 0.5
        while t < end:
            ts.append(t)
            errors.append(level)
            t += 0.05
    osc = cf.oscillation(ts, errors, a=0.01, ti_s=2.0)
    assert osc.most_in_window > osc.n_lim
    assert osc.regularity < 1.0 and not osc.detected


def test_regularity() -> None:
    assert cf.regularity([0.0, 1.25, 2.5, 3.75]) == math.inf
    assert cf.regularity([0.0, 1.0, 3.0]) == pytest.approx(1.5 / 1.5)  # gaps 1, 2: sd 0.5
    assert cf.regularity([0.0, 1.0]) == 0.0
