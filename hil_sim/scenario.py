"""Scenario files (format v2, /work/briefs/scenario-format.md): a pump room's story as YAML.

A scenario is a mapping (all keys but ``events`` optional)::

    name: low-pressure-complaint
    description: "An evening peak drops the top floor below 0.10 MPa; the operator raises the SP."
    duration_s: 600          # plant seconds the scenario lasts (the report's window)
    start_time: "18:30"      # plant clock at start
    speed: 5.0               # time compression: plant seconds per wall second
    seed: 7
    plant: {households: 260, riser: {height_m: 30}}   # PlantParams overrides (hil_sim/plant.py)
    demand: {factor: 1.0, peak_factor: 2.5, pattern: [24 factors], random_draws: true,
             day_speed: 1.0, leak_m3h: 0.1, peak_surge: 0.8}
    initial: {setpoint: 0.40, pump3.mode: 0}           # control-port ``set`` names at t = 0
    events:
      - {name: peak, at: 60, cmd: set, name_: demand_factor, value: 2.5}
      - {name: trip, when: {point: pump2.running, op: "==", value: true}, fault: drive_trip,
         target: pump2, code: 11, for_s: 30}
    expect: [...]            # passed through as data; checked by ``hil-sim report``

An event fires once: at plant time ``at`` (s since start), or on the first step where its
``when`` condition holds on :meth:`hil_sim.sim.Simulator.truth` (checked from ``at`` on when both
are given). It is a control-port command (``cmd``, :mod:`hil_sim.commands`; ``name_`` stands
for the command's own ``name`` key, which the event's ``name`` shadows) or a fault-catalogue
entry (``fault``, :mod:`hil_sim.faults`). ``for_s`` undoes a fault that long after it fired.
The old format, a bare list of ``{at, cmd, ...}`` items, is still accepted.

Shipped scenarios live in ``hil_sim/scenarios/NAME.yaml``; :func:`load_scenario` takes a path
or a shipped name.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hil_sim.faults import CATALOGUE, FaultParamError

SHIPPED_DIR = Path(__file__).resolve().parent / "scenarios"
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
TOP_KEYS = frozenset(
    {"name", "description", "duration_s", "start_time", "speed", "seed", "plant", "demand",
     "initial", "events", "expect"}
)  # fmt: skip
DEMAND_KEYS = frozenset(
    {"factor", "peak_factor", "pattern", "random_draws", "day_speed", "leak_m3h", "peak_surge"}
)
EVENT_KEYS = frozenset({"name", "at", "when", "for_s", "cmd", "fault"})
COMMANDS = frozenset(
    {"ping", "stats", "reset_stats", "truth", "fault", "clear_faults", "raw", "raw_ua", "freeze",
     "set"}
)  # fmt: skip
"""Control-port commands (:func:`hil_sim.commands.execute`); their arguments are checked when
the event fires (a refused one is logged and recorded as ``NAME:failed``)."""


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, item and key."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``point op value`` on the simulator's truth (``point`` a :meth:`Simulator.truth` key)."""

    point: str
    op: str
    value: float | int | bool | str

    def holds(self, truth: Mapping[str, Any]) -> bool:
        """Whether the condition holds on ``truth`` (False while the point is not served yet,
        e.g. an OPC UA value before the server's first update)."""
        if self.point not in truth:
            return False
        value = truth[self.point]
        try:
            return bool(OPS[self.op](value, self.value))
        except TypeError:  # e.g. a string compared with < to a number: never true
            return False


