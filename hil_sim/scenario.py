"""Scripted faults: a YAML list of timed control-port commands.

Each item is a control-port command (see :mod:`hil_sim.commands`) plus ``at``, the plant time in
seconds at which to apply it (plant time runs ``--speed`` times wall time and stops while frozen)::

    - {at: 30, cmd: set, name: demand_factor, value: 2.0}
    - {at: 60, cmd: fault, unit: 12, transport: rtu, silent: true}
    - {at: 90, cmd: clear_faults}
    - {at: 120, cmd: set, name: suction_dip_mpa, value: 0.19}   # mains collapse → dry run
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Action:
    """One scripted command. ``at_s`` plant time (s); ``command`` the control-port object."""

    at_s: float
    command: dict[str, Any]


def parse_scenario(data: Any, source: str = "<scenario>") -> list[Action]:
    """Validate the parsed YAML and return the actions sorted by time.

    Raises:
        ValueError: not a list, or an item without a numeric ``at`` ≥ 0 and a string ``cmd``;
            the message names the source and the item index.
    """
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a list of actions")
    actions = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"{source}: item {i}: expected a mapping")
        at = item.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
            raise ValueError(f"{source}: item {i}: 'at' must be a number of seconds >= 0")
        if not isinstance(item.get("cmd"), str):
            raise ValueError(f"{source}: item {i}: 'cmd' must be a string")
        actions.append(Action(float(at), {k: v for k, v in item.items() if k != "at"}))
    return sorted(actions, key=lambda a: a.at_s)


def load_scenario(path: str | Path) -> list[Action]:
    """Read and validate a scenario file. Raises OSError, yaml.YAMLError or ValueError."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_scenario(yaml.safe_load(text), str(path))
