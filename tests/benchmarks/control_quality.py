"""Control quality of the real agent on the simulator: ``python -m tests.benchmarks.control_quality``.

Each scenario runs a private Mosquitto, ``hil-sim run`` and ``pumproom-agent run`` on
``config/example.yaml`` with its control section (``tests/benchmarks/control_plant.py``: the
enabled section, else the commented one; the example's polling, in direct mode the outlet
pressure at the documented 0.2 s), three pumps, in ``--mode supervisory`` and/or ``direct``
(default both). Pressures are the simulator's outlet transmitter (its truth file) as a 0.5 s
damped gauge shows them; the setpoint is the agent's own ``ctl.sp`` telemetry. Prints each
figure with the goal of issue 13 and PASS/FAIL (figures, not timed tests; not part of pytest):

* ``step`` (~2 min a mode): ``setpoint.set`` 0.40 MPa over MQTT, held; then ``setpoint.set``
  0.45 MPa (the example's remote ramp applies): time from the publish until the pressure is
  first within ±0.005 MPa of 0.45 (command to pressure at target, goal ≤ 10 s) and until it
  stays there for 10 s (settling, goal ≤ 10 s), overshoot (goal ≤ 0.01 MPa); then +6 m³/h drawn at
  once: time until back within ±0.01 MPa for good (goal ≤ 10 s);
* ``day`` (``--day-s``, default 900 s a mode): a day from 00:00 with the simulator's
  ``day_speed`` 86400 / day-s (96: the demand's time of day runs 96× faster, the hydraulics
  and drives in real time);
* ``hour`` (opt-in: ``--hour`` = 60 min a mode, ``--minutes N`` a shorter one): real time
  from ``--start-time`` (default 07:00, the morning peak).

``day`` and ``hour`` print the share of time within ±0.01 MPa of the setpoint (goal ≥ 95 %),
each pump's most starts within any hour (goal ≤ ``staging.max_starts_per_hour``) and Hägglund's
oscillation detector on the error (goal: none; ``control_figures.oscillation``). ``--out DIR``
writes each run's record (JSON) and, with matplotlib (``pip install -e '.[plots]'``), its PNG
(``agent/control/plots.py``). Loopback only. Exit status 1 when a goal failed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks import control_figures as cf
from tests.benchmarks.control_plant import PlantRun, Record

GAUGE_S = 0.5
"""Damping of the pressure as judged (s): the moving average of a panel gauge."""
DT = 0.1
"""Sampling of the records, s."""
OSC_AMPLITUDE_MPA = 0.01
"""Hägglund's ``a``, the smallest oscillation amplitude worth detecting (MPa): the ±0.01 MPa
band of the hour and day goals. Hägglund suggests 1 % of the measurement range; a smaller ``a``
counts the simulator's frequent random water draws as load disturbances. The ±10 kPa ring at
~2.5 s of issue 13 has a half-period IAE of 0.008 MPa·s, above the 0.0064 this gives."""
SETTLED_HOLD_S = 10.0
"""A step counts as settled once the pressure stayed within its band this long (s): the
plant's random water draws keep coming, and a later one is not the step's response."""


def _pv(rec: Record, t0: float, t1: float) -> tuple[list[float], list[float]]:
    ts, ps = cf.resample(rec.truth["p_out"], t0, t1, DT)
    return ts, cf.moving_average(ps, round(GAUGE_S / DT))


def _wait_interval(last: float, run: PlantRun) -> None:
    """Sleep until the remote setpoint's ``min_interval_s`` has passed since ``last``."""
    gap = float(run.control.get("remote", {}).get("min_interval_s", 0.0)) + 0.5
    time.sleep(max(0.0, last + gap - time.time()))


