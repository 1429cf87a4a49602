"""What every fault-catalogue entry is: parameters checked without a simulator, an ``apply``
that changes a running :class:`~hil_sim.sim.Simulator` and returns how to undo it."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hil_sim.sim import Simulator

REQUIRED = object()
"""Marker: the parameter has no default."""


class FaultParamError(ValueError):
    """A bad fault parameter; ``key`` names it (``target``, ``code`` …)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class FaultApplyError(ValueError):
    """A fault that cannot be applied to this simulator (unknown point, pump or unit)."""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a fault.

    Attributes:
        kind: ``number`` (float), ``int``, ``bool``, ``str``, ``choice`` (one of ``choices``),
            ``span`` ([low, high] numbers), ``units`` (a unit id, a list of them, or ``"rtu"`` /
            ``"tcp"`` for a whole bus).
        default: value when absent, or :data:`REQUIRED`.
        doc: what it means, with its unit.
        low, high: bounds of a number (inclusive), None for none.
    """

    kind: str
    doc: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None

    def check(self, key: str, value: Any) -> Any:
        """The validated value. Raises FaultParamError."""
        k = self.kind
        if k in ("number", "int"):
            ok = not isinstance(value, bool) and isinstance(
                value, int if k == "int" else int | float
            )
            if not ok or not math.isfinite(value):
                raise FaultParamError(
                    key, f"expected {'an integer' if k == 'int' else 'a number'}, got {value!r}"
                )
            if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high
            ):
                raise FaultParamError(key, f"{value!r} outside {self.low}..{self.high}")
            return value if k == "int" else float(value)
        if k == "bool":
            if not isinstance(value, bool):
                raise FaultParamError(key, f"expected true or false, got {value!r}")
            return value
        if k == "str":
            if not isinstance(value, str) or not value:
                raise FaultParamError(key, f"expected a non-empty string, got {value!r}")
            return value
        if k == "choice":
            if value not in self.choices:
                raise FaultParamError(key, f"{value!r} is not one of {', '.join(self.choices)}")
            return value
        if k == "span":
            if (
                not isinstance(value, list)
                or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
                or not value[0] < value[1]
            ):
                raise FaultParamError(key, f"expected [low, high] with low < high, got {value!r}")
            return [float(value[0]), float(value[1])]
        if k == "units":
            if value in ("rtu", "tcp"):
                return value
            units = value if isinstance(value, list) else [value]
            if not units or any(
                isinstance(u, bool) or not isinstance(u, int) or not 0 <= u <= 255 for u in units
            ):
                raise FaultParamError(
                    key, f"expected a unit id 0-255, a list of them, 'rtu' or 'tcp'; got {value!r}"
                )
            return list(units)
        raise AssertionError(k)


@dataclass
class Active:
    """A fault in force. ``undo()`` restores what ``apply`` changed; ``tick()`` (optional) runs
    after every simulator step while it is in force (drift, noise, chatter); ``ends_at_s`` is
    the plant time at which the fault ends by itself (a power blip), None otherwise."""

    undo: Callable[[], None]
    tick: Callable[[], None] | None = None
    ends_at_s: float | None = None


Apply = Callable[["Simulator", dict[str, Any], random.Random], Active]


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A catalogue entry: ``name``, a one-line ``doc`` (with its source), ``params`` and
    ``apply(sim, params, rng) -> Active`` (raises :class:`FaultApplyError`)."""

    name: str
    group: str
    doc: str
    apply: Apply
    params: dict[str, Param] = field(default_factory=dict)

    def check_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Validated parameters with defaults filled in. Raises FaultParamError (unknown,
        missing or bad key)."""
        for key in given:
            if key not in self.params:
                known = ", ".join(self.params) or "none"
                raise FaultParamError(key, f"unknown parameter of {self.name} (known: {known})")
        out: dict[str, Any] = {}
        for key, param in self.params.items():
            if key in given:
                out[key] = param.check(key, given[key])
            elif param.default is REQUIRED:
                raise FaultParamError(key, f"{self.name} needs '{key}': {param.doc}")
            elif param.default is not None:
                out[key] = param.default
        return out
