"""The one-page HTML report: verdict, expectations, key figures, plots, coverage, alarms.

Self-contained but for the PNGs beside it (``<img src="pressures.png">``); no script, inline
CSS; every text from the run is HTML-escaped.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from hil_sim.report.expect import Outcome
from hil_sim.report.figures import SERVICE_MPA, Figures, pct

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1120px;color:#222}
h1{font-size:1.4em;margin:0} h2{font-size:1.1em;margin:1.2em 0 .3em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.3em 0} td,th{border:1px solid #ddd;padding:2px 8px;
text-align:left;vertical-align:top} th{background:#f4f4f4} .pass{color:#0a6b0a;font-weight:bold}
.fail{color:#b00020;font-weight:bold} .num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:.4em 0} .cov{columns:3;font-size:12px}
.cov div{break-inside:avoid} .low{color:#b00020} small{color:#666}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _s(x: float | None, fmt: str = ".2f", unit: str = " s") -> str:
    return "–" if x is None else f"{x:{fmt}}{unit}"


def render(
    name: str,
    fig: Figures,
    outcomes: list[Outcome],
    plots: list[Path],
    sources: dict[str, str],
) -> str:
    """The page as text. ``sources``: what was read (truth, uplink, scenario) for the footer."""
    passed = all(o.passed for o in outcomes)
    verdict = "PASS" if passed else "FAIL"
    window = (fig.stop_ms - fig.start_ms) / 1000.0

    def wall(ms: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + " UTC"

    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>hil-sim report: {_e(name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Scenario {_e(name)}: <span class='{verdict.lower()}'>{verdict}</span></h1>",
        f"<small>window {wall(fig.start_ms)} → {wall(fig.stop_ms)} ({window:.0f} s wall); "
        f"{sum(o.passed for o in outcomes)}/{len(outcomes)} expectations met</small>",
    ]
    if fig.undecoded:
        out.append(
            f"<p class='fail'>{fig.undecoded} captured messages were not JSON (CBOR telemetry?) "
            "and are left out of every figure: run the agent with uplink.telemetry_format json.</p>"
        )
    out.append("<h2>Expectations</h2>")
    if outcomes:
        out.append(
            "<table><tr><th>#</th><th>expectation</th><th>verdict</th><th>measured</th></tr>"
        )
        for o in outcomes:
            item = ", ".join(f"{k}: {v}" for k, v in o.item.items())
            v = "PASS" if o.passed else "FAIL"
            out.append(
                f"<tr><td>{o.index}</td><td>{_e(item)}</td><td class='{v.lower()}'>{v}</td>"
                f"<td>{_e(o.measured)}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>The scenario states no expectations.</p>")
    out.append("<h2>Figures</h2><table>")
    out += [f"<tr><th>{_e(k)}</th><td class='num'>{_e(v)}</td></tr>" for k, v in _rows(fig)]
    out.append("</table><h2>Plots</h2>")
    out += [f"<img src='{_e(p.name)}' alt='{_e(p.stem)}'>" for p in plots]
    out.append("<h2>Alarms uplinked</h2>")
    if fig.alarms:
        heads = ("gateway time", "code", "state", "id", "value")
        out.append("<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>")
        for a in fig.alarms[:60]:
            out.append(
                f"<tr><td>{wall(int(a['t']))}</td><td>{_e(a.get('code'))}</td><td>{_e(a.get('state'))}</td>"
                f"<td>{_e(a.get('id', ''))}</td><td>{_e(a.get('value', ''))}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>None.</p>")
    out.append("<h2>Coverage, value error, latency per point</h2><div class='cov'>")
    for p in fig.points.values():
        low = " class='low'" if p.coverage < 0.99 else ""
        err = (
            f", |err| med {p.error_median:.3g} max {p.error_max:.3g} {_e(p.unit or '')}"
            if p.error_max is not None
            else ""
        )
        lat = f", latency med {pct(p.latency_s, 0.5):.2f} s" if p.latency_s else ""
        out.append(
            f"<div{low}>{_e(p.point)}: {p.coverage:.3f} ({p.good}/{p.expected:.0f}, "
            f"{len(p.gaps)} gaps{err}{lat})</div>"
        )
    out.append("</div>")
    if fig.never_uplinked:
        never = _e(", ".join(fig.never_uplinked))
        out.append(f"<p><small>Truth points never uplinked: {never}</small></p>")
    out.append("<p><small>" + " · ".join(f"{_e(k)}: {_e(v)}" for k, v in sources.items()))
    out.append("</small></p></body></html>\n")
    return "\n".join(out)


def _three(values: list[float]) -> str:
    """median / p95 / max of durations in s."""
    return f"{_s(pct(values, 0.5))} / {_s(pct(values, 0.95))} / {_s(max(values, default=None))}"


def _rows(fig: Figures) -> list[tuple[str, str]]:
    """The key figures as (what, value) rows."""
    cov = [p.coverage for p in fig.points.values()]
    raised = sum(a.get("state") == "active" for a in fig.alarms)
    starts = ", ".join(f"{k} {v}" for k, v in fig.starts.items())
    gaps = sum(len(p.gaps) for p in fig.points.values())
    longest = max(((b - a) / 1000.0 for a, b in fig.arrival_gaps), default=None)
    return [
        ("points uplinked / truth points never uplinked",
         f"{len(fig.points)} / {len(fig.never_uplinked)}"),
        ("coverage per point: min / median",
         f"{_s(min(cov, default=None), '.3f', '')} / {_s(pct(cov, 0.5), '.3f', '')}"),
        ("latency change→uplink: median / p95 / max (n)",
         f"{_three(fig.latency_s)} ({len(fig.latency_s)})"),
        ("changes never uplinked", str(fig.missed_changes)),
        ("live sample age at arrival: median / p95 / max", _three(fig.age_s)),
        ("telemetry seqs missing / explained by data_loss",
         f"{fig.seq_missing} / {fig.seq_explained}"),
        ("data_loss events (samples)", f"{fig.data_loss_events} ({fig.data_loss_samples})"),
        ("gaps (> 3 poll intervals) over all points", str(gaps)),
        ("uplink gaps (no telemetry arrived > 3 s): count / longest",
         f"{len(fig.arrival_gaps)} / {_s(longest, '.1f')}"),
        ("alarm events uplinked (raised)", f"{len(fig.alarms)} ({raised})"),
        (f"time in band ±{fig.band_mpa:g} MPa (outlet vs setpoint)",
         _s(fig.time_in_band, ".3f", "")),
        ("pump starts in window / most of one pump in 60 min",
         f"{starts} / {fig.max_starts_in_hour}"),
        ("top-floor pressure: minimum", _s(fig.index_min, ".3f", " MPa")),
        (f"top-floor pressure below {SERVICE_MPA:.2f} MPa service level (s)",
         _s(fig.index_below_service_s, ".0f")),
    ]  # fmt: skip
