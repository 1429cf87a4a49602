"""The point catalogue as the stages use it: the point and command descriptions the uplink
publishes in the retained ``meta``, and the report-by-exception deadbands of the ingest stage.
"""

from __future__ import annotations

from typing import Any

from agent.config import SiteConfig
from agent.exception import Deadband


def deadbands(catalogue: list[Any]) -> dict[str, Deadband]:
    """Report-by-exception deadbands of the points that have one."""
    return {
        p.name: Deadband(p.deadband, p.deadband_pct, p.heartbeat_s)
        for p in catalogue
        if p.deadband is not None or p.deadband_pct is not None
    }


def command_meta(cfg: SiteConfig) -> dict[str, Any]:
    """The commands this gateway takes, with their bounds (published in ``meta``)."""
    control = getattr(cfg, "control", None)
    if control is None:
        return {}
    r = control.remote
    return {
        "setpoint.set": {
            "unit": "MPa",
            "min": r.min_mpa,
            "max": r.max_mpa,
            "max_step": r.max_step_mpa,
            "min_interval_s": r.min_interval_s,
            "ramp_mpa_per_s": r.ramp_mpa_per_s,
        }
    }


def alarm_command_meta(cfg: SiteConfig) -> dict[str, Any]:
    """The alarm commands and their bounds (published in ``meta``), when alarms are on."""
    if cfg.alarms is None:
        return {}
    return {
        "alarm.ack": {},
        "alarm.shelve": {"unit": "s", "min": 0, "max": cfg.alarms.shelve_max_s},
        "alarm.unshelve": {},
    }


def point_meta(p: Any) -> dict[str, Any]:
    """The ``meta`` description of catalogue point ``p`` (an :class:`agent.config` point):
    ``name``, ``device``, ``unit``, ``writable``, ``source``; ``write_only``, ``range``
    ([min, max] in the point's unit) and ``description`` when it has them."""
    out = {
        "name": p.name,
        "device": p.device,
        "unit": p.unit,
        "writable": p.writable,
        "source": p.source,
    }
    if getattr(p, "write_only", False):
        out["write_only"] = True
    if p.valid_min is not None or p.valid_max is not None:
        out["range"] = [p.valid_min, p.valid_max]
    if p.description:
        out["description"] = p.description
    return out
