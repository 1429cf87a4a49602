"""Turn pydantic validation errors into technician-readable :class:`Problem` lines.

Each pydantic error has a location (keys and list indices, plus discriminator tags) that we map
back to the YAML node through :class:`Positions`, and a type that we reword: "expected a
boolean: write true or false, not 'yes' …" rather than "Input should be a valid boolean".
"""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from agent.config.problems import Path_, Positions, Problem
from agent.config.schema import PATTERN_TEXT

_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}
_ITEM_NOUNS = {"devices": "device", "points": "point", "pumps": "pump"}
"""What one item of a list key is called in "expected at least 1 device"."""
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+(\.[0-9]*)?")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9]+(:[0-5]?[0-9])+(\.[0-9]*)?")
_NUMBER = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")


_ALIASES = {
    "float": "float32",
    "real": "float32",
    "single": "float32",
    "double": "float64",
    "lreal": "float64",
    "int": "int16",
    "short": "int16",
    "uint": "uint16",
    "word": "uint16",
    "dint": "int32",
    "long": "int32",
    "udint": "uint32",
    "dword": "uint32",
}
"""Type names of device manuals and IEC 61131-3 (INT/WORD 16 bit, DINT/DWORD 32 bit, REAL
32 bit, LREAL 64 bit) → the config's type. A bare ``float`` in a Modbus register map is
nearly always the 2-register IEEE 754 single, so it suggests float32, not the equally close
float64 (difflib breaks that tie towards the larger string)."""


def suggest(word: Any, choices: Any) -> str:
    """``" (did you mean 'x'?)"`` when a choice is close to ``word``, else ``""``: the same
    word in other case, else a known alias (:data:`_ALIASES`), else the closest by
    :func:`difflib.get_close_matches` (ratio ≥ 0.6)."""
    options = [str(c) for c in choices]
    alias = _ALIASES.get(str(word).lower())
    if alias in options and str(word).lower() not in (o.lower() for o in options):
        return f" (did you mean '{alias}'?)"
    same_letters = [c for c in options if c.lower() == str(word).lower()]
    close = same_letters or difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def show(value: Any) -> str:
    """Describe a parsed YAML value for a message: ``the string 'yes'``, ``the integer 5``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string '{value}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def path_text(data: Any, path: Path_) -> str:
    """Dotted path naming list items by their ``name`` where they have one, e.g.
    ``devices.cabinet.points.p_out.address`` (the same form ``--set`` accepts)."""
    parts: list[str] = []
    node = data
    for el in path:
        if isinstance(el, int) and isinstance(node, list) and 0 <= el < len(node):
            node = node[el]
            name = node.get("name") if isinstance(node, dict) else None
            parts.append(name if isinstance(name, str) and name else str(el))
        elif isinstance(node, dict) and el in node:
            node = node[el]
            parts.append(str(el))
        else:
            node = None
            parts.append(str(el))
    return ".".join(parts) or "(top level)"


def data_path(data: Any, loc: tuple[Any, ...]) -> Path_:
    """Strip pydantic's discriminator tags from ``loc``, leaving a path into ``data``."""
    path: list[str | int] = []
    node = data
    for el in loc:
        if isinstance(node, list) and isinstance(el, int):
            path.append(el)
            node = node[el] if 0 <= el < len(node) else None
        elif isinstance(node, dict) and isinstance(el, str):
            if el in node or node.get("transport") != el:
                path.append(el)
                node = node.get(el)
            # else: a discriminator tag (e.g. "modbus-tcp"): not part of the data path
        else:
            path.append(el)
            node = None
    return tuple(path)


