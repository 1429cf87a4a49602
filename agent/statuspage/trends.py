"""The status page's trend charts: the last minutes of pressure, flow and frequency points, kept
in memory by the page server and drawn as small inline SVG (no script library, no CDN: the
gateway and the technician's phone may have no internet).

Which points: the points marked ``trend: true`` (profiles mark the measured pressure, flow and
drive frequencies; all points when none is marked) whose unit is MPa (pressure), m³/h (flow) or
Hz (frequency), at most :data:`MAX_SERIES` per chart. The time axis spans the history kept so
far, up to :data:`WINDOW_S`. One sample per point per
:data:`SAMPLE_S`, :data:`WINDOW_S` kept (600 × 1 s: 10 minutes, a few hundred kB at most).
"""

from __future__ import annotations

import html
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping

SAMPLE_S = 1.0
WINDOW_S = 600.0
MAX_SERIES = 6
CHARTS = (
    ("pressure", "MPa", "Pressure"),
    ("flow", "m³/h", "Flow"),
    ("frequency", "Hz", "Frequency"),
)
"""(chart id, unit, title)."""
COLOURS = ("#1f6feb", "#d9480f", "#2b8a3e", "#ae3ec9", "#e8590c", "#0b7285")


class Trends:
    """Rolling history of the trend points.

    Args:
        units: point name → unit, for every configured point.
    """

    def __init__(self, units: Mapping[str, str | None]) -> None:
        self.charts: dict[str, list[str]] = {}
        for chart, unit, _ in CHARTS:
            names = [n for n, u in units.items() if u == unit]
            self.charts[chart] = names[:MAX_SERIES]
        n = int(WINDOW_S / SAMPLE_S)
        self.series: dict[str, deque[tuple[float, float | None]]] = {
            name: deque(maxlen=n) for names in self.charts.values() for name in names
        }

    def sample(self, t_s: float, values: Mapping[str, float | None]) -> None:
        """Record one sample per trend point at wall time ``t_s`` (s); ``None`` = no good value
        (drawn as a gap)."""
        for name, ring in self.series.items():
            v = values.get(name)
            ring.append((t_s, v if v is not None and math.isfinite(v) else None))

    def svg(self, chart: str, title: str, unit: str, now_s: float) -> str:
        """The chart as an inline ``<svg>`` with a legend (empty text when it has no points)."""
        names = self.charts.get(chart) or []
        if not names:
            return ""
        w, h, pad_l, pad_b = 320.0, 120.0, 40.0, 16.0
        values = [v for n in names for _, v in self.series[n] if v is not None]
        times = [t for n in names for t, _ in self.series[n]]
        window = min(WINDOW_S, max(60.0, now_s - min(times))) if times else WINDOW_S
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5 * (abs(lo) * 0.05 or 1.0), hi + 0.5 * (abs(hi) * 0.05 or 1.0)
        vmin, vmax, span = lo, hi, hi - lo
        lo, hi = lo - 0.08 * span, hi + 0.08 * span
        t0 = now_s - window

        def x(t: float) -> float:
            return pad_l + (w - pad_l - 4) * max(0.0, t - t0) / window

        def y(v: float) -> float:
            return 4 + (h - pad_b - 8) * (1 - (v - lo) / (hi - lo))

        parts = [
            f'<svg viewBox="0 0 {w:.0f} {h:.0f}" class="chart" role="img" '
            f'aria-label="{html.escape(title)}, last {window / 60:.0f} minutes">',
            f'<line x1="{pad_l}" y1="{h - pad_b}" x2="{w - 4}" y2="{h - pad_b}" class="axis"/>',
        ]
        for v in (vmin, vmax):
            parts.append(
                f'<text x="{pad_l - 4}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">'
                f"{_short(v)}</text>"
            )
        step = 2 if window > 300 else 1
        for minutes in range(0, int(window / 60) + 1, step):
            tx = x(now_s - minutes * 60)
            anchor = "end" if minutes == 0 else "middle"  # "now" sits at the right edge
            parts.append(
                f'<text x="{tx:.1f}" y="{h - 3}" class="tick" text-anchor="{anchor}">'
                f"{'now' if minutes == 0 else f'-{minutes}m'}</text>"
            )
        for i, name in enumerate(names):
            parts.append(
                f'<path d="{_path(self.series[name], x, y)}" stroke="{COLOURS[i]}" class="line"/>'
            )
        parts.append("</svg>")
        legend = "".join(
            f'<span class="key"><i style="background:{COLOURS[i]}"></i>{html.escape(n)} '
            f"{_latest(self.series[n])}</span>"
            for i, n in enumerate(names)
        )
        return (
            f"<figure><figcaption>{html.escape(title)} ({html.escape(unit)})</figcaption>"
            f'{"".join(parts)}<div class="legend">{legend}</div></figure>'
        )


def _path(
    points: Iterable[tuple[float, float | None]],
    x: Callable[[float], float],
    y: Callable[[float], float],
) -> str:
    out, pen = [], "M"
    for t, v in points:
        if v is None:
            pen = "M"
            continue
        out.append(f"{pen}{x(t):.1f},{y(v):.1f}")
        pen = "L"
    return " ".join(out) or "M0,0"


def _short(v: float) -> str:
    return f"{v:.3g}"


def _latest(ring: deque[tuple[float, float | None]]) -> str:
    if not ring:
        return "–"
    last = ring[-1][1]
    return "–" if last is None else _short(last)
