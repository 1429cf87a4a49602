"""Plots of the closed loop on the simulator: ``python -m agent.control.plots --out DIR``.

Runs two scenarios against the simulator (servers on loopback, the agent's drivers, pollers
and control loop in direct mode, via ``tests/control/rig.py``) and writes PNGs of outlet
pressure, setpoint, pump frequencies and flow:

* ``step.png``: setpoint step 0.40 → 0.45 MPa;
* ``diurnal.png``: a day of demand compressed into ``--day-s`` seconds (``day_speed``), with
  the simulator's random draws; the dynamics stay real time.

Needs the optional dependency ``matplotlib`` (``pip install .[plots]``) and a source checkout
(the rig lives with the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path


async def _scenario(kind: str, day_s: float) -> object:
    from tests.control.rig import Rig, control_section

    section = control_section(remote={"ramp_mpa_per_s": 10.0, "min_interval_s": 0.0})
    start = 8 * 3600.0 if kind == "step" else 0.0
    async with Rig(Path(tempfile.mkdtemp()), section, start_time_of_day_s=start) as rig:
        await rig.wait_polled()
        if kind == "diurnal":
            rig.set("day_speed", 86400.0 / day_s)
            rig.set("demand_factor", 1.5)
        assert rig.loop is not None
        rig.start_loop()
        if kind == "step":
            await asyncio.sleep(8.0)
            await rig.loop.request_setpoint(0.45, cmd_id="plot", by="plots")
            await asyncio.sleep(20.0)
        else:
            await asyncio.sleep(day_s)
        return rig.trace


def _plot(trace: object, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = trace
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    ax1.plot(tr.t, tr.p_out, lw=0.8, label="outlet pressure (plant)")  # type: ignore[attr-defined]
    ax1.plot(tr.t, tr.sp, lw=1.2, label="setpoint")  # type: ignore[attr-defined]
    ax1.set_ylabel("MPa")
    ax1.legend(loc="lower right")
    ax1.set_title(title)
    for i in range(3):
        ax2.plot(tr.t, [f[i] for f in tr.freqs], lw=0.8, label=f"pump {i + 1}")  # type: ignore[attr-defined]
    ax2.set_ylabel("Hz")
    ax2.legend(loc="lower right")
    ax3.plot(tr.t, tr.flow, lw=0.8, label="flow")  # type: ignore[attr-defined]
    ax3.set_ylabel("m³/h")
    ax3.set_xlabel("s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and write ``step.png`` and ``diurnal.png`` into ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--day-s", type=float, default=240.0, help="wall seconds for one day")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    step = asyncio.run(_scenario("step", args.day_s))
    _plot(step, "setpoint step 0.40 → 0.45 MPa (direct mode)", args.out / "step.png")
    day = asyncio.run(_scenario("diurnal", args.day_s))
    _plot(day, f"diurnal demand ×1.5, one day in {args.day_s:g} s", args.out / "diurnal.png")
    print(f"wrote {args.out / 'step.png'} and {args.out / 'diurnal.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
