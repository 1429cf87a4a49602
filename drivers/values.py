"""Engineering values shared by every protocol: scale, offset, NaN and range checks. Pure."""

from __future__ import annotations

import math

from agent.core.model import Quality, Reading
from drivers.specs import PointSpec

__all__ = ["to_engineering"]


def _decimals(*factors: float) -> int:
    """Decimal places needed to represent multiples of every factor exactly (at most 12)."""
    places = 0
    for f in factors:
        text = repr(abs(f))
        if "e" in text or "E" in text:
            return 12
        if "." in text:
            places = max(places, len(text.split(".")[1].rstrip("0")))
    return min(places, 12)


def to_engineering(point: PointSpec, raw: int | float | bool) -> Reading:
    """Apply scale and offset to ``raw`` and check it; returns the point's :class:`Reading`.

    NaN → BAD_VALUE, reason ``"nan"``; +∞ / −∞ → BAD_VALUE, reason ``"inf"`` / ``"-inf"`` (JSON
    carries no non-finite number, RFC 8259 §6, so the reason is what tells them apart); outside
    ``valid_min``/``valid_max`` → BAD_VALUE, reason ``"range"``. Bools are not scaled.
    """
    if isinstance(raw, bool):
        return Reading(point.name, raw)
    value: int | float = raw
    if point.scale != 1.0 or point.offset != 0.0:
        value = raw * point.scale + point.offset
        if isinstance(raw, int):
            # An integer register scaled by 0.01 has two decimals of resolution; round away the
            # binary float noise (35.730000000000004 -> 35.73) so the uplink carries what was read;
            # + 0.0 turns a -0.0 left by the noise (-1e-17 rounds to -0.0) into the exact 0.0.
            value = round(value, _decimals(point.scale, point.offset)) + 0.0
    if isinstance(value, float) and not math.isfinite(value):
        reason = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return Reading(point.name, None, Quality.BAD_VALUE, reason)
    if (point.valid_min is not None and value < point.valid_min) or (
        point.valid_max is not None and value > point.valid_max
    ):
        return Reading(point.name, None, Quality.BAD_VALUE, "range")
    return Reading(point.name, value)
