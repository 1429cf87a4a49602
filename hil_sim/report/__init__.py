"""``hil-sim report``: did the agent do its job? Ground truth against what it uplinked.

:func:`make_report` reads a truth file (:mod:`hil_sim.truth`), an uplink capture
(:mod:`hil_sim.report.uplink`) and optionally the scenario (its ``expect:`` items,
:mod:`hil_sim.report.expect`), computes the figures (:mod:`hil_sim.report.figures`) and writes
``report.html`` with its PNG plots (:mod:`hil_sim.report.plots`) and ``report.json`` (figures and
verdicts, for machines) into one folder.

The window: from the agent's first birth (``status`` online) seen in the capture, or the
truth's start if later (a gateway cannot be blamed for the seconds before it ran), to the
truth's end, or to ``duration_s`` plant seconds after the truth's start when the scenario says
so, else to the agent's last clean shutdown (``status`` offline, reason shutdown) if earlier;
``skip_s`` / ``until_s`` (wall seconds from the truth's start) override.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from hil_sim.report.expect import Outcome, Scenario, evaluate, load_scenario_expectations
from hil_sim.report.figures import DEFAULT_BAND_MPA, Figures, compute
from hil_sim.report.uplink import Uplink, load_uplink
from hil_sim.truth import Truth, load_truth

__all__ = ["Report", "make_report", "window"]


@dataclass
class Report:
    """What :func:`make_report` wrote and found."""

    passed: bool
    outcomes: list[Outcome]
    figures: Figures
    html: Path
    plots: list[Path]


def window(
    truth: Truth,
    up: Uplink,
    scenario: Scenario | None,
    skip_s: float | None = None,
    until_s: float | None = None,
) -> tuple[int, int]:
    """The report window in wall ms (see the module docstring)."""
    start, stop = truth.start_ms, truth.stop_ms
    births = [int(s.get("ts", s["r"])) for s in up.status if s.get("state") == "online"]
    ends = [
        int(s.get("ts", s["r"]))
        for s in up.status
        if s.get("state") == "offline" and s.get("reason") == "shutdown"
    ]
    if skip_s is not None:
        start = truth.start_ms + int(skip_s * 1000)
    elif births:
        start = max(start, min(births))
    if until_s is not None:
        stop = min(stop, truth.start_ms + int(until_s * 1000))
    elif scenario is not None and scenario.duration_s:
        stop = min(stop, truth.start_ms + int(scenario.duration_s / truth.speed() * 1000))
    elif births and ends and max(ends) > min(births):
        stop = min(stop, max(ends))
    return start, stop


def failed_events(truth: Truth, first_index: int) -> list[Outcome]:
    """One failed verdict per scenario event the simulator refused (``NAME:failed`` in the
    truth: a misspelled ``set`` name, a fault on an unknown target): the run did not play the
    scenario as written, so it cannot pass, whatever the expectations say."""
    out: list[Outcome] = []
    for e in truth.events:
        name = str(e.get("name", ""))
        if name.endswith(":failed"):
            why = (e.get("description") or {}).get("error", "refused")
            index = first_index + len(out)
            out.append(Outcome(index, {"event": name}, False, f"not played: {why}"))
    return out


def make_report(
    truth_path: str | Path,
    uplink_path: str | Path,
    out_dir: str | Path,
    scenario_path: str | Path | None = None,
    band_mpa: float | None = None,
    skip_s: float | None = None,
    until_s: float | None = None,
    plots: bool = True,
) -> Report:
    """Write ``report.html`` (+ PNGs, ``report.json``) into ``out_dir`` (created).

    Args:
        band_mpa: time-in-band band (MPa); default the scenario's ``time_in_band`` item's, else
            :data:`~hil_sim.report.figures.DEFAULT_BAND_MPA`.
        plots: False skips the PNGs (no matplotlib needed).

    Raises:
        OSError: a file cannot be read or written.
        ValueError: a malformed truth or capture line, an empty window, or a malformed
            ``expect:`` item (:class:`~hil_sim.report.expect.ExpectationError`); each names
            the file and line or item.
        ImportError: ``plots`` without matplotlib (``pip install 'pumproom-edge[plots]'``).
    """
    from hil_sim.report.html import render

    truth, up = load_truth(truth_path), load_uplink(uplink_path)
    scenario = load_scenario_expectations(scenario_path) if scenario_path else None
    if band_mpa is None:
        items = scenario.expect if scenario else []
        bands = [
            i["band_mpa"] for i in items if i.get("control") == "time_in_band" and "band_mpa" in i
        ]
        band_mpa = float(bands[0]) if bands else DEFAULT_BAND_MPA
    start, stop = window(truth, up, scenario, skip_s, until_s)
    fig = compute(truth, up, start, stop, band_mpa)
    outcomes = evaluate(scenario, truth, up, fig) if scenario else []
    outcomes += failed_events(truth, len(outcomes))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs: list[Path] = []
    if plots:
        from hil_sim.report.plots import plot_all

        pngs = plot_all(truth, up, fig, out)
    name = scenario.name if scenario else Path(truth_path).stem
    sources = {"truth": str(truth_path), "uplink": str(uplink_path)}
    if scenario_path:
        sources["scenario"] = str(scenario_path)
    page = out / "report.html"
    page.write_text(render(name, fig, outcomes, pngs, sources), encoding="utf-8")
    passed = all(o.passed for o in outcomes)
    summary = {
        "scenario": name,
        "passed": passed,
        "expectations": [asdict(o) for o in outcomes],
        "figures": {k: v for k, v in asdict(fig).items() if k != "alarms"},
    }
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return Report(passed, outcomes, fig, page, pngs)
