"""Control-loop events in the uplink contract's shape (``agent/schemas/v1/event``).

The loop raises events as ``{"type": "control.<kind>", "t": ms, **detail}``; the contract knows
four types: ``alarm`` (with ``code`` and ``state`` active/cleared and a ``severity``), ``audit``
(who changed what: ``code`` and ``cmd_id``/``by``), ``data_loss`` and ``info``. This table maps
one to the other; a kind that is not listed becomes ``info`` with ``code`` = the kind, upper case.
"""

from __future__ import annotations

from typing import Any

# kind → (type, code, state or None, severity or None)
_TABLE: dict[str, tuple[str, str, str | None, str | None]] = {
    "setpoint_change": ("audit", "SETPOINT_CHANGED", None, None),
    "setpoint_refused": ("audit", "SETPOINT_REFUSED", None, None),
    "mode": ("audit", "MODE_CHANGED", None, None),
    "pv_fault": ("alarm", "PV_FAULT", "active", "high"),
    "pv_recovered": ("alarm", "PV_FAULT", "cleared", "high"),
    "under_pressure": ("alarm", "UNDER_PRESSURE", "active", "high"),
    "under_pressure_cleared": ("alarm", "UNDER_PRESSURE", "cleared", "high"),
    "output_failed": ("alarm", "OUTPUT_UNCONFIRMED", "active", "high"),
    "output_confirmed": ("alarm", "OUTPUT_UNCONFIRMED", "cleared", "high"),
}


def to_contract(body: dict[str, Any]) -> dict[str, Any]:
    """Map a control-loop event body to the contract's event shape (a new dict)."""
    out = dict(body)
    kind = str(out.pop("type", "")).removeprefix("control.")
    out["source"] = "control"
    if kind == "interlock":
        name = str(out.get("name", "interlock"))
        out.update(type="alarm", code=f"INTERLOCK_{name.upper()}", severity="high",
                   state="active" if out.pop("raised", True) else "cleared")  # fmt: skip
        return out
    etype, code, state, severity = _TABLE.get(kind, ("info", kind.upper(), None, None))
    out.update(type=etype, code=code)
    if state is not None:
        out["state"] = state
    if severity is not None:
        out["severity"] = severity
    return out
