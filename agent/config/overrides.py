"""``--set dotted.key=value`` overrides, applied to the parsed tree before validation.

List items are addressed by their ``name`` (``devices.cabinet.points.p_out.scale=0.1``; names
may contain dots, the longest matching name wins) or by index (``devices.0.port=15021``). The
value is parsed by the same strict YAML loader (``yes`` stays text, ``010`` is not octal). A
missing mapping key is created, so the schema can still say "unknown key" about a typo.
Problems point at ``--set:<n>:<column>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.config.messages import suggest
from agent.config.problems import ConfigError, Path_, Pos, Positions, Problem
from agent.config.yaml_loader import load_yaml

FILE = "--set"


def apply_overrides(
    data: Any, positions: Positions, overrides: Sequence[str]
) -> tuple[Any, list[Problem]]:
    """Apply each ``KEY=VALUE`` in order; return the new tree and the problems found.

    ``data`` is changed in place where possible (a ``None`` document becomes a mapping).
    ``positions`` is updated so that set values point at their ``--set``.
    """
    if data is None and overrides:
        data = {}
    problems: list[Problem] = []
    for n, text in enumerate(overrides, start=1):
        try:
            _apply_one(data, positions, n, text)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return data, problems


def _segments(text: str) -> list[tuple[str, int]]:
    """``(segment, 1-based column)`` for each dot-separated part of ``text``."""
    out, col = [], 1
    for seg in text.split("."):
        out.append((seg, col))
        col += len(seg) + 1
    return out


def _apply_one(data: Any, positions: Positions, n: int, text: str) -> None:
    def fail(column: int, message: str) -> ConfigError:
        return ConfigError([Problem(FILE, n, column, message)])

    key_text, eq, value_text = text.partition("=")
    if not eq:
        raise fail(1, f"expected KEY=VALUE (e.g. devices.cabinet.port=15021), got '{text}'")
    segs = _segments(key_text)
    for seg, col in segs:
        if not seg.strip():
            raise fail(col, f"empty key in '{key_text}' (keys are separated by single dots)")
    value, value_positions = load_yaml(value_text, FILE, line=n - 1, column=len(key_text) + 1)

    node: Any = data
    path: Path_ = ()
    i = 0
    while True:
        seg, col = segs[i]
        last = i == len(segs) - 1
        where = ".".join(str(s) for s, _ in segs[:i]) or "the top level"
        if isinstance(node, dict):
            if last:
                node[seg] = value
                positions.replace((*path, seg), value_positions, key=Pos(FILE, n, col))
                return
            if not isinstance(node.get(seg), dict | list):
                if seg in node:
                    here = seg if not segs[:i] else f"{where}.{seg}"
                    inner = segs[i + 1][0]
                    msg = f"{here} is not a mapping or list; cannot set '{inner}' inside it"
                    raise fail(col, msg)
                node[seg] = {}
                positions.values[(*path, seg)] = Pos(FILE, n, col)
                positions.keys[(*path, seg)] = Pos(FILE, n, col)
            node, path, i = node[seg], (*path, seg), i + 1
        elif isinstance(node, list):
            index, used = _find_item(node, segs[i:])
            if index is None:
                names = [x.get("name") for x in node if isinstance(x, dict)]
                hint = suggest(seg, [m for m in names if isinstance(m, str)])
                how = (
                    f"address list items by name or by index 0..{len(node) - 1}"
                    if node
                    else "the list is empty"
                )
                raise fail(col, f"no item named '{seg}' in {where}{hint} ({how})")
            if i + used == len(segs):
                node[index] = value
                positions.replace((*path, index), value_positions, key=None)
                return
            node, path, i = node[index], (*path, index), i + used
        else:
            raise fail(col, f"{where} is not a mapping or list; cannot set '{seg}' inside it")


def _find_item(items: list[Any], segs: list[tuple[str, int]]) -> tuple[int | None, int]:
    """Index of the item named by the longest run of ``segs`` (or by an index), and how many
    segments that used."""
    for used in range(len(segs), 0, -1):
        name = ".".join(s for s, _ in segs[:used])
        for index, item in enumerate(items):
            if isinstance(item, dict) and item.get("name") == name:
                return index, used
    seg = segs[0][0]
    if seg.isdigit() and int(seg) < len(items):
        return int(seg), 1
    return None, 0
