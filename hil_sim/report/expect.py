"""A scenario's ``expect:`` items, checked against the truth and the uplink.

The items (contract: scenario file format v2, "Expectations"); each may have ``after: <event
name>`` (default: the start of the report window), which sets t0 to the first truth event of
that name; durations (``*_within_s``, ``within_s``) are plant seconds, turned into wall time by
the run's speed:

* ``{alarm: CODE, raised_within_s: S}`` — an alarm event with that code and state ``active``
  whose gateway time ``t`` lies in [t0, t0 + S]; its time to detection is ``t − t0``;
* ``{alarm: CODE, cleared_within_s: S}`` — the same with state ``cleared``;
* ``{no_alarm: CODE}`` — no ``active`` alarm event of that code in [t0, window end];
* ``{truth: KEY, above: X | below: X, within_s: S}`` — some truth value in [t0, t0 + S] is
  above (below) X; with ``always: true`` instead of ``within_s``: every truth value in
  [t0, window end] is. KEY is a key of ``Simulator.truth()`` (``p_out``, ``plant.p_index`` …)
  or an alias of :data:`TRUTH_ALIASES`;
* ``{uplink: data_loss, max: N}`` — at most N ``data_loss`` events;
* ``{uplink: coverage, point: P, min_fraction: F}`` (optional ``interval_s``) — coverage of P;
* ``{control: time_in_band, band_mpa: B, min_fraction: F}`` — fraction of states in band;
* ``{control: starts_per_hour, max: N}`` — most starts of one pump in any 60 min;
* ``{command: METHOD, result: CODE, within_s: S}`` — a request of that method seen on
  ``cmd/req`` whose ``result`` answer has that code, answered in [t0, t0 + S].

An item with an unknown or missing key raises :class:`ExpectationError` naming the scenario file
and the item's index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hil_sim.report.figures import Figures, control_quality, point_figures
from hil_sim.report.uplink import Uplink
from hil_sim.truth import Truth

TRUTH_ALIASES = {
    "index_pressure_mpa": "plant.p_index",
    "outlet_pressure_mpa": "p_out",
    "suction_pressure_mpa": "p_in",
    "flow_m3h": "flow",
}
"""Readable names the contract's examples use, for keys of ``Simulator.truth()``."""

_KEYS = {
    "alarm": ({"alarm"}, {"raised_within_s", "cleared_within_s"}, {"after"}),
    "no_alarm": ({"no_alarm"}, set(), {"after"}),
    "truth": ({"truth"}, {"above", "below"}, {"within_s", "always", "after"}),
    "uplink": ({"uplink"}, set(), {"max", "point", "min_fraction", "interval_s", "after"}),
    "control": ({"control"}, set(), {"band_mpa", "min_fraction", "max", "after"}),
    "command": ({"command"}, set(), {"result", "within_s", "after"}),
}


class ExpectationError(ValueError):
    """A malformed ``expect:`` item or scenario file; the message names file and item."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One expectation's verdict: the item as written, pass/fail and what was measured."""

    index: int
    item: dict[str, Any]
    passed: bool
    measured: str


@dataclass(frozen=True, slots=True)
class Scenario:
    """What the report needs of a scenario file: name, plant duration, expectations."""

    name: str
    duration_s: float | None
    expect: list[dict[str, Any]]
    source: str
    speed: float | None = None
    start_time: str | None = None
    """The scenario's own plant time of day at start, ``HH:MM`` (``None``: not given)."""


def load_scenario_expectations(path: str | Path) -> Scenario:
    """Read ``name``, ``duration_s`` and ``expect`` of a scenario file (v2; a v1 file, a bare
    list of commands, has no expectations) and validate every item's keys.

    Raises:
        OSError: unreadable file.
        hil_sim.scenario.ScenarioError: neither a file nor a shipped scenario's name.
        ExpectationError: bad YAML or a malformed item (names the file and the item index).
    """
    from hil_sim.scenario import resolve

    path = resolve(path)  # a file, or a shipped scenario's name (hil_sim/scenarios/NAME.yaml)
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExpectationError(f"{path}: not YAML: {exc}") from None
    if isinstance(doc, list) or doc is None:
        return Scenario(Path(path).stem, None, [], str(path))
    if not isinstance(doc, dict):
        raise ExpectationError(f"{path}: expected a mapping or a list")
    items = doc.get("expect") or []
    if not isinstance(items, list):
        raise ExpectationError(f"{path}: expect: must be a list")
    for i, item in enumerate(items):
        validate(item, f"{path}: expect[{i}]")
    duration, speed = doc.get("duration_s"), doc.get("speed")
    return Scenario(
        str(doc.get("name", Path(path).stem)),
        float(duration) if duration is not None else None,
        items,
        str(path),
        float(speed) if speed is not None else None,
        str(doc["start_time"]) if doc.get("start_time") is not None else None,
    )


