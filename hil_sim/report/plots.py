"""The report's PNG plots (matplotlib, Agg backend: no display needed).

Every plot has the plant's time of day on the x axis (HH:MM:SS; wall times of the agent's
samples are mapped to it through the truth), the quantity and its unit on each y axis, a
legend, and lines told apart by colour and by style (so a grey-scale print still reads).

Install with ``pip install 'pumproom-edge[plots]'``; :func:`plot_all` raises ImportError
without matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hil_sim.report.figures import SERVICE_MPA, Figures, setpoint_of
from hil_sim.report.uplink import Uplink
from hil_sim.truth import Truth

WIDTH_IN, HEIGHT_IN, DPI = 11.0, 3.6, 100


TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def _ticks(x0: float, x1: float, most: int = 8) -> list[float]:
    """Ticks on whole clock steps (1 s … 6 h), at most ``most`` over [x0, x1]."""
    step = next((st for st in TICK_STEPS_S if (x1 - x0) / st <= most), TICK_STEPS_S[-1])
    first = -(-x0 // step) * step
    return [first + i * step for i in range(int((x1 - first) // step) + 1)]


def _hhmmss(x: float, _pos: Any = None) -> str:
    s = round(x) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class _Axes:
    """Shared setup: a figure, its x axis in plant time of day, events as vertical lines."""

    def __init__(self, truth: Truth, fig: Figures, ratios: tuple[float, ...] = (1.0,)) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter

        self.plt, self.truth = plt, truth
        self.figure, axes = plt.subplots(
            len(ratios),
            1,
            figsize=(WIDTH_IN, HEIGHT_IN * sum(ratios)),
            dpi=DPI,
            sharex=True,
            squeeze=False,
            gridspec_kw={"height_ratios": list(ratios)},
        )
        self.axes = [a[0] for a in axes]
        self.x0, self.x1 = truth.tod_at(fig.start_ms), truth.tod_at(fig.stop_ms)
        for ax in self.axes:
            ticks = _ticks(self.x0, self.x1)
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_major_formatter(FuncFormatter(_hhmmss))
            ax.set_xlim(self.x0, self.x1)
            ax.grid(True, alpha=0.3)
        self.axes[-1].set_xlabel("plant time of day (hh:mm:ss)")
        self._events(fig)

    def tod(self, wall_ms: float) -> float:
        return self.truth.tod_at(wall_ms)

    def _events(self, fig: Figures) -> None:
        shown = [e for e in self.truth.events if fig.start_ms <= e["t"] <= fig.stop_ms][:12]
        for i, e in enumerate(shown):
            x = self.tod(e["t"])
            for ax in self.axes:
                ax.axvline(x, color="0.35", linestyle=(0, (1, 2)), linewidth=1)
            self.axes[0].annotate(
                e["name"],
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10 - 10 * (i % 3)),
                textcoords="offset points",
                fontsize=7,
                color="0.25",
            )

    def save(self, path: Path, twin: Any = None) -> Path:
        """Legends below each axes (never over the data), then write the PNG."""
        for ax in self.axes:
            handles, labels = ax.get_legend_handles_labels()
            if twin is not None and ax is self.axes[0]:
                h2, l2 = twin.get_legend_handles_labels()
                handles, labels = handles + h2, labels + l2
            if handles:
                ax.legend(
                    handles,
                    labels,
                    loc="upper left",
                    bbox_to_anchor=(1.09 if twin is not None else 1.01, 1.0),
                    fontsize=8,
                    frameon=False,
                )
        self.figure.tight_layout()
        self.figure.savefig(path, bbox_inches="tight")
        self.plt.close(self.figure)
        return path


def pressures(truth: Truth, up: Uplink, fig: Figures, path: Path) -> Path:
    """Outlet pressure (truth and uplinked), setpoint, top-floor pressure, service level."""
    p = _Axes(truth, fig)
    ax = p.axes[0]
    states = [s for s in truth.states if fig.start_ms <= s["t"] <= fig.stop_ms]
    xs = [p.tod(s["t"]) for s in states]

    def col(key: str) -> list[float | None]:
        return [s["values"].get(key) for s in states]

    ax.plot(xs, col("p_out"), color="tab:blue", linewidth=1.6, label="outlet pressure (truth)")
    ax.plot(
        xs,
        [setpoint_of(s["values"]) for s in states],
        color="black",
        linestyle="--",
        linewidth=1.2,
        label="setpoint (truth)",
    )
    ax.plot(
        xs, col("plant.p_index"), color="tab:orange", linewidth=1.6, label="top-floor tap (truth)"
    )
    ax.plot(
        xs, col("p_in"), color="tab:green", linestyle="-.", linewidth=1.0, label="suction (truth)"
    )
    _uplinked(ax, p, up, fig, "p_out", "outlet pressure (uplinked)")
    ax.axhline(
        SERVICE_MPA, color="tab:red", linestyle=":", linewidth=1.2, label="service level 0.10 MPa"
    )
    ax.set_ylabel("pressure (MPa, gauge)")
    ax.set_title("Pressures: outlet, setpoint, top floor")
    return p.save(path)


def _uplinked(ax: Any, p: _Axes, up: Uplink, fig: Figures, point: str, label: str) -> None:
    """``point``'s good uplinked samples in the report's window, as open purple circles."""
    got = [
        s for s in up.samples.get(point, []) if s.q == "g" and fig.start_ms <= s.t <= fig.stop_ms
    ]
    ax.plot(
        [p.tod(s.t) for s in got],
        [s.value for s in got],
        linestyle="none",
        marker="o",
        markersize=4,
        markerfacecolor="none",
        color="tab:purple",
        label=label,
    )


def flow_pumps(truth: Truth, up: Uplink, fig: Figures, path: Path) -> Path:
    """Flow (truth, uplinked) and the number of pumps running."""
    p = _Axes(truth, fig)
    ax = p.axes[0]
    states = [s for s in truth.states if fig.start_ms <= s["t"] <= fig.stop_ms]
    xs = [p.tod(s["t"]) for s in states]
    ax.plot(
        xs,
        [s["values"].get("flow") for s in states],
        color="tab:blue",
        linewidth=1.6,
        label="flow (truth)",
    )
    _uplinked(ax, p, up, fig, "flow", "flow (uplinked)")
    ax.set_ylabel("flow (m³/h)")
    ax.set_title("Flow and pumps running")
    right = ax.twinx()
    running = [sum(bool(s["values"].get(f"pump{n}.running")) for n in (1, 2, 3)) for s in states]
    right.step(
        xs,
        running,
        where="post",
        color="tab:brown",
        linestyle="--",
        linewidth=1.2,
        label="pumps running (truth)",
    )
    right.set_ylabel("pumps running (count)")
    right.set_ylim(-0.2, 3.5)
    right.set_yticks([0, 1, 2, 3])
    return p.save(path, twin=right)


def uplink(truth: Truth, up: Uplink, fig: Figures, path: Path) -> Path:
    """Sample age at arrival, gaps, data-loss events (top); alarms raised to cleared (bottom)."""
    p = _Axes(truth, fig, ratios=(1.0, 0.25 + 0.15 * len({str(a.get("code")) for a in fig.alarms})))
    ax, al = p.axes
    live = [s for ss in up.samples.values() for s in ss if fig.start_ms <= s.t <= fig.stop_ms]
    for hist, colour, marker, label in (
        (False, "tab:blue", ".", "live"),
        (True, "tab:orange", "x", "backfill"),
    ):
        pts = [s for s in live if s.hist == hist]
        if pts:
            ax.plot(
                [p.tod(s.t) for s in pts],
                [max((s.r - s.t) / 1000.0, 1e-3) for s in pts],
                linestyle="none",
                marker=marker,
                markersize=3,
                color=colour,
                label=f"sample age at arrival ({label})",
            )
    ax.set_yscale("log")
    ax.set_ylabel("age at arrival (s, log)")
    pf = fig.points.get("p_out")
    for i, (a, b) in enumerate(pf.gaps if pf else []):
        ax.axvspan(
            p.tod(a),
            p.tod(b),
            color="tab:red",
            alpha=0.15,
            label="gap in p_out" if i == 0 else None,
        )
    for i, (a, b) in enumerate(fig.arrival_gaps):
        ax.axvspan(
            p.tod(a),
            p.tod(b),
            color="0.5",
            alpha=0.25,
            hatch="//",
            label="no telemetry arriving" if i == 0 else None,
        )
    for i, e in enumerate(up.data_loss()):
        ax.axvline(
            p.tod(int(e["t"])),
            color="tab:red",
            linewidth=2,
            label="data_loss event" if i == 0 else None,
        )
    ax.set_title("Uplink: sample age, gaps and data loss")
    codes = sorted({str(e.get("code")) for e in fig.alarms})
    for row, code in enumerate(codes):
        opened: float | None = None
        for e in (e for e in fig.alarms if str(e.get("code")) == code):
            x = p.tod(int(e["t"]))
            if e.get("state") == "active" and opened is None:
                opened = x
            elif e.get("state") == "cleared" and opened is not None:
                al.plot(
                    [opened, x], [row, row], color="tab:red", linewidth=6, solid_capstyle="butt"
                )
                opened = None
        if opened is not None:
            al.plot([opened, p.x1], [row, row], color="tab:red", linewidth=6, solid_capstyle="butt")
    al.plot([], [], color="tab:red", linewidth=6, label="alarm active (uplinked events)")
    al.set_yticks(range(len(codes)), codes if codes else [])
    al.set_ylim(-0.8, max(len(codes), 1) - 0.2)
    al.set_ylabel("alarm code")
    al.set_title("Alarms raised → cleared" + ("" if codes else " (none)"))
    return p.save(path)


def plot_all(truth: Truth, up: Uplink, fig: Figures, out: Path) -> list[Path]:
    """Write every plot into ``out``; returns their paths. Raises ImportError (matplotlib)."""
    return [
        pressures(truth, up, fig, out / "pressures.png"),
        flow_pumps(truth, up, fig, out / "flow_pumps.png"),
        uplink(truth, up, fig, out / "uplink.png"),
    ]
