"""Remote setpoint requests from the platform: bounds, rate limit, ramp, "reached".

The rules (``control.remote``) follow domain.md §2 ("rate-limited remote setpoint changes with
bounds"; "block remote setpoints above configured ceiling (GB 50015 limits)" [S24]) and the
complaint scenario of §6.2 ("applied within seconds, ramped, bounded, audited"). A request out
of bounds is refused, never clamped. The bound checks are pure (:meth:`RemoteSetpoint.request`
takes the monotonic time); the ``reached`` event is an :class:`asyncio.Event` for waiters.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable

from agent.config.control import Remote
from agent.control.state import SetpointResult

MAX_REMEMBERED = 32
"""Ended command outcomes kept for a late :meth:`RemoteSetpoint.outcome` call."""


class Outcome(enum.StrEnum):
    """How one accepted setpoint command ended (each command's result is about its own
    target): ``reached`` (ramp done, pressure within ``reached_band_mpa``), ``superseded`` (a
    later command replaced its target first), ``cancelled`` (the loop left remote mode: local
    or manual control, stop), ``timeout`` (none of these in time)."""

    REACHED = "reached"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


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
        self.cmd_id: str | None = None
        """The command whose target is pursued now."""
        self._outcomes: dict[str, asyncio.Future[Outcome]] = {}

    def request(
        self, value_mpa: float, now_s: float, in_force_mpa: float, cmd_id: str = ""
    ) -> SetpointResult:
        """Check and, if accepted, adopt ``value_mpa`` (MPa) as the target at time ``now_s``.

        The largest step is judged against ``in_force_mpa``, the setpoint actually in force
        (MPa: clock program, ramp position, fallback included), which the answer reports as
        ``from``; the previous command's target may be something else. An accepted request
        ends the previous command's wait with :attr:`Outcome.SUPERSEDED`."""
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
        start = round(in_force_mpa, 4)
        if abs(value - start) > b.max_step_mpa + 1e-9:
            return SetpointResult(
                "OUT_OF_RANGE",
                {"value": value, "from": start, "max_step": b.max_step_mpa},
            )
        wait = b.min_interval_s - (now_s - self.last_accepted_s)
        if wait > 0:
            return SetpointResult("RATE_LIMITED", {"retry_after_s": round(wait, 1)})
        self.target = value
        self.last_accepted_s = now_s
        self.reached.clear()
        self.pending = True
        self._finish(Outcome.SUPERSEDED)
        self.cmd_id = cmd_id
        if len(self._outcomes) > MAX_REMEMBERED:  # ended, and nobody asked
            self._outcomes = {k: f for k, f in self._outcomes.items() if not f.done()}
        self._outcomes[cmd_id] = asyncio.get_running_loop().create_future()
        return SetpointResult(
            "OK",
            {
                "from": start,
                "to": value,
                "ramp_mpa_per_s": self.ramp,
                "ramp_s": round(abs(value - start) / self.ramp, 1),
            },
        )

    def cancel(self) -> None:
        """Forget a pending "reached" (the loop left remote mode): the pending command ends
        :attr:`Outcome.CANCELLED`."""
        self.pending = False
        self._finish(Outcome.CANCELLED)

    async def outcome(self, cmd_id: str, timeout_s: float) -> Outcome:
        """How command ``cmd_id`` ended, waiting at most ``timeout_s`` s for it
        (:attr:`Outcome.TIMEOUT`; unknown ids too)."""
        fut = self._outcomes.get(cmd_id)
        if fut is None:
            return Outcome.TIMEOUT
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(fut)
        except TimeoutError:
            return Outcome.TIMEOUT
        finally:
            if fut.done() or self.cmd_id != cmd_id:
                self._outcomes.pop(cmd_id, None)

    def _finish(self, outcome: Outcome) -> None:
        cmd, self.cmd_id = self.cmd_id, None
        fut = self._outcomes.get(cmd) if cmd is not None else None
        if fut is not None and not fut.done():
            fut.set_result(outcome)

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
            cmd, self.cmd_id = self.cmd_id, None
            fut = self._outcomes.get(cmd) if cmd is not None else None
            if fut is not None and not fut.done():
                fut.set_result(Outcome.REACHED)
            on_reached()
