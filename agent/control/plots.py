"""Plots of a closed-loop record: ``python -m agent.control.plots RECORD.json [...]``.

A record is what ``python -m tests.benchmarks.control_quality --out DIR`` writes for each run
(the real agent on the simulator): a JSON object with ``t_s`` (s from the event: the command,
or the start of the day), ``p_out_mpa`` (outlet pressure, MPa), ``sp_mpa`` (the agent's
setpoint, MPa), ``flow_m3h`` (m³/h), ``freq_hz`` (one list per pump, Hz), ``band_mpa`` (the
tolerance judged, MPa) and ``time_of_day`` (null, or ``{"tod_at_0_s": s after midnight at
t = 0, "day_speed": how much faster the time of day ran}``: then the x axis is the plant's
time of day). One PNG per record, beside it: pressure with setpoint and tolerance band, each
pump's output frequency (colour, line style and legend per pump), flow.

Needs the optional dependency ``matplotlib`` (``pip install -e '.[plots]'``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PUMP_STYLES = (("tab:blue", "-", 3.0), ("tab:orange", "--", 1.8), ("tab:green", ":", 1.6))
"""(colour, line style, width) of pump 1, 2, 3: told apart in colour and in black and white,
and a pump running at the same speed as another still shows (a wider line behind)."""


def _x(data: dict[str, Any]) -> tuple[list[float], str]:
    tod = data.get("time_of_day")
    if not tod:
        return data["t_s"], "time from the event (s)"
    speed, at0 = float(tod["day_speed"]), float(tod["tod_at_0_s"])
    return [(at0 + t * speed) / 3600.0 for t in data["t_s"]], "plant time of day (hh:mm)"


def plot_record(data: dict[str, Any], title: str, png: Path) -> None:
    """Draw one record (see the module docstring for its keys) into ``png``.

    Raises KeyError naming a missing key, ValueError when the series lengths differ, and
    ImportError when matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    x, xlabel = _x(data)
    n = len(x)
    series = [data["p_out_mpa"], data["sp_mpa"], data["flow_m3h"], *data["freq_hz"]]
    if any(len(s) != n for s in series):
        raise ValueError(f"{title}: series lengths differ: {[len(s) for s in series]} vs {n}")
    band = float(data["band_mpa"])
    sp = data["sp_mpa"]
    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, sharex=True, figsize=(11, 8.5), gridspec_kw={"height_ratios": [3, 2, 1.3]}
    )
    ax1.fill_between(x, [s - band for s in sp], [s + band for s in sp], color="tab:green",
                     alpha=0.18, lw=0, label=f"tolerance ±{band:g} MPa")  # fmt: skip
    ax1.plot(x, sp, color="black", lw=1.2, ls="--", label="setpoint (agent ctl.sp)")
    ax1.plot(x, data["p_out_mpa"], color="tab:red", lw=0.8, label="outlet pressure (plant)")
    ax1.set_ylabel("outlet pressure (MPa)")
    fig.suptitle(title)
    ax1.grid(True, alpha=0.3)
    # above the plot, never over the data
    ax1.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize=9, frameon=False)
    for i, (f, (colour, style, width)) in enumerate(
        zip(data["freq_hz"], PUMP_STYLES, strict=False)
    ):
        still = " (stopped throughout)" if max(f, default=0.0) <= 0.0 else ""
        ax2.plot(x, f, color=colour, ls=style, lw=width, label=f"pump {i + 1}{still}")
    ax2.set_ylabel("drive output frequency (Hz)")
    ax2.set_ylim(-2, 62)  # headroom for the legend above 50 Hz
    ax2.grid(True, alpha=0.3)
    ax2.legend(loc="upper left", fontsize=9, ncol=3)
    ax3.plot(x, data["flow_m3h"], color="tab:purple", lw=0.8, label="outlet flow")
    ax3.set_ylabel("flow (m³/h)")
    ax3.grid(True, alpha=0.3)
    ax3.set_xlabel(xlabel)
    for t, what in data.get("events", []):
        for ax in (ax1, ax2, ax3):
            ax.axvline(t, color="grey", lw=0.8, ls="-.")
        ax1.annotate(what, (t, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                     textcoords="offset points", fontsize=8, color="dimgrey")  # fmt: skip
    if data.get("time_of_day"):
        hours = FuncFormatter(lambda h, _: f"{int(h) % 24:02d}:{round(h % 1 * 60) % 60:02d}")
        ax3.xaxis.set_major_formatter(hours)
        span_h = x[-1] - x[0]  # ticks: 3 h for a day, 15 min for hours, 1 min for minutes
        step_h = 3 if span_h > 6 else 0.25 if span_h > 1 else 5 / 60 if span_h > 0.25 else 1 / 60
        ax3.xaxis.set_major_locator(MultipleLocator(step_h))
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def plot_file(record: Path, png: Path | None = None) -> Path:
    """Plot a record file into ``png`` (default: beside it, ``.png``); returns the PNG's path.
    Raises OSError/ValueError/KeyError naming the file when it cannot be read or drawn."""
    png = png or record.with_suffix(".png")
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        kind, _, mode = record.stem.partition("-")
        what = {
            "step": "setpoint.set 0.40 → 0.45 MPa, then +6 m³/h at t ≈ 30 s",
            "day": "a day of demand, compressed (simulator day_speed)",
            "hour": "real-time stretch",
        }.get(kind, kind)
        plot_record(data, data.get("title") or f"{what} — {mode or '?'} mode", png)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{record}: {exc!r}") from exc
    return png


def main(argv: list[str] | None = None) -> int:
    """Plot each record file given."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("records", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for record in args.records:
        print(f"wrote {plot_file(record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
