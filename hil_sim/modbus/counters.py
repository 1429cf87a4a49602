"""Request counters: the test instrument's view of the traffic it served.

A request is counted once it arrived intact (a complete MBAP frame, or an RTU frame with a good
CRC), whatever happens next: it may be answered, answered with an exception, be for a unit that is
silent or unknown, or be a broadcast (unit 0). Frames that never became a request (bad CRC, bad
MBAP header, ...) are counted as errors by kind instead.
"""

from __future__ import annotations

import copy


class RequestCounters:
    """Requests seen per ``(transport, unit_id, function_code)`` and errors per
    ``(transport, kind)``. ``transport`` is ``"tcp"`` or ``"rtu"``."""

    def __init__(self) -> None:
        self._requests: dict[str, dict[int, dict[int, int]]] = {}
        self._errors: dict[str, dict[str, int]] = {}

    def count(self, transport: str, unit_id: int, function_code: int) -> None:
        """Count one intact request."""
        per_unit = self._requests.setdefault(transport, {}).setdefault(unit_id, {})
        per_unit[function_code] = per_unit.get(function_code, 0) + 1

    def count_error(self, transport: str, kind: str) -> None:
        """Count one frame that was dropped, e.g. kind ``"bad_crc"`` or ``"bad_mbap"``."""
        per_transport = self._errors.setdefault(transport, {})
        per_transport[kind] = per_transport.get(kind, 0) + 1

    def snapshot(self) -> dict[str, dict[int, dict[int, int]]]:
        """A copy of the request counts, e.g. ``{"tcp": {1: {3: 17}}}``."""
        return copy.deepcopy(self._requests)

    def errors(self) -> dict[str, dict[str, int]]:
        """A copy of the error counts, e.g. ``{"rtu": {"bad_crc": 2}}``."""
        return copy.deepcopy(self._errors)

    def total(self, transport: str | None = None) -> int:
        """Total requests counted (for one transport, or all)."""
        return sum(
            n
            for t, units in self._requests.items()
            if transport is None or t == transport
            for fcs in units.values()
            for n in fcs.values()
        )

    def reset(self) -> None:
        """Zero every counter."""
        self._requests.clear()
        self._errors.clear()
