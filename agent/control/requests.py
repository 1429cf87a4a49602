"""The control loop's in-process API for the command channel and local operators: remote
setpoint requests, waiting for "reached", manual and automatic mode (a base of
:class:`agent.control.loop.ControlLoop`).

An accepted setpoint request wakes the loop's schedule: the loop takes the first ramp step
towards the new target and writes it within milliseconds, not at its next period.
"""

from __future__ import annotations

import time

from agent.control.law import Mode
from agent.control.loop_io import LoopIO
from agent.control.remote import RemoteSetpoint
from agent.control.schedule import TickSchedule
from agent.control.state import SetpointResult
from agent.core.aio import wait_event


class LoopRequests(LoopIO):
    """Requests to the loop (see the module docstring)."""

    # state it shares with ControlLoop (initialised in ControlLoop.__init__)
    remote: RemoteSetpoint
    schedule: TickSchedule
    mode: Mode
    manual_hz: float
    _first_step: bool
    _running: bool
    sp: float

    async def request_setpoint(self, value_mpa: float, *, cmd_id: str, by: str) -> SetpointResult:
        """Ask for a new pressure setpoint ``value_mpa`` (MPa) from the platform.

        Bounded (``control.remote``: min/max, largest step, least interval; out of bounds is
        refused, never clamped), refused in manual/local mode and under an active interlock or
        fallback, ramped at ``remote.ramp_mpa_per_s`` (MPa/s), audited (an event per accepted
        change). Accepted, the loop is woken at once: the first ramp step is written within
        milliseconds (cabinet mode: the setpoint register), not at the next period.

        Returns:
            :class:`SetpointResult` with code OK, OUT_OF_RANGE, RATE_LIMITED, NOT_PERMITTED,
            UNAVAILABLE or INVALID_ARGUMENT.
        """
        if not self._running:
            return SetpointResult("UNAVAILABLE", {"reason": "control loop not running"})
        if self.mode is Mode.MANUAL or self.local_lock or self.handed_back:
            return SetpointResult("NOT_PERMITTED", {"reason": "local or manual control"})
        if self.inter.active:
            return SetpointResult(
                "NOT_PERMITTED", {"reason": "interlock", "active": sorted(self.inter.active)}
            )
        if self.fallback:
            return SetpointResult(
                "UNAVAILABLE", {"reason": f"outlet sensor fault: {self.pv_fault}"}
            )
        # the step bound is judged against the setpoint in force now (clock program, ramp)
        result = self.remote.request(value_mpa, time.monotonic(), self.sp, cmd_id)
        if result.ok:
            self.mode = Mode.REMOTE
            self._first_step = True
            self.schedule.wake()
            self._event("setpoint_change", cmd_id=cmd_id, by=by, **result.detail)
        else:
            self._event("setpoint_refused", cmd_id=cmd_id, by=by, code=result.code, **result.detail)
        return result

    async def wait_result(self, cmd_id: str, timeout_s: float) -> str:
        """How the accepted setpoint command ``cmd_id`` ended, waiting at most ``timeout_s``
        s: ``reached``, ``superseded`` (a later command's target replaced it), ``cancelled``
        (manual/local control) or ``timeout`` (:class:`~agent.control.remote.Outcome`). Each
        command's result is about its own target."""
        return str(await self.remote.outcome(cmd_id, timeout_s))

    async def wait_reached(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` seconds until the remote setpoint is reached (ramp done,
        pressure within ``remote.reached_band_mpa``); False on timeout."""
        return await wait_event(self.remote.reached, timeout_s)

    def set_manual(self, out_hz: float) -> None:
        """Manual mode: the lead output is ``out_hz`` (Hz, direct mode); bumpless both ways."""
        self.mode, self.manual_hz = Mode.MANUAL, out_hz
        self.remote.cancel()
        self._event("mode", to="manual", out_hz=out_hz)

    def set_auto(self) -> None:
        """Back to automatic on the local setpoint (bumpless; the setpoint ramps)."""
        self.mode = Mode.AUTO
        self.remote.cancel()
        self._event("mode", to="auto")
