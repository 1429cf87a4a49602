"""Device profiles: reusable register maps a site config names instead of listing every point.

A profile is a YAML file ``<name>.yaml`` (``config/profiles/`` in the checkout, shipped inside the
package as ``agent/profiles/``): the device's points with their register, address, type, word
order, scale, unit, limits, writable flag and enumerations (fault codes, states), the device
defaults its manual implies (``max_read_registers``, ``addressing``…), the manual sections it
follows (``sources``) and, for ``pumproom-agent scan``, how to recognise the device
(``identify``). A site config uses one so::

    - name: vfd1
      profile: invt-gd200a          # a file profiles/invt-gd200a.yaml next to the site config,
      transport: modbus-rtu         # else the shipped one
      port: /dev/ttyUSB0
      unit_id: 11
      prefix: pump1.                # site point name = prefix + the profile's point name
      overrides:                    # per profile point: any point key, e.g. a new name or bounds
        freq_ref: {valid_max: 48}
      points: []                    # extra site-specific points (optional)

:func:`expand_profiles` turns such a device into a plain one (points listed) *before* ``--set``
overrides and validation, so every later stage, ``--set devices.vfd1.points.pump1.freq.scale=…``
included, sees ordinary points. A problem inside a profile's point is reported at the profile
file's line; a problem in an override at the site file's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config.messages import suggest
from agent.config.problems import ConfigError, Path_, Positions, Problem
from agent.config.yaml_loader import load_yaml

PACKAGED = Path(__file__).resolve().parent.parent / "profiles"
"""The profiles shipped with the agent (package data ``agent/profiles/*.yaml``)."""

_PROFILE_KEYS = {"profile", "title", "kind", "sources", "device", "identify", "points"}
_DEVICE_KEYS = {
    "timeout_s", "poll_interval_s", "max_read_registers", "max_read_bits", "max_gap",
    "addressing", "baudrate", "parity", "stopbits", "bytesize",
}  # fmt: skip
"""Device keys a profile may default (a site device's own value wins)."""
_SERIAL_KEYS = {"baudrate", "parity", "stopbits", "bytesize"}
_DOC_KEYS = {"source", "alarms"}
"""Point keys that are not point config: ``source`` documents, ``alarms`` are the point's
default alarm rules (moved to the site's ``alarms.points``, see :func:`expand_profiles`)."""


@dataclass(frozen=True, slots=True)
class IdentifyRule:
    """One read that helps recognise a device (``identify:`` in a profile).

    Attributes:
        register: ``holding`` or ``input``.
        address: 0-based PDU address.
        one_of: accepted raw uint16 values; empty: any answer (no exception) will do.
        bits_set: these bits must be set in the raw value.
        equals_unit: the register holds the device's own unit id (a slave-address register).
    """

    register: str
    address: int
    one_of: tuple[int, ...] = ()
    bits_set: int = 0
    equals_unit: bool = False

    def accepts(self, raw: int, unit_id: int) -> bool:
        """Whether the raw uint16 ``raw`` read at ``unit_id`` fits this rule."""
        if self.one_of and raw not in self.one_of:
            return False
        if self.equals_unit and raw != unit_id:
            return False
        return raw & self.bits_set == self.bits_set


@dataclass(frozen=True, slots=True)
class Profile:
    """A loaded profile file.

    Attributes:
        name: the profile's name (its file name without ``.yaml``).
        title: one line naming the device family.
        kind: ``vfd``, ``flow-meter``, ``pressure-transmitter``, ``analyser``, ``cabinet``.
        sources: manual sections and domain.md references the map follows.
        device: device defaults (``max_read_registers``…).
        points: the raw point mappings (``name`` is the profile's own point name).
        identify: reads that recognise the device (see :class:`IdentifyRule`).
        path: the file it came from.
        positions: positions of the file's nodes (for problems).
    """

    name: str
    title: str
    kind: str
    sources: tuple[str, ...]
    device: dict[str, Any]
    points: list[dict[str, Any]]
    identify: tuple[IdentifyRule, ...]
    path: Path
    positions: Positions = field(repr=False)


def search_dirs(config_file: str | Path | None) -> list[Path]:
    """Where profiles are looked up, first match wins: ``profiles/`` beside the site config
    (a site's own or changed profiles), then the shipped ones."""
    dirs = []
    if config_file is not None:
        dirs.append(Path(config_file).resolve().parent / "profiles")
    dirs.append(PACKAGED)
    return dirs


def available(dirs: list[Path] | None = None) -> list[str]:
    """Names of every profile found in ``dirs`` (default: the shipped ones), sorted."""
    names = set()
    for d in dirs or [PACKAGED]:
        if d.is_dir():
            names |= {p.stem for p in d.glob("*.yaml")}
    return sorted(names)


def load(name: str, dirs: list[Path] | None = None) -> Profile:
    """Load profile ``name`` from the first of ``dirs`` (default: the shipped ones) that has it.

    Raises:
        KeyError: no such profile (the message lists the known ones).
        ConfigError: the file is not valid YAML or not a profile (problems name its lines).
    """
    dirs = dirs or [PACKAGED]
    for d in dirs:
        path = d / f"{name}.yaml"
        if path.is_file():
            return _parse(name, path)
    raise KeyError(name)


def load_all(dirs: list[Path] | None = None) -> list[Profile]:
    """Every profile in ``dirs`` (default: the shipped ones)."""
    return [load(n, dirs) for n in available(dirs)]


def _parse(name: str, path: Path) -> Profile:
    data, pos = load_yaml(path.read_text(encoding="utf-8"), str(path))
    problems = []
    if not isinstance(data, dict):
        raise ConfigError([pos.value(()).problem("a profile is a mapping with points:")])
    for key in data:
        if key not in _PROFILE_KEYS:
            msg = f"unknown profile key '{key}'{suggest(key, _PROFILE_KEYS)}"
            problems.append(pos.key((key,)).problem(msg))
    if data.get("profile") != name:
        problems.append(pos.value(("profile",)).problem(f"profile: must be '{name}' (file name)"))
    points = data.get("points")
    if not isinstance(points, list) or not points:
        problems.append(pos.value(("points",)).problem("points: a non-empty list"))
        points = []
    for j, p in enumerate(points):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            problems.append(pos.value(("points", j)).problem("each point needs a name"))
    device = data.get("device") or {}
    for key in device if isinstance(device, dict) else ["device"]:
        if key not in _DEVICE_KEYS:
            problems.append(pos.key(("device", key)).problem(f"device: cannot default '{key}'"))
    rules = []
    for k, r in enumerate(data.get("identify") or []):
        try:
            rules.append(
                IdentifyRule(
                    r["register"],
                    int(r["address"]),
                    tuple(r.get("one_of", ())),
                    int(r.get("bits_set", 0)),
                    bool(r.get("equals_unit", False)),
                )
            )
        except (KeyError, TypeError, ValueError):
            msg = "identify: each rule is {register, address[, one_of]}"
            problems.append(pos.value(("identify", k)).problem(msg))
    if problems:
        raise ConfigError(problems)
    sources = data.get("sources") or []
    return Profile(
        name=name,
        title=str(data.get("title", name)),
        kind=str(data.get("kind", "")),
        sources=tuple(str(s) for s in (sources if isinstance(sources, list) else [sources])),
        device=dict(device),
        points=points,
        identify=tuple(rules),
        path=path,
        positions=pos,
    )


def expand_profiles(data: Any, positions: Positions, config_file: str | None) -> list[Problem]:
    """Replace every ``profile:`` device in ``data`` (the parsed site YAML) by its points, in
    place, and move ``positions`` along; returns the problems found (an unknown profile, an
    override of a point the profile does not have, a broken profile file)."""
    devices = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devices, list):
        return []
    dirs = search_dirs(config_file)
    problems: list[Problem] = []
    loaded: dict[str, Profile] = {}  # three drives of one family: the file is read once
    defaults: list[tuple[str, Profile, int]] = []
    for i, item in enumerate(devices):
        if isinstance(item, dict) and "profile" in item:
            problems += _expand(item, ("devices", i), positions, dirs, loaded, defaults)
    _default_alarms(data, positions, defaults)
    return problems


def _unresolved(item: dict[str, Any], at: Path_, positions: Positions) -> None:
    """The profile of device ``at`` could not be read: take away the keys only a profile gives
    meaning to and note the device (see :attr:`Positions.unresolved`)."""
    prefix = item.pop("prefix", "")
    item.pop("overrides", None)
    positions.unresolved[int(at[1])] = prefix if isinstance(prefix, str) else ""


def _default_alarms(
    data: dict[str, Any], positions: Positions, defaults: list[tuple[str, Profile, int]]
) -> None:
    """The profiles' default alarm rules (a point's ``alarms:``) into ``alarms.points`` of a
    site that has an ``alarms:`` section (none: no alarms, as without profiles); rules the site
    gives for a point replace that point's defaults. Problems in a default rule are reported at
    the profile's line."""
    alarms = data.get("alarms")
    if not isinstance(alarms, dict) or not defaults:
        return
    if "points" not in alarms:
        alarms["points"] = {}
        positions.values[("alarms", "points")] = positions.key(("alarms",))
    points = alarms["points"]
    if not isinstance(points, dict):
        return  # reported by the schema
    for name, prof, j in defaults:
        if name in points:
            continue
        points[name] = copy.deepcopy(prof.points[j]["alarms"])
        _graft(positions, ("alarms", "points", name), prof.positions, ("points", j, "alarms"))


def _expand(
    item: dict[str, Any],
    at: Path_,
    positions: Positions,
    dirs: list[Path],
    loaded: dict[str, Profile],
    defaults: list[tuple[str, Profile, int]],
) -> list[Problem]:
    name = item["profile"]
    where = positions.value((*at, "profile"))
    if not isinstance(name, str):
        _unresolved(item, at, positions)
        return [where.problem(f"{_dev(item)}.profile: a profile name, e.g. invt-gd200a")]
    try:
        prof = loaded.get(name) or loaded.setdefault(name, load(name, dirs))
    except KeyError:
        known = available(dirs)
        _unresolved(item, at, positions)
        return [
            where.problem(
                f"{_dev(item)}.profile: no profile '{name}'{suggest(name, known)}; "
                f"known: {', '.join(known)}"
            )
        ]
    except ConfigError as exc:
        _unresolved(item, at, positions)
        return [
            where.problem(f"{_dev(item)}.profile: profile '{name}' is broken: {exc.problems[0]}")
        ]
    problems: list[Problem] = []
    prefix = item.pop("prefix", "")
    if not isinstance(prefix, str):
        problems.append(positions.value((*at, "prefix")).problem(f"{_dev(item)}.prefix: text"))
        prefix = ""
    overrides = item.pop("overrides", None) or {}
    if not isinstance(overrides, dict):
        problems.append(
            positions.value((*at, "overrides")).problem(
                f"{_dev(item)}.overrides: a mapping of profile point name → keys to change"
            )
        )
        overrides = {}
    keys = [p["name"] for p in prof.points]
    for key in overrides:
        if key not in keys:
            msg = (
                f"{_dev(item)}.overrides.{key}: profile '{name}' has no point '{key}'"
                f"{suggest(key, keys)}"
            )
            problems.append(positions.key((*at, "overrides", key)).problem(msg))
    for key, value in prof.device.items():
        if key in _SERIAL_KEYS and item.get("transport") != "modbus-rtu":
            continue  # a serial default means nothing to a device behind a TCP gateway
        if key not in item:
            item[key] = value
            positions.values[(*at, key)] = prof.positions.value(("device", key))
    extra = item.get("points") or []
    if not isinstance(extra, list):
        problems.append(positions.value((*at, "points")).problem(f"{_dev(item)}.points: a list"))
        extra = []
    new = Positions()
    points: list[dict[str, Any]] = []
    for j, raw in enumerate(prof.points):
        point = {k: copy.deepcopy(v) for k, v in raw.items() if k not in _DOC_KEYS}
        key = point["name"]
        point["name"] = prefix + key
        _graft(new, (j,), prof.positions, ("points", j))
        change = overrides.get(key)
        if isinstance(change, dict):
            point.update(copy.deepcopy(change))
            _graft(new, (j,), positions, (*at, "overrides", key), only=tuple(change))
        elif change is not None:
            msg = f"{_dev(item)}.overrides.{key}: a mapping of point keys, e.g. {{valid_max: 48}}"
            problems.append(positions.value((*at, "overrides", key)).problem(msg))
        if raw.get("alarms"):
            defaults.append((point["name"], prof, j))
        points.append(point)
    for k, raw in enumerate(extra):
        _graft(new, (len(points),), positions, (*at, "points", k))
        points.append(raw)
    item["points"] = points
    new.values[()] = where
    key_pos = positions.keys.get((*at, "points")) or positions.key((*at, "profile"))
    positions.replace((*at, "points"), new, key_pos)
    return problems


def _graft(
    into: Positions, to: Path_, source: Positions, root: Path_, only: tuple[Any, ...] = ()
) -> None:
    """Copy ``source``'s positions under ``root`` to ``to`` in ``into`` (only the keys ``only``
    directly under ``root`` when given)."""
    n = len(root)
    for table_from, table_to in ((source.values, into.values), (source.keys, into.keys)):
        for path, pos in list(table_from.items()):
            if path[:n] != root or (only and (len(path) == n or path[n] not in only)):
                continue
            table_to[to + path[n:]] = pos
    if not only and root in source.values:
        into.values[to] = source.values[root]


def _dev(item: dict[str, Any]) -> str:
    name = item.get("name")
    return f"devices.{name}" if isinstance(name, str) else "devices[?]"


def describe(prof: Profile) -> str:
    """One line: ``invt-gd200a: INVT Goodrive GD200A drive (13 points)``."""
    return f"{prof.name}: {prof.title} ({len(prof.points)} points)"


__all__ = [
    "PACKAGED",
    "IdentifyRule",
    "Profile",
    "available",
    "describe",
    "expand_profiles",
    "load",
    "load_all",
    "search_dirs",
]