def validate(item: Any, where: str) -> None:
    """Check one item's keys. Raises ExpectationError naming ``where``."""
    if not isinstance(item, dict):
        raise ExpectationError(f"{where}: expected a mapping, got {item!r}")
    kind = next((k for k in _KEYS if k in item), None)
    if kind is None:
        raise ExpectationError(f"{where}: no kind key (one of {sorted(_KEYS)}) in {item}")
    required, one_of, optional = _KEYS[kind]
    unknown = set(item) - required - one_of - optional
    if unknown:
        raise ExpectationError(f"{where}: unknown key(s) {sorted(unknown)} for a {kind} item")
    if one_of and len(one_of & set(item)) != 1:
        raise ExpectationError(f"{where}: {kind}: needs exactly one of {sorted(one_of)}")
    if kind == "truth" and ("within_s" in item) == bool(item.get("always")):
        raise ExpectationError(f"{where}: a truth item needs within_s or always: true")
    need = {
        ("uplink", "coverage"): {"point", "min_fraction"},
        ("uplink", "data_loss"): {"max"},
        ("control", "time_in_band"): {"min_fraction"},
        ("control", "starts_per_hour"): {"max"},
        ("command", None): {"result", "within_s"},
    }
    sub = item[kind] if kind in ("uplink", "control") else None
    if kind in ("uplink", "control") and (kind, sub) not in need:
        raise ExpectationError(f"{where}: unknown {kind} check {sub!r}")
    missing = need.get((kind, sub), set()) - set(item)
    if missing:
        raise ExpectationError(f"{where}: missing key(s) {sorted(missing)}")