@dataclass(frozen=True, slots=True)
class Event:
    """One scripted event.

    Attributes:
        index: position in the file's ``events`` list (for messages).
        name: unique name (default ``"<index>:<cmd or fault>"``); expectations refer to it.
        at_s: plant time (s) it fires at, or from which its condition is checked; None with a
            condition means from the start.
        when: state trigger, or None for a timed event.
        for_s: undo after this many plant seconds (None: never).
        command: a control-port command object (with its own ``name`` key), or None.
        fault: ``{"fault": name, param: value ...}`` of :mod:`hil_sim.faults`, or None.
    """

    index: int
    name: str
    at_s: float | None
    when: Condition | None
    for_s: float | None
    command: dict[str, Any] | None
    fault: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed, validated scenario (see the module docstring). ``start_time_s``: time of day
    at start, s since midnight; ``speed``, ``seed``, ``start_time_s`` None where not given."""

    source: str
    name: str
    description: str = ""
    duration_s: float | None = None
    start_time_s: float | None = None
    speed: float | None = None
    seed: int | None = None
    plant: dict[str, Any] = field(default_factory=dict)
    demand: dict[str, Any] = field(default_factory=dict)
    initial: dict[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    expect: tuple[dict[str, Any], ...] = ()


def _number(where: str, value: Any, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{where}: expected a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{where}: must be >= {minimum}, got {value!r}")
    return float(value)


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ScenarioError(f"{where}: expected a mapping with string keys")
    return dict(value)


def parse_time_of_day(where: str, value: Any) -> float:
    """``"HH:MM"`` (or ``"HH:MM:SS"``) → seconds since midnight. Raises ScenarioError."""
    try:
        parts = [int(p) for p in str(value).split(":")]
        if len(parts) not in (2, 3) or not (0 <= parts[0] < 24 and 0 <= parts[1] < 60):
            raise ValueError
        return parts[0] * 3600.0 + parts[1] * 60.0 + (parts[2] if len(parts) == 3 else 0)
    except ValueError:
        raise ScenarioError(f'{where}: expected "HH:MM", got {value!r}') from None


def _condition(where: str, value: Any) -> Condition:
    when = _mapping(where, value)
    if set(when) != {"point", "op", "value"}:
        raise ScenarioError(f"{where}: needs exactly the keys point, op, value; got {sorted(when)}")
    if not isinstance(when["point"], str):
        raise ScenarioError(f"{where}.point: expected a truth key (string)")
    if when["op"] not in OPS:
        raise ScenarioError(f"{where}.op: {when['op']!r} is not one of {' '.join(OPS)}")
    if not isinstance(when["value"], bool | int | float | str):
        raise ScenarioError(f"{where}.value: expected a number, bool or string")
    return Condition(when["point"], when["op"], when["value"])


def _event(source: str, i: int, item: Any, old_format: bool) -> Event:
    where = f"{source}: events[{i}]"
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: expected a mapping")
    if old_format:  # a bare control-port command plus ``at``: its ``name`` is the command's
        item = {**{k: v for k, v in item.items() if k != "name"}, "name_": item.get("name")}
        if item["name_"] is None:
            del item["name_"]
    at = item.get("at")
    when = item.get("when")
    if at is None and when is None:
        raise ScenarioError(f"{where}: needs 'at' (plant seconds) or 'when' (a condition)")
    at_s = None if at is None else _number(f"{where}.at", at)
    cond = None if when is None else _condition(f"{where}.when", when)
    for_s = None if item.get("for_s") is None else _number(f"{where}.for_s", item["for_s"])
    if for_s is not None and for_s <= 0:
        raise ScenarioError(f"{where}.for_s: must be > 0")
    has_cmd, has_fault = "cmd" in item, "fault" in item
    if has_cmd == has_fault:
        raise ScenarioError(f"{where}: needs exactly one of 'cmd' and 'fault'")
    rest = {k: v for k, v in item.items() if k not in EVENT_KEYS}
    command = fault = None
    if has_cmd:
        if not isinstance(item["cmd"], str):
            raise ScenarioError(f"{where}.cmd: expected a string")
        if item["cmd"] not in COMMANDS:
            known = ", ".join(sorted(COMMANDS))
            raise ScenarioError(f"{where}.cmd: unknown command {item['cmd']!r}; known: {known}")
        command = {"cmd": item["cmd"], **{k.removesuffix("_"): v for k, v in rest.items()}}
        if command["cmd"] == "set" and (
            not isinstance(command.get("name"), str) or "value" not in command
        ):
            raise ScenarioError(f"{where}: a set command needs 'name_' (what to set) and 'value'")
        if for_s is not None:
            raise ScenarioError(f"{where}.for_s: only a fault can be undone; use a later 'set'")
        kind = item["cmd"]
    else:
        spec = CATALOGUE.get(item["fault"]) if isinstance(item["fault"], str) else None
        if spec is None:
            raise ScenarioError(
                f"{where}.fault: unknown fault {item['fault']!r}; known: {', '.join(CATALOGUE)}"
            )
        try:
            fault = {"fault": item["fault"], **spec.check_params(rest)}
        except FaultParamError as exc:
            raise ScenarioError(f"{where}.{exc.key}: {exc}") from None
        kind = item["fault"]
    name = item.get("name")
    if name is None:
        name = f"{i}:{kind}"
    elif not isinstance(name, str) or not name or name.endswith(":end"):
        raise ScenarioError(f"{where}.name: expected a non-empty string not ending in ':end'")
    return Event(i, name, at_s, cond, for_s, command, fault)


def _demand(source: str, value: Any) -> dict[str, Any]:
    demand = _mapping(f"{source}: demand", value)
    for key, v in demand.items():
        where = f"{source}: demand.{key}"
        if key not in DEMAND_KEYS:
            raise ScenarioError(f"{where}: unknown key; known: {', '.join(sorted(DEMAND_KEYS))}")
        if key == "pattern":
            if not isinstance(v, list) or len(v) != 24:
                raise ScenarioError(f"{where}: expected 24 hourly factors")
            demand[key] = tuple(_number(f"{where}[{h}]", f) for h, f in enumerate(v))
        elif key == "random_draws":
            if not isinstance(v, bool):
                raise ScenarioError(f"{where}: expected true or false")
        else:
            demand[key] = _number(where, v)
    if "peak_factor" in demand and demand["peak_factor"] <= 1.0:
        raise ScenarioError(f"{source}: demand.peak_factor: must be > 1")
    return demand


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate parsed YAML (a v2 mapping or an old-format list) and return the scenario.

    Plant overrides and ``initial`` names are checked against the plant when the simulator
    applies them (:mod:`hil_sim.scenario_run`); everything else here.

    Raises:
        ScenarioError: the message names ``source``, the item index and the key.
    """
    if data is None:
        data = []
    if isinstance(data, list):
        events = tuple(_event(source, i, item, True) for i, item in enumerate(data))
        return Scenario(source=source, name=Path(source).stem, events=events)
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping (format v2) or a list of actions")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ScenarioError(
            f"{source}: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(TOP_KEYS))}"
        )
    raw_events = data.get("events")
    if not isinstance(raw_events, list):
        raise ScenarioError(f"{source}: events: expected a list")
    events = tuple(_event(source, i, item, False) for i, item in enumerate(raw_events))
    seen: set[str] = set()
    for e in events:
        if e.name in seen:
            raise ScenarioError(f"{source}: events[{e.index}].name: {e.name!r} is not unique")
        seen.add(e.name)
    expect = data.get("expect") or []
    if not isinstance(expect, list) or not all(isinstance(x, dict) for x in expect):
        raise ScenarioError(f"{source}: expect: expected a list of mappings")
    name = data.get("name", Path(source).stem)
    description = data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise ScenarioError(f"{source}: name and description must be strings")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ScenarioError(f"{source}: seed: expected an integer")
    speed = data.get("speed")
    return Scenario(
        source=source,
        name=name,
        description=description,
        duration_s=None
        if data.get("duration_s") is None
        else _number(f"{source}: duration_s", data["duration_s"]),
        start_time_s=None
        if data.get("start_time") is None
        else parse_time_of_day(f"{source}: start_time", data["start_time"]),
        speed=None if speed is None else _number(f"{source}: speed", speed, 0.01),
        seed=seed,
        plant=_mapping(f"{source}: plant", data.get("plant")),
        demand=_demand(source, data.get("demand")),
        initial=_mapping(f"{source}: initial", data.get("initial")),
        events=events,
        expect=tuple(dict(x) for x in expect),
    )


def shipped_names() -> list[str]:
    """Names of the scenarios shipped in ``hil_sim/scenarios/`` (file stems), sorted."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def resolve(path_or_name: str | Path) -> Path:
    """A path to an existing file, else the shipped scenario of that name.

    Raises:
        ScenarioError: neither exists (the message lists the shipped names).
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    shipped = SHIPPED_DIR / f"{path_or_name}.yaml"
    if shipped.is_file():
        return shipped
    raise ScenarioError(
        f"{path_or_name}: no such file and no shipped scenario of that name "
        f"(shipped: {', '.join(shipped_names())})"
    )


def load_scenario(path_or_name: str | Path) -> Scenario:
    """Read and validate a scenario file or shipped scenario (see :func:`resolve`).

    Raises:
        ScenarioError: not found, bad YAML or an invalid item (named).
        OSError: the file cannot be read.
    """
    path = resolve(path_or_name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    return parse_scenario(data, str(path))
