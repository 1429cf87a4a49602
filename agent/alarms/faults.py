"""Equipment fault normalisation: a vendor's fault code register, fault bitmap or status word,
mapped to one common set of causes, with the vendor's code kept beside the cause.

The maps are data, YAML files in ``config/faultmaps/`` (each one cites its manual section)::

    device: INVT Goodrive GD200A
    register: 2102H fault code
    encoding: code          # code: the value is one fault number; bits: every set bit is one
    none: 0                 # the value that means "no fault"
    codes:                  # (bits: for encoding bits)
      10: {cause: undervoltage, vendor: UV, text: "DC bus undervoltage"}

A value the map does not know decodes to cause ``unknown`` with the raw value as the vendor
code: it still raises the alarm (an unknown fault is a fault).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class Cause(enum.StrEnum):
    """The common fault causes (domain.md §2: "map vendor codes to a common enum")."""

    OVERCURRENT = "overcurrent"
    OVERVOLTAGE = "overvoltage"
    UNDERVOLTAGE = "undervoltage"
    OVERLOAD = "overload"
    PHASE_LOSS = "phase_loss"
    OVERHEAT = "overheat"
    EXTERNAL = "external"
    COMMUNICATION = "communication"
    SENSOR = "sensor"
    DRY_RUN = "dry_run"
    PRESSURE_HIGH = "pressure_high"
    PRESSURE_LOW = "pressure_low"
    PUMP_FAULT = "pump_fault"
    CALIBRATION = "calibration"
    NO_SAMPLE = "no_sample"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Fault:
    """One decoded fault: the common ``cause``, the ``vendor`` code and the manual's ``text``."""

    cause: Cause
    vendor: str
    text: str


class FaultMapError(ValueError):
    """A fault map file that cannot be read or has the wrong shape (names the file)."""


@dataclass(frozen=True, slots=True)
class FaultMap:
    """A loaded fault map. ``decode(value)`` → the faults it means (empty: no fault)."""

    name: str
    device: str
    bits: bool
    none: int
    entries: dict[int, Fault]

    def decode(self, value: int) -> list[Fault]:
        """The faults ``value`` means: none for the map's ``none`` value; for ``bits``, one per
        set bit (unknown bits as cause ``unknown``, vendor ``bit N``); for ``code``, one."""
        if value == self.none:
            return []
        if not self.bits:
            known = self.entries.get(value)
            return [known or Fault(Cause.UNKNOWN, str(value), "code not in the map")]
        out = []
        for bit in range(64):
            if value >> bit & 1:
                f = self.entries.get(bit)
                out.append(f or Fault(Cause.UNKNOWN, f"bit {bit}", "bit not in the map"))
        return out


def load_fault_map(path: Path) -> FaultMap:
    """Read one map file (``config/faultmaps/<name>.yaml``).

    Raises:
        FaultMapError: unreadable, not YAML, or a wrong shape; the message names the file.
    """
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FaultMapError(f"{path}: {exc}") from None
    try:
        bits = {"code": False, "bits": True}[data["encoding"]]
        table = data["bits" if bits else "codes"]
        entries = {
            int(k): Fault(Cause(v["cause"]), str(v["vendor"]), str(v.get("text", "")))
            for k, v in table.items()
        }
        return FaultMap(path.stem, str(data.get("device", path.stem)), bits, int(data["none"]),
                        entries)  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FaultMapError(f"{path}: not a fault map ({type(exc).__name__}: {exc})") from None
