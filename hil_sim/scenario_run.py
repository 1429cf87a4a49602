"""Playing a :class:`~hil_sim.scenario.Scenario` on a running simulator.

:func:`plant_params` turns the scenario's ``plant`` and ``demand`` overrides into
:class:`~hil_sim.plant.PlantParams`; :class:`ScenarioRunner` applies ``initial``, then after every
simulator step fires due timed events, checks state triggers on :meth:`Simulator.truth`, ticks the
faults in force and undoes those whose ``for_s`` ran out. Every event that fires, fails or ends
goes to ``sim.note_event`` (the ground truth's event log).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from typing import TYPE_CHECKING, Any

from hil_sim import commands
from hil_sim.devices.opcua_server import UA_POINTS
from hil_sim.faults import CATALOGUE, Active, FaultApplyError
from hil_sim.faults.comms import units_of
from hil_sim.faults.plant import pump_index
from hil_sim.faults.sensor import map_of
from hil_sim.plant import PlantParams
from hil_sim.scenario import Event, Scenario, ScenarioError

if TYPE_CHECKING:
    from hil_sim.sim import Simulator

log = logging.getLogger(__name__)

_PARAM_DEMAND = {"pattern": "pattern", "random_draws": "random_draws",
                 "leak_m3h": "base_leak_m3h", "peak_surge": "peak_surge"}  # fmt: skip
"""``demand:`` keys that are plant parameters (the others, ``factor`` and ``day_speed``, are
set on the running plant)."""


def _replace(where: str, obj: Any, overrides: dict[str, Any]) -> Any:
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in names:
            raise ScenarioError(f"{where}.{key}: unknown; known: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ScenarioError(f"{where}.{key}: expected a mapping of its fields")
            changes[key] = _replace(f"{where}.{key}", current, value)
        elif isinstance(current, bool) or isinstance(value, bool):
            if type(value) is not type(current):
                raise ScenarioError(f"{where}.{key}: expected {type(current).__name__}")
            changes[key] = value
        elif isinstance(current, int | float):
            if not isinstance(value, int | float):
                raise ScenarioError(f"{where}.{key}: expected a number, got {value!r}")
            changes[key] = type(current)(value)
        else:
            changes[key] = value
    return dataclasses.replace(obj, **changes)


def scaled_pattern(pattern: tuple[float, ...], peak_factor: float) -> tuple[float, ...]:
    """The hourly pattern reshaped so that its highest factor is ``peak_factor`` (Kh,
    domain.md §5.2) with the same sum (the day's volume): f' = c·f^γ, c normalising the sum,
    γ found by bisection (γ > 1 sharpens the peaks, γ < 1 flattens them; no factor turns
    negative). Raises ScenarioError when Kh is out of reach (≤ 1, or ≥ 24 / hours at the
    peak)."""
    n, total = len(pattern), sum(pattern)
    if max(pattern) <= min(pattern) or not 1.0 < peak_factor < n * 0.999 or min(pattern) < 0:
        raise ScenarioError(f"demand.peak_factor: {peak_factor} out of reach for this pattern")

    def peak(gamma: float) -> float:
        powered = [f**gamma for f in pattern]
        return max(powered) * total / sum(powered)

    lo, hi = 0.0, 1.0
    while peak(hi) < peak_factor:  # peak() rises with γ towards total / (hours at the max)
        lo, hi = hi, hi * 2.0
        if hi > 1e3:
            raise ScenarioError(f"demand.peak_factor: {peak_factor} out of reach")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if peak(mid) < peak_factor else (lo, mid)
    powered = [f**hi for f in pattern]
    scale = total / sum(powered)
    return tuple(f * scale for f in powered)


def plant_params(scenario: Scenario, start_time_of_day_s: float | None) -> PlantParams:
    """PlantParams with the scenario's ``plant`` and ``demand`` overrides. Raises ScenarioError
    naming the file and the key."""
    base = PlantParams()
    if start_time_of_day_s is not None:
        base = dataclasses.replace(base, start_time_of_day_s=start_time_of_day_s)
    params = _replace(f"{scenario.source}: plant", base, scenario.plant)
    demand = {_PARAM_DEMAND[k]: v for k, v in scenario.demand.items() if k in _PARAM_DEMAND}
    params = dataclasses.replace(params, **demand)
    if "peak_factor" in scenario.demand:
        try:
            pattern = scaled_pattern(params.pattern, scenario.demand["peak_factor"])
        except ScenarioError as exc:
            raise ScenarioError(f"{scenario.source}: {exc}") from None
        params = dataclasses.replace(params, pattern=pattern)
    return params


def _check_target(sim: Simulator, group: str, prm: dict[str, Any]) -> None:
    if group == "sensor":
        map_of(sim, prm["target"])
    elif group == "comms" and "target" in prm:
        units_of(sim, prm["target"])
    elif group == "actuator" and "target" in prm and prm["target"] != "bypass":
        pump_index(sim, prm["target"])


class ScenarioRunner:
    """Plays ``scenario`` on ``sim`` (see the module docstring).

    Construction applies the ``demand`` run-time keys and ``initial`` and checks every trigger's
    truth key and every fault's target against ``sim``; call it once the devices exist.

    Raises:
        ScenarioError: an unknown ``initial`` name or value, trigger point or fault target
            (the message names the file, the item index and the key).
    """

    def __init__(self, sim: Simulator, scenario: Scenario, seed: int = 0) -> None:
        self.sim = sim
        self.scenario = scenario
        self.rng = random.Random(seed + 0x5CE)
        src = scenario.source
        for key, name in (("factor", "demand_factor"), ("day_speed", "day_speed")):
            if key in scenario.demand:
                self._set(f"{src}: demand.{key}", name, scenario.demand[key])
        for key, value in scenario.initial.items():
            self._set(f"{src}: initial.{key}", key, value)
        sim.refresh()
        truth = set(sim.truth()) | {p.name for p in UA_POINTS}  # OPC UA: served once started
        for e in scenario.events:
            if e.when is not None and e.when.point not in truth:
                raise ScenarioError(
                    f"{src}: events[{e.index}].when.point: {e.when.point!r} is not a truth key "
                    f"(e.g. {', '.join(sorted(truth)[:8])} …)"
                )
            cmd = e.command or {}
            if cmd.get("cmd") == "set":
                problem = commands.set_name_problem(sim, cmd.get("name"))
                if problem is not None:
                    raise ScenarioError(f"{src}: events[{e.index}].name_: {problem}")
            if e.fault is not None:
                try:
                    _check_target(sim, CATALOGUE[e.fault["fault"]].group, e.fault)
                except FaultApplyError as exc:
                    raise ScenarioError(f"{src}: events[{e.index}].target: {exc}") from None
        self.timed = sorted((e for e in scenario.events if e.when is None), key=_at)
        self.triggered = [e for e in scenario.events if e.when is not None]
        self.active: list[tuple[Event, Active, float | None]] = []

    def _set(self, where: str, name: str, value: Any) -> None:
        try:
            commands.execute(self.sim, {"cmd": "set", "name": name, "value": value})
        except commands.CommandError as exc:
            raise ScenarioError(f"{where}: {exc}") from None

    @property
    def done(self) -> bool:
        """No event left to fire and no fault in force."""
        return not (self.timed or self.triggered or self.active)

    def step(self) -> None:
        """Run after each simulator step: fire, tick, end (in that order)."""
        now = self.sim.plant.t_s
        while self.timed and _at(self.timed[0]) <= now:
            self._fire(self.timed.pop(0))
        if self.triggered:
            truth = self.sim.truth()
            for e in list(self.triggered):
                assert e.when is not None
                if (e.at_s is None or now >= e.at_s) and e.when.holds(truth):
                    self.triggered.remove(e)
                    self._fire(e)
        for _, active, _ in self.active:
            if active.tick is not None:
                active.tick()
        for item in [a for a in self.active if a[2] is not None and a[2] <= now]:
            self.active.remove(item)
            event, active, _ = item
            active.undo()
            self.sim.note_event(f"{event.name}:end", {"fault": (event.fault or {}).get("fault")})
            log.info("scenario t=%.1f s: %s ended", now, event.name)

    def _fire(self, e: Event) -> None:
        sim = self.sim
        try:
            if e.command is not None:
                answer = commands.execute(sim, e.command)
                sim.note_event(e.name, dict(e.command))
                log.info("scenario t=%.1f s: %s %s → %s", sim.plant.t_s, e.name, e.command, answer)
                return
            assert e.fault is not None
            spec = CATALOGUE[e.fault["fault"]]
            params = {k: v for k, v in e.fault.items() if k != "fault"}
            active = spec.apply(sim, params, self.rng)
        except (commands.CommandError, FaultApplyError) as exc:
            sim.note_event(f"{e.name}:failed", {"error": str(exc)})
            log.error("%s: events[%d] (%s) failed: %s", self.scenario.source, e.index, e.name, exc)
            return
        ends = [t for t in (active.ends_at_s,) if t is not None]
        if e.for_s is not None:
            ends.append(sim.plant.t_s + e.for_s)
        sim.note_event(e.name, {**e.fault, **({"for_s": e.for_s} if e.for_s else {})})
        self.active.append((e, active, min(ends) if ends else None))
        log.info("scenario t=%.1f s: %s %s", sim.plant.t_s, e.name, e.fault)


def _at(e: Event) -> float:
    return e.at_s or 0.0