def step(work: Path, mode: str, out: Path | None) -> list[tuple[str, Any, str, bool | None]]:
    """The step, command and burst scenario; returns (figure, value, goal, ok) rows."""
    run = PlantRun(work, mode).start()
    assert run.platform is not None
    try:
        cid, sent = run.platform.setpoint(0.40)
        if not run.hold(0.40, 0.01, 5.0, 90.0):
            raise SystemExit(f"{mode}: the pressure did not settle at 0.40 MPa within 90 s")
        _wait_interval(sent, run)
        run.hold(0.40, 0.005, 3.0, 30.0)  # start the step from rest (or after 30 s anyway)
        cid, t_cmd = run.platform.setpoint(0.45)
        time.sleep(30.0)
        answers = run.platform.answers_for(cid)
        leak = 0.1 + 6.0  # the plant's base leak (hil_sim PlantParams.base_leak_m3h) + 6
        t_burst = run.set_sim("leak_m3h", leak)
        time.sleep(30.0)
        run.set_sim("leak_m3h", 0.1)
        time.sleep(10.0)
    finally:
        run.stop()
    rec = run.record()
    ts, ps = _pv(rec, t_cmd - 5.0, t_burst)
    reach = cf.first_reach(ts, ps, 0.45, 0.005, t_cmd)
    settle = cf.settling_time(ts, ps, 0.45, 0.005, t_cmd, hold_s=SETTLED_HOLD_S)
    over = cf.overshoot([p for t, p in zip(ts, ps, strict=True) if t >= t_cmd], 0.40, 0.45)
    results = [b for _, b in answers if b.get("phase") == "result"]
    done = [t - t_cmd for t, b in answers if b.get("phase") == "result"]
    bts, bps = _pv(rec, t_burst, t_burst + 30.0)
    back = cf.settling_time(bts, bps, 0.45, 0.01, t_burst)
    if out is not None:
        _save(
            out / f"step-{mode}",
            rec,
            (t_cmd - 10.0, t_burst + 40.0, t_cmd),
            0.005,
            f"setpoint.set 0.40 → 0.45 MPa over MQTT (band ±0.005 drawn), then +6 m³/h drawn "
            f"(judged at ±0.01) — {mode} mode",
            [(t_cmd, "setpoint.set 0.45"), (t_burst, "+6 m³/h"), (t_burst + 30, "−6 m³/h")],
        )
    m = mode
    return [
        (f"{m} setpoint.set → p within ±0.005 (s)", _r(reach), "≤ 10 s", _le(reach, 10)),
        (f"{m} step 0.40→0.45 settled ±0.005 (s)", _r(settle), "≤ 10 s", _le(settle, 10)),
        (f"{m} step overshoot (MPa)", round(over, 4), "≤ 0.010 MPa", over <= 0.01),
        (f"{m} setpoint.set result (s, code)",
         f"{_r(done[0] if done else None)} {results[0].get('code') if results else '-'}",
         "(report)", None),
        (f"{m} +6 m³/h back in ±0.01 for good (s)", _r(back), "≤ 10 s", _le(back, 10)),
        (f"{m} +6 m³/h lowest (MPa)", round(min(bps), 3), "(report)", None),
    ]  # fmt: skip


def steady(
    work: Path, mode: str, seconds: float, start_time: str, day_speed: float, out: Path | None
) -> list[tuple[str, Any, str, bool | None]]:
    """A real-time stretch (``day_speed`` 1) or a compressed day; returns figure rows."""
    run = PlantRun(work, mode, start_time=start_time).start()
    hh, mm = (int(x) for x in start_time.split(":"))
    tod0 = hh * 3600.0 + mm * 60.0
    try:  # measured from rest: the start-up transient is the start-up's, not the day's
        run.hold(run.ctl("ctl.sp") or 0.40, 0.01, 5.0, 60.0)
        tod_t0 = tod0 + run.sim.command({"cmd": "ping"})["t_s"]  # plant s since its start
        t0 = run.set_sim("day_speed", day_speed) if day_speed != 1.0 else time.time()
        time.sleep(seconds)
    finally:
        run.stop()
    rec = run.record()
    t1 = t0 + seconds
    ts, ps = _pv(rec, t0, t1)
    _, sps = cf.resample(rec.sp, t0, t1, DT)
    n = min(len(ps), len(sps))
    errs = [p - s for p, s in zip(ps[-n:], sps[-n:], strict=True)]
    terr = ts[-n:]
    inside = 100.0 * cf.fraction_in_band(errs, 0.01)
    ti = float(run.control.get("pid", {}).get("ti_s", 2.0))
    osc = cf.oscillation(terr, errs, a=OSC_AMPLITUDE_MPA, ti_s=ti)
    limit = int(run.control.get("staging", {}).get("max_starts_per_hour", 20))
    starts = [cf.starts_per_hour(_counter(rec.truth[f"pump{n}.starts"], t0, t1))
              for n in (1, 2, 3)]  # fmt: skip
    if out is not None:
        kind = "day" if day_speed != 1 else "hour"
        title = (
            f"one day of demand in {seconds:g} s (simulator day_speed {day_speed:g}; "
            f"hydraulics in real time) — {mode} mode"
            if kind == "day"
            else f"{seconds / 60:g} min in real time from {start_time} — {mode} mode"
        )
        _save(out / f"{kind}-{mode}", rec, (t0, t1, t0), 0.01, title, [], (tod_t0, day_speed))
    what = f"{mode} {'day/' + str(round(seconds)) + ' s' if day_speed != 1 else 'hour'}"
    if day_speed == 1.0:
        what = f"{mode} {seconds / 60:g} min real time"
    most = max(s[0] for s in starts)
    return [
        (f"{what}: within ±0.01 MPa (%)", round(inside, 1), "≥ 95 %", inside >= 95.0),
        (f"{what}: most starts of a pump in 1 h", f"{most} {[s[0] for s in starts]}",
         f"≤ {limit} (max_starts_per_hour)", most <= limit),
        (f"{what}: starts/h rate, busiest pump", round(max(s[1] for s in starts), 1),
         "(report)", None),
        (f"{what}: oscillation (Hägglund + regularity)",
         f"{osc.most_in_window} in {osc.t_sup_s:g} s, r {osc.regularity:.2f}",
         f"not (> {osc.n_lim} and r > 1)", not osc.detected),
        (f"{what}: error rms / max |e| (MPa)",
         f"{(sum(e * e for e in errs) / len(errs)) ** 0.5:.4f} / {max(map(abs, errs)):.3f}",
         "(report)", None),
    ]  # fmt: skip


