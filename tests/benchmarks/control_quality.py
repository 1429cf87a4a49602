"""Control quality on the simulator: ``python -m tests.benchmarks.control_quality``.

The agent's control loop with its real drivers and pollers against the simulator's Modbus
servers on loopback (``tests/control/rig.py``), three pumps, in ``--mode supervisory`` or
``direct`` (default both, one after the other). Prints figures against the goals of issue 13
(figures, not timed asserts; not part of pytest):

* ``step``: remote setpoint 0.40 → 0.45 MPa at ``--ramp`` MPa/s (default 0.01, the documented
  ``remote.ramp_mpa_per_s``; 10 = a true step): time from the command until the plant's outlet
  pressure (0.5 s gauge average) stays within ±0.005 MPa (goal ≤ 10 s), overshoot (goal
  ≤ 0.01 MPa);
* ``burst``: +6 m³/h drawn at once: time until back within ±0.01 MPa for good (goal ≤ 10 s),
  lowest pressure;
* ``day``: a day compressed into ``--day-s`` seconds (default 900; ``day_speed`` = 86400 /
  day-s): share of time within ±0.01 MPa of the setpoint (goal ≥ 95 %), pump starts per
  pump, and the longest run of error sign changes every ≤ 3 s (oscillation indicator).

Loopback and a pty only. The poll intervals are the rig's (outlet pressure 0.2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from tests.control.rig import Rig, control_section


def _smooth(values: list[float], n: int = 5) -> list[float]:
    return [statistics.fmean(values[max(0, i - n + 1) : i + 1]) for i in range(len(values))]


def _window(rig: Rig, t0: float, t1: float) -> tuple[list[float], list[float]]:
    tr = rig.trace
    pairs = [(t, p) for t, p in zip(tr.t, tr.p_out, strict=False) if t0 <= t < t1]
    return [t for t, _ in pairs], [p for _, p in pairs]


def _settle(ts: list[float], ps: list[float], target: float, band: float, t0: float) -> float:
    """Seconds from ``t0`` until the smoothed pressure stays within ``band`` of ``target``."""
    sm = _smooth(ps)
    last_out = None
    for t, p in zip(ts, sm, strict=True):
        if abs(p - target) > band:
            last_out = t
    return 0.0 if last_out is None else last_out - t0 + 0.1


async def step_and_burst(tmp: Path, mode: str, ramp: float) -> dict[str, Any]:
    section = control_section(mode, remote={"ramp_mpa_per_s": ramp, "min_interval_s": 0.0})
    async with Rig(tmp, section) as rig:
        await rig.wait_polled()
        rig.start_loop()
        assert rig.loop is not None
        await asyncio.sleep(8.0)
        result = await rig.loop.request_setpoint(0.45, cmd_id="step", by="bench")
        assert result.ok, result
        t0 = rig.now()
        await asyncio.sleep(20.0)
        ts, ps = _window(rig, t0, t0 + 20.0)
        step_settle = _settle(ts, ps, 0.45, 0.005, t0)
        overshoot = max(_smooth(ps)) - 0.45
        rig.set("leak_m3h", rig.sim.plant.demand.leak_m3h + 6.0)
        t1 = rig.now()
        await asyncio.sleep(25.0)
        ts, ps = _window(rig, t1, t1 + 25.0)
        burst_back = _settle(ts, ps, 0.45, 0.01, t1)
        return {
            f"{mode}_step_settle_s": round(step_settle, 1),
            f"{mode}_step_overshoot_mpa": round(overshoot, 4),
            f"{mode}_burst_back_in_band_s": round(burst_back, 1),
            f"{mode}_burst_lowest_mpa": round(min(ps), 3),
        }


async def day(tmp: Path, mode: str, day_s: float) -> dict[str, Any]:
    async with Rig(tmp, control_section(mode), start_time_of_day_s=0.0) as rig:
        await rig.wait_polled()
        rig.start_loop()
        await asyncio.sleep(8.0)
        starts0 = [p.starts for p in rig.sim.plant.pumps]
        rig.set("day_speed", 86400.0 / day_s)
        t0 = rig.now()
        await asyncio.sleep(day_s)
        tr = rig.trace
        idx = [i for i, t in enumerate(tr.t) if t >= t0]
        errs = [tr.p_out[i] - tr.sp[i] for i in idx]
        sm = _smooth(errs)
        inside = sum(1 for e in sm if abs(e) <= 0.01) / max(len(sm), 1)
        # oscillation indicator: longest chain of sign changes of the (smoothed) error, each
        # within 3 s of the previous, counting only excursions beyond ±0.003 MPa
        times = [tr.t[i] for i in idx]
        chain = best = 0
        last_sign, last_t = 0, -1e9
        for t, e in zip(times, sm, strict=True):
            if abs(e) < 0.003:
                continue
            sign = 1 if e > 0 else -1
            if sign != last_sign and last_sign != 0:
                chain = chain + 1 if t - last_t <= 3.0 else 1
                best = max(best, chain)
                last_t = t
            last_sign = sign
        starts = [p.starts - s for p, s in zip(rig.sim.plant.pumps, starts0, strict=True)]
        return {
            f"{mode}_day_s": day_s,
            f"{mode}_day_within_0_01_pct": round(100.0 * inside, 1),
            f"{mode}_day_starts_per_pump": starts,
            f"{mode}_day_longest_sign_change_chain": best,
        }


async def main(modes: list[str], day_s: float, only: list[str], ramp: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            if "step" in only:
                d = Path(tmp) / f"step-{mode}"
                d.mkdir()
                figures.update(await step_and_burst(d, mode, ramp))
                print(json.dumps(figures), flush=True)
            if "day" in only:
                d = Path(tmp) / f"day-{mode}"
                d.mkdir()
                figures.update(await day(d, mode, day_s))
                print(json.dumps(figures), flush=True)
    return figures


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("supervisory", "direct"), action="append")
    ap.add_argument("--day-s", type=float, default=900.0)
    ap.add_argument("--only", choices=("step", "day"), action="append")
    ap.add_argument("--ramp", type=float, default=0.01)
    a = ap.parse_args()
    modes = a.mode or ["supervisory", "direct"]
    out = asyncio.run(main(modes, a.day_s, a.only or ["step", "day"], a.ramp))
    print("figures:", json.dumps(out, indent=1))