class Checker:
    """Evaluates items against one run (truth, uplink, figures of the window)."""

    def __init__(self, truth: Truth, up: Uplink, fig: Figures) -> None:
        self.truth, self.up, self.fig = truth, up, fig
        self.speed = truth.speed() or 1.0

    def check(self, index: int, item: dict[str, Any]) -> Outcome:
        """One item's outcome; an ``after`` event that never fired fails the item."""
        try:
            t0 = self.truth.event_ms(item["after"]) if "after" in item else self.fig.start_ms
        except KeyError as exc:
            return Outcome(index, item, False, str(exc.args[0]))
        kind = next(k for k in _KEYS if k in item)
        handler: Callable[[dict[str, Any], int], tuple[bool, str]] = getattr(self, f"_{kind}")
        passed, measured = handler(item, t0)
        return Outcome(index, item, passed, measured)

    def _ms(self, plant_s: float) -> int:
        return int(plant_s / self.speed * 1000)

    def _alarm(self, item: dict[str, Any], t0: int) -> tuple[bool, str]:
        raised = "raised_within_s" in item
        within = float(item["raised_within_s" if raised else "cleared_within_s"])
        state = "active" if raised else "cleared"
        hits = [
            e
            for e in self.up.alarms(item["alarm"])
            if e.get("state") == state and t0 <= int(e["t"]) <= t0 + self._ms(within)
        ]
        if hits:
            return True, f"{state} after {(int(hits[0]['t']) - t0) / 1000 * self.speed:.1f} s"
        later = [
            e
            for e in self.up.alarms(item["alarm"])
            if e.get("state") == state and int(e["t"]) >= t0
        ]
        if later:
            return (
                False,
                f"{state} only after {(int(later[0]['t']) - t0) / 1000 * self.speed:.1f} s",
            )
        return False, f"never {state} after t0"

    def _no_alarm(self, item: dict[str, Any], t0: int) -> tuple[bool, str]:
        hits = [
            e
            for e in self.up.alarms(item["no_alarm"])
            if e.get("state") == "active" and t0 <= int(e["t"]) <= self.fig.stop_ms
        ]
        return not hits, f"raised {len(hits)} time(s)"

    def _truth(self, item: dict[str, Any], t0: int) -> tuple[bool, str]:
        key = TRUTH_ALIASES.get(item["truth"], item["truth"])
        series = [(t, v) for t, v in self.truth.series(key) if t >= t0]
        if not series:
            return False, f"no truth values of {key!r} after t0"
        above = "above" in item
        limit = float(item["above"] if above else item["below"])

        def ok(v: Any) -> bool:
            return float(v) > limit if above else float(v) < limit

        if item.get("always"):
            inside = [(t, v) for t, v in series if t <= self.fig.stop_ms]
            bad = [(t, v) for t, v in inside if not ok(v)]
            worst = (max if above else min)(float(v) for _, v in inside) if not bad else bad[0][1]
            if bad:
                at = (bad[0][0] - t0) / 1000 * self.speed
                return False, f"{key} = {float(worst):.4g} at {at:.1f} s"
            extreme = (min if above else max)(float(v) for _, v in inside)
            return True, f"{key} {'min' if above else 'max'} {extreme:.4g}"
        end = t0 + self._ms(float(item["within_s"]))
        hit = next(((t, v) for t, v in series if t <= end and ok(v)), None)
        if hit:
            return (
                True,
                f"{key} = {float(hit[1]):.4g} after {(hit[0] - t0) / 1000 * self.speed:.1f} s",
            )
        return False, f"{key} not {'above' if above else 'below'} {limit:g} within the time"

    def _uplink(self, item: dict[str, Any], t0: int) -> tuple[bool, str]:
        if item["uplink"] == "data_loss":
            n = sum(1 for e in self.up.data_loss() if int(e.get("t", 0)) >= t0)
            return n <= int(item["max"]), f"{n} data_loss event(s)"
        point = item["point"]
        samples = self.up.samples.get(point, [])
        pf = point_figures(
            point, samples, None, t0, self.fig.stop_ms, (self.fig.stop_ms - t0) / 1000.0
        )
        if "interval_s" in item:
            expected = max(
                math.floor((self.fig.stop_ms - t0) / 1000.0 / float(item["interval_s"])), 1
            )
            pf.coverage = min(pf.good / expected, 1.0)
        return pf.coverage >= float(item["min_fraction"]), f"coverage {pf.coverage:.3f}"

    def _control(self, item: dict[str, Any], t0: int) -> tuple[bool, str]:
        band = float(item.get("band_mpa", self.fig.band_mpa))
        in_band, _, worst, _, _ = control_quality(self.truth, t0, self.fig.stop_ms, band)
        if item["control"] == "time_in_band":
            if in_band is None:
                return False, "no outlet pressure/setpoint in the truth"
            return in_band >= float(item["min_fraction"]), f"{in_band:.3f} in ±{band:g} MPa"
        return worst <= int(item["max"]), f"{worst} start(s) of one pump in 60 min"

    def _command(self, item: dict[str, Any], t0: int) -> tuple[bool, str]:
        end = t0 + self._ms(float(item["within_s"]))
        ids = {i for i, r in self.up.requests.items() if r.get("method") == item["command"]}
        results = [
            r
            for r in self.up.responses
            if r.get("id") in ids and r.get("phase") == "result" and int(r.get("ts", r["r"])) >= t0
        ]
        ok = [
            r
            for r in results
            if r.get("code") == item["result"] and int(r.get("ts", r["r"])) <= end
        ]
        if ok:
            return (
                True,
                f"{item['result']} after {(int(ok[0].get('ts', ok[0]['r'])) - t0) / 1000:.1f} s",
            )
        codes = [r.get("code") for r in results]
        return False, f"{len(ids)} request(s); results {codes or 'none'}"


def evaluate(scenario: Scenario, truth: Truth, up: Uplink, fig: Figures) -> list[Outcome]:
    """Every item of the scenario checked, in file order."""
    checker = Checker(truth, up, fig)
    return [checker.check(i, item) for i, item in enumerate(scenario.expect)]