def _counter(changes: list[tuple[float, float]], t0: float, t1: float) -> list[tuple[float, int]]:
    """A counter's changes within [t0, t1], starting with its value at t0 (t0, t1: wall s)."""
    before = [int(v) for t, v in changes if t < t0]
    inside = [(t, int(v)) for t, v in changes if t0 <= t <= t1]
    start = before[-1] if before else (inside[0][1] if inside else 0)
    end = inside[-1][1] if inside else start
    return [(t0, start), *inside, (t1, end)]


def _r(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f}"


def _le(v: float | None, goal: float) -> bool:
    return v is not None and v <= goal


def _save(
    path: Path, rec: Record, window: tuple[float, float, float], band: float, title: str,
    events: list[tuple[float, str]], tod: tuple[float, float] | None = None,
) -> None:  # fmt: skip
    """Write the record's ``window`` (t0, t1, the time shown as 0; wall s) as JSON and, when
    matplotlib is there, a PNG beside it (``agent/control/plots.py``)."""
    t0, t1, tref = window
    ts, ps = cf.resample(rec.truth["p_out"], t0, t1, DT)
    data: dict[str, Any] = {
        "t_s": [round(t - tref, 2) for t in ts],
        "p_out_mpa": ps,
        "sp_mpa": cf.resample(rec.sp, t0, t1, DT)[1][-len(ts) :],
        "flow_m3h": cf.resample(rec.truth["flow"], t0, t1, DT)[1][-len(ts) :],
        "freq_hz": [cf.resample(rec.truth[f"pump{n}.freq"], t0, t1, DT)[1][-len(ts) :]
                    for n in (1, 2, 3)],
        "band_mpa": band,
        "title": title,
        "events": [[round(t - tref, 2), what] for t, what in events],
        "time_of_day": None if tod is None else {"tod_at_0_s": tod[0], "day_speed": tod[1]},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(data), encoding="utf-8")
    try:
        from agent.control import plots

        plots.plot_file(path.with_suffix(".json"), path.with_suffix(".png"))
    except ImportError as exc:  # matplotlib is an optional extra: the figures still count
        print(f"no plot {path.with_suffix('.png')}: {exc} (pip install -e '.[plots]')")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios for the chosen modes and print the figures."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--mode", choices=("supervisory", "direct"), action="append")
    ap.add_argument("--only", choices=("step", "day"), action="append")
    ap.add_argument("--day-s", type=float, default=900.0)
    ap.add_argument("--hour", action="store_true", help="also a real-time hour (60 min a mode)")
    ap.add_argument("--minutes", type=float, help="also a real-time stretch of N minutes")
    ap.add_argument("--start-time", default="07:00", help="plant time of the real-time run")
    ap.add_argument("--out", type=Path, help="folder for records (JSON) and plots (PNG)")
    a = ap.parse_args(argv)
    modes = a.mode or ["supervisory", "direct"]
    only = a.only or (["step", "day"] if not (a.hour or a.minutes) else [])
    minutes = 60.0 if a.hour else a.minutes
    rows: list[tuple[str, Any, str, bool | None]] = []
    with tempfile.TemporaryDirectory(prefix="ctl-quality-") as tmp:
        for mode in modes:
            for name in [
                *(n for n in ("step", "day") if n in only),
                *(["hour"] if minutes else []),
            ]:
                work = Path(tmp) / f"{name}-{mode}"
                work.mkdir()
                if name == "step":
                    new = step(work, mode, a.out)
                elif name == "day":
                    new = steady(work, mode, a.day_s, "00:00", 86400.0 / a.day_s, a.out)
                else:
                    assert minutes is not None
                    new = steady(work, mode, minutes * 60.0, a.start_time, 1.0, a.out)
                for row in new:
                    print(cf.verdict(*row), flush=True)
                rows += new
    print("\nfigures (issue 13 goals):")
    for row in rows:
        print(cf.verdict(*row))
    return 1 if any(ok is False for *_, ok in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
