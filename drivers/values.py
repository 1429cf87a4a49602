"""Engineering values shared by every protocol: scale, offset, NaN and range checks. Pure."""

from __future__ import annotations

import math

from agent.model import Quality, Reading
from drivers.specs import PointSpec

__all__ = ["to_engineering"]


def to_engineering(point: PointSpec, raw: int | float | bool) -> Reading:
    """Apply scale and offset to ``raw`` and check it; returns the point's :class:`Reading`.

    NaN or ±inf → BAD_VALUE, reason ``"nan"``; outside ``valid_min``/``valid_max`` → BAD_VALUE,
    reason ``"range"``. Bools are not scaled.
    """
    if isinstance(raw, bool):
        return Reading(point.name, raw)
    value: int | float = raw
    if point.scale != 1.0 or point.offset != 0.0:
        value = raw * point.scale + point.offset
    if isinstance(value, float) and not math.isfinite(value):
        return Reading(point.name, None, Quality.BAD_VALUE, "nan")
    if (point.valid_min is not None and value < point.valid_min) or (
        point.valid_max is not None and value > point.valid_max
    ):
        return Reading(point.name, None, Quality.BAD_VALUE, "range")
    return Reading(point.name, value)