def model_fields_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found by following ``loc`` (with tags) from ``root``."""
    t: Any = root
    for el in loc:
        t = _unwrap(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            if el not in t.model_fields:
                return []
            t = t.model_fields[el].annotation
        elif get_origin(t) is list:
            t = get_args(t)[0]
        elif get_origin(t) in (Union, types.UnionType):
            t = next((m for m in get_args(t) if _tag_of(m) == el), None)
        else:
            return []
    t = _unwrap(t)
    return list(t.model_fields) if isinstance(t, type) and issubclass(t, BaseModel) else []


def _unwrap(t: Any) -> Any:
    while True:
        if get_origin(t) is Annotated:
            t = get_args(t)[0]
        elif get_origin(t) in (Union, types.UnionType):
            members = [m for m in get_args(t) if m is not type(None)]
            if len(members) != 1:
                return t
            t = members[0]
        else:
            return t


def _tag_of(model: Any) -> Any:
    field = getattr(model, "model_fields", {}).get("transport")
    if field is None or get_origin(field.annotation) is not Literal:
        return None
    return get_args(field.annotation)[0]


def problems_from(
    exc: ValidationError, root: type[BaseModel], data: Any, positions: Positions
) -> list[Problem]:
    """One :class:`Problem` per pydantic error, positioned on the YAML node it concerns."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = data_path(data, loc)
        kind = err["type"]
        if path[:1] == ("devices",) and len(path) > 1 and path[1] in positions.unresolved:
            continue  # its profile is unreadable: that is its problem (Positions.unresolved)
        if kind == "extra_forbidden":
            key = str(path[-1])
            fields = model_fields_at(root, loc[:-1])
            hint = suggest(key, fields) or (
                f" (expected one of: {', '.join(fields)})" if fields else ""
            )
            text = f"{path_text(data, path[:-1])}: unknown key '{key}'{hint}"
            out.append(positions.key(path).problem(text))
        elif kind == "missing":
            text = f"{path_text(data, path[:-1])}: missing required key '{path[-1]}'"
            out.append(positions.value(path[:-1]).problem(text))
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            out.append(_tag_problem(err, data, path, positions))
        else:
            text = f"{path_text(data, path)}: {_reword(err, path, path in positions.plain)}"
            out.append(positions.value(path).problem(text))
    return out


def _tag_problem(err: Any, data: Any, path: Path_, positions: Positions) -> Problem:
    expected = err.get("ctx", {}).get("expected_tags", "'modbus-tcp', 'modbus-rtu', 'opcua'")
    if err["type"] == "union_tag_not_found":
        text = f"{path_text(data, path)}: missing required key 'transport' (one of {expected})"
        return positions.value(path).problem(text)
    tag = err["input"].get("transport") if isinstance(err["input"], dict) else None
    hint = suggest(tag, re.findall(r"'([^']*)'", expected))
    text = f"{path_text(data, (*path, 'transport'))}: expected one of {expected}, got {show(tag)}"
    return positions.value((*path, "transport")).problem(text + hint)


def _reword(err: Any, path: Path_, plain: bool) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx", {})
    if kind == "bool_type":
        if isinstance(value, str) and plain and value.lower() in _YAML11_BOOLS:
            return (
                f"expected a boolean: write true or false, not '{value}' "
                "(yes/no/on/off are text in YAML 1.2, not booleans)"
            )
        return f"expected a boolean (true or false), got {show(value)}"
    if kind in ("int_type", "float_type", "int_from_float"):
        want = "an integer" if kind != "float_type" else "a number"
        return _number_message(want, value, plain)
    if kind == "string_type":
        hint = " (quote it)" if isinstance(value, int | float) else ""
        return f"expected a string, got {show(value)}{hint}"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        hint = suggest(value, choices) if isinstance(value, str) else ""
        if not isinstance(value, str) and str(value) in choices:
            hint = f' (quote it: "{value}")'
        return f"expected one of {expected}, got {show(value)}{hint}"
    if kind == "string_pattern_mismatch":
        wanted = PATTERN_TEXT.get(ctx.get("pattern"), f"text matching {ctx.get('pattern')}")
        return f"expected {wanted}, got '{value}'"
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", "≥"),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "≤"),
    }
    if kind in bounds:
        key, sign = bounds[kind]
        return f"must be {sign} {ctx[key]}, got {value}"
    if kind == "too_short" and isinstance(value, list):
        least = ctx.get("min_length", 1)
        noun = _ITEM_NOUNS.get(str(path[-1]) if path else "", "item")
        plural = "" if least == 1 else "s"
        return f"expected at least {least} {noun}{plural}, got an empty list"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value lines), got {show(value)}"
    if kind == "list_type":
        return f"expected a list ('- ' items), got {show(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {value}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def _number_message(want: str, value: Any, plain: bool) -> str:
    if isinstance(value, str) and plain and _LEADING_ZERO.fullmatch(value):
        sign = "-" if value.startswith("-") else ""
        digits = value.lstrip("+-").lstrip("0") or "0"
        if digits.startswith("."):
            digits = "0" + digits
        return f"leading zero: write {sign}{digits} (YAML 1.1 would read {value} as octal)"
    if isinstance(value, str) and plain and _SEXAGESIMAL.fullmatch(value):
        return (
            f"expected {want}, got {value}, which YAML 1.1 reads as a base-60 number; "
            "write the plain number you mean"
        )
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return f"expected {want}, got the string '{value}' (remove the quotes)"
    return f"expected {want}, got {show(value)}"
