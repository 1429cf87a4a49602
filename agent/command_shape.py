"""What the v1 command-request schema (agent/schemas/v1/command-request.schema.json, a closed
shape) does not allow in a request, every problem named with its key."""

from __future__ import annotations

import math
import re
from typing import Any

from agent.alarms import commands as alarm_commands

REQUEST_MEMBERS = ("v", "id", "method", "issued_at", "expires_at", "issuer", "params")
"""Every member a v1 command request may have (agent/schemas/v1/command-request.schema.json,
a closed shape): a gateway never ignores a member it does not know, since it could change what
the platform meant; a request with one is refused INVALID_ARGUMENT naming it."""
PARAMS_MEMBERS = ("value", "unit", "point")
ISSUER_MEMBERS = ("principal", "reason")
MAX_TIME_MS = 2**53 - 1
"""Largest timeMs (common.schema.json): the largest integer exact in a JSON double."""
_POINT_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _unknown(where: str, obj: dict[str, Any], known: tuple[str, ...]) -> list[str]:
    extra = sorted(str(k) for k in obj if k not in known)
    if not extra:
        return []
    return [f"{where}unknown member {', '.join(map(repr, extra))} (known: {', '.join(known)})"]


def time_ms(value: Any) -> int | None:
    """An epoch-ms value as JSON Schema's ``integer`` allows it (1.0 is an integer), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TIME_MS:
        return value
    return None


def shape_problems(msg: dict[str, Any]) -> list[str]:
    """What in ``msg`` (its id already read) the command-request schema does not allow."""
    problems = _unknown("", msg, REQUEST_MEMBERS)
    v = msg.get("v")
    if isinstance(v, bool) or v != 1:
        problems.append("v: expected 1")
    method = msg.get("method")
    if method != "setpoint.set" and method not in alarm_commands.METHODS:
        known = ", ".join(("setpoint.set", *alarm_commands.METHODS))
        problems.append(f"method: unknown {method!r} (known: {known})")
    for key in ("issued_at", "expires_at"):
        if key in msg and time_ms(msg[key]) is None:
            problems.append(f"{key}: epoch ms, an integer 0–{MAX_TIME_MS}")
    if "issuer" in msg:
        issuer = msg["issuer"]
        if not isinstance(issuer, dict):
            problems.append("issuer: expected an object")
        else:
            problems += _unknown("issuer: ", issuer, ISSUER_MEMBERS)
            principal = issuer.get("principal")
            if not isinstance(principal, str) or not principal:
                problems.append("issuer.principal: a non-empty string")
            if "reason" in issuer and not isinstance(issuer["reason"], str):
                problems.append("issuer.reason: a string")
    params = msg.get("params")
    if not isinstance(params, dict):
        problems.append("params: expected an object")
        return problems
    if method in alarm_commands.METHODS:
        return problems + alarm_commands.param_problems(method, params)
    problems += _unknown("params: ", params, PARAMS_MEMBERS)
    value = params.get("value")
    try:
        finite = (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    except OverflowError:  # an integer beyond a double
        finite = False
    if not finite:
        problems.append("params.value: a number in MPa")
    if "unit" in params and params["unit"] != "MPa":
        problems.append(f"params.unit: expected MPa, got {params['unit']!r}")
    if "point" in params and not (
        isinstance(params["point"], str) and _POINT_NAME.fullmatch(params["point"])
    ):
        problems.append("params.point: a point name (A–Z a–z 0–9 _ . -)")
    return problems
