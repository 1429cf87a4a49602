"""Whole-config checks of ``alarms:`` against ``devices:`` (after each item passed its schema).

Refused, each on the YAML node to change: a rule on a point that does not exist; a rule of the
wrong kind for the point's type (a number compared on a boolean point, a state compared on a
floating-point one, a fault code that is not an integer register); a low limit at or above a
high limit of the same point (``low`` ≥ ``high``, ``low_low`` > ``low``, ``high`` >
``high_high``); two rules with one id; a ``frozen`` rule's ``moving`` point that does not exist;
a fault map found neither in ``<config folder>/faultmaps/`` nor among the shipped ones; a
group whose cause is no rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from agent.config.alarms import LIMIT_KINDS, VALUE_KINDS, AlarmRule
from agent.config.checks import CheckedDevice, _Ctx
from agent.config.problems import Path_, Positions, Problem
from agent.config.schema import ModbusPointConfig, PointCommon

_INTEGER_TYPES = {"int16", "uint16", "int32", "uint32", "int64", "uint64"}
_ORDER = ("low_low", "low", "high", "high_high")
"""Limit kinds from the lowest limit to the highest: a low-side limit must be below every
high-side one (else some value raises both), and ``low_low`` ≤ ``low``, ``high`` ≤
``high_high``."""
FAULTMAPS_DIR = "faultmaps"
"""Fault maps live in this folder beside the configuration file..."""
SHIPPED_FAULTMAPS = Path(__file__).resolve().parents[1] / FAULTMAPS_DIR
"""... or, when not there, among the maps shipped with the agent (package data
``agent/faultmaps/*.yaml``; ``config/faultmaps`` in the checkout links to it)."""


def fault_map_path(name: str, config_dir: Path) -> Path | None:
    """Where fault map ``name`` is: ``<config_dir>/faultmaps/<name>.yaml``, else the shipped
    one; ``None`` when neither exists."""
    for folder in (config_dir / FAULTMAPS_DIR, SHIPPED_FAULTMAPS):
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def check_alarms(
    devices: Sequence[CheckedDevice],
    data: Any,
    positions: Positions,
    base_dir: Path | None = None,
) -> list[Problem]:
    """Problems of ``alarms:`` (see the module docstring). ``base_dir``: the configuration
    file's folder (fault maps are looked up in its ``faultmaps/``; not checked when None)."""
    section = data.get("alarms") if isinstance(data, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("points"), dict):
        return []
    ctx = _Ctx(data, positions)
    points: dict[str, PointCommon] = {p.name: p for d in devices for _, p in d.points}
    if not points:
        return []  # no device passed its schema: that is the problem to fix first
    problems: list[Problem] = []
    ids: dict[str, Path_] = {}
    for pname, raw_rules in section["points"].items():
        ppath: Path_ = ("alarms", "points", pname)
        point = points.get(pname) if isinstance(pname, str) else None
        if point is None and isinstance(pname, str) and ctx.positions.unresolved_name(pname):
            continue  # maybe a point of a device whose profile is unreadable: reported there
        if point is None:
            msg = f"no point named '{pname}' in devices"
            close = [n for n in points if str(pname).lower() == n.lower()]
            if close:
                msg += f" (did you mean '{close[0]}'?)"
            problems.append(ctx.positions.key(ppath).problem(f"alarms.points: {msg}"))
            continue
        rules = _valid_rules(raw_rules)
        if getattr(point, "write_only", False) and rules:
            problems.append(
                ctx.positions.key(ppath).problem(
                    f"alarms.points: '{pname}' is write_only: it is never polled, so no rule on"
                    " it could ever see a sample (put the rule on the point that reads it back)"
                )
            )
            continue
        for j, rule in rules:
            rpath: Path_ = (*ppath, j)
            rid = f"{pname}.{rule.suffix}"
            if rid in ids:
                where = ctx.where(ids[rid])
                problems.append(ctx.at(rpath, f"duplicate alarm id '{rid}' (first at {where})"))
            ids.setdefault(rid, rpath)
            problems += _type_problems(ctx, rpath, point, rule)
            if rule.moving is not None and rule.moving not in points:
                problems.append(
                    ctx.at((*rpath, "moving"), f"no point named '{rule.moving}' in devices")
                )
            if rule.fault_map is not None and base_dir is not None:
                if fault_map_path(rule.fault_map, base_dir) is None:
                    problems.append(
                        ctx.at(
                            (*rpath, "fault_map"),
                            f"no fault map {FAULTMAPS_DIR}/{rule.fault_map}.yaml (beside the"
                            " config file or shipped in config/faultmaps/)",
                        )
                    )
        problems += _order_problems(ctx, ppath, rules)
    groups = section.get("groups")
    for i, g in enumerate(groups if isinstance(groups, list) else []):
        cause = g.get("cause") if isinstance(g, dict) else None
        if isinstance(cause, str) and not any(fnmatchcase(r, cause) for r in ids):
            problems.append(ctx.at(("alarms", "groups", i, "cause"), f"no alarm id '{cause}'"))
    return problems


def _valid_rules(raw: Any) -> list[tuple[int, AlarmRule]]:
    out = []
    for j, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            out.append((j, AlarmRule.model_validate(item)))
        except ValueError:
            continue  # reported by the schema
    return out


def _type_problems(
    ctx: _Ctx, path: Path_, point: PointCommon, rule: AlarmRule
) -> Iterator[Problem]:
    """The rule's kind against the point's data type (known for Modbus points only; an OPC UA
    variable's type is known only at run time)."""
    if not isinstance(point, ModbusPointConfig):
        return
    dtype = point.dtype
    if dtype == "bool" and rule.kind in VALUE_KINDS:
        yield ctx.at(
            (*path, "kind"),
            f"'{rule.kind}' compares numbers, but '{point.name}' is a bool point (use kind: state)",
        )
    elif rule.kind == "state" and dtype.startswith("float"):
        yield ctx.at(
            (*path, "kind"),
            f"'state' compares exact values, but '{point.name}' is {dtype} (use a limit rule)",
        )
    elif rule.kind == "state" and dtype == "bool" and not isinstance(rule.state, bool | None):
        yield ctx.at((*path, "state"), f"'{point.name}' is a bool point: state must be true/false")
    elif rule.kind == "fault" and dtype not in _INTEGER_TYPES:
        yield ctx.at(
            (*path, "kind"), f"a fault code is an integer register; '{point.name}' is {dtype}"
        )


def _order_problems(
    ctx: _Ctx, ppath: Path_, rules: list[tuple[int, AlarmRule]]
) -> Iterator[Problem]:
    limits: dict[str, tuple[int, float]] = {}
    for j, r in rules:
        if r.kind in LIMIT_KINDS and r.limit is not None and r.name is None:
            limits.setdefault(r.kind, (j, r.limit))
    for a, lower in enumerate(_ORDER):
        for upper in _ORDER[a + 1 :]:
            if lower not in limits or upper not in limits:
                continue
            (jl, lo), (ju, hi) = limits[lower], limits[upper]
            strict = lower.startswith("low") and upper.startswith("high")
            if lo > hi or (strict and lo == hi):
                yield ctx.at(
                    (*ppath, max(jl, ju), "limit"),
                    f"{lower} limit {lo:g} is not below the {upper} limit {hi:g}",
                )
