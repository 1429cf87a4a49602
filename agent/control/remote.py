"""Remote setpoint requests from the platform: bounds, rate limit, ramp, "reached".

The rules (``control.remote``) follow domain.md §2 ("rate-limited remote setpoint changes with
bounds"; "block remote setpoints above configured ceiling (GB 50015 limits)" [S24]) and the
complaint scenario of §6.2 ("applied within seconds, ramped, bounded, audited"). A request out
of bounds is refused, never clamped. The bound checks are pure (:meth:`RemoteSetpoint.request`
takes the monotonic time); the ``reached`` event is an :class:`asyncio.Event` for waiters.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from agent.config.control import Remote
from agent.control.state import SetpointResult


class RemoteSetpoint:
    """The platform's setpoint target and its bookkeeping.

    Args:
        bounds: ``control.remote``.
        initial_mpa: the target before any request (the configured setpoint), MPa.
    """

    def __init__(self, bounds: Remote, initial_mpa: float) -> None:
        self.bounds = bounds
        self.target = initial_mpa
        self.ramp = bounds.ramp_mpa_per_s
        self.last_accepted_s = -math.inf
        self.reached = asyncio.Event()
        self.pending = False

    def request(self, value_mpa: float, now_s: float) -> SetpointResult:
        """Check and, if accepted, adopt ``value_mpa`` (MPa) as the target at time ``now_s``."""
        b = self.bounds
        if isinstance(value_mpa, bool) or not isinstance(value_mpa, int | float):
            return SetpointResult("INVALID_ARGUMENT", {"reason": "value must be a number (MPa)"})
        value = float(value_mpa)
        if not math.isfinite(value):
            return SetpointResult("INVALID_ARGUMENT", {"reason": "value must be finite"})
        if not b.min_mpa <= value <= b.max_mpa:
            return SetpointResult(
                "OUT_OF_RANGE", {"value": value, "min": b.min_mpa, "max": b.max_mpa}
            )
        if abs(value - self.target) > b.max_step_mpa + 1e-9:
            return SetpointResult(
                "OUT_OF_RANGE",
                {"value": value, "from": self.target, "max_step": b.max_step_mpa},
            )
        wait = b.min_interval_s - (now_s - self.last_accepted_s)
        if wait > 0:
            return SetpointResult("RATE_LIMITED", {"retry_after_s": round(wait, 1)})
        old, self.target = self.target, value
        self.last_accepted_s = now_s
        self.reached.clear()
        self.pending = True
        return SetpointResult(
            "OK",
            {
                "from": old,
                "to": value,
                "ramp_mpa_per_s": self.ramp,
                "ramp_s": round(abs(value - old) / self.ramp, 1),
            },
        )

    def cancel(self) -> None:
        """Forget a pending "reached" (the loop left remote mode)."""
        self.pending = False

    def check_reached(
        self, sp_mpa: float, pv_mpa: float | None, on_reached: Callable[[], None]
    ) -> None:
        """Called every tick in remote mode: set :attr:`reached` once the ramp is done and the
        pressure is within ``reached_band_mpa`` of the target."""
        if not self.pending or pv_mpa is None:
            return
        if sp_mpa == self.target and abs(pv_mpa - self.target) <= self.bounds.reached_band_mpa:
            self.pending = False
            self.reached.set()
            on_reached()
