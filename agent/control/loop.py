"""The control loop around the pure law: reads the latest-value cache, decides, writes.

Every ``period_s`` (monotonic deadlines, :mod:`~agent.control.schedule`; a late tick is skipped
and counted, never queued), and at once when a remote setpoint request is accepted
(:mod:`~agent.control.requests`: its first ramp step is written within milliseconds), one
synchronous :meth:`ControlLoop.tick` reads only :class:`agent.core.cache.Cache`, runs the pure parts
(:mod:`~agent.control.protect`, :mod:`~agent.control.lowdemand`, :mod:`~agent.control.law`,
:mod:`~agent.control.staging`) and hands writes to per-connection :class:`~agent.control.io.Writer`
tasks and events to an :class:`~agent.control.io.EventQueue` task. A tick has no ``await``: a slow
bus, disk or broker never delays it.

Modes (``control.mode``):

* ``supervisory``: the cabinet's own PID runs the pumps. The loop writes the ramped setpoint
  (clock program, remote setpoint, proportional pressure applied) and run enable (0 while an
  interlock is active), keeps the cabinet in automatic mode, and raises events on sensor
  faults, interlocks and under-pressure.
* ``direct``: the loop puts the cabinet into bus mode and closes the loop: PI on the outlet
  pressure → lead frequency (every running pump gets it, master/follower), cascade staging,
  sleep, interlocks. The measured flow and every stage-on/off are fed forward to the lead
  frequency (:mod:`~agent.control.feedforward`) when ``staging.pump_capacity_m3h`` is set (or
  ``pid.ff_hz_per_m3h`` for the flow part). Each drive gets a control write at least every
  ``watchdog_refresh_s``, so the drive's communication watchdog (Danfoss 8-03/8-04 [S29])
  acts only if the agent dies.
  On a bad outlet pressure the loop enters its ``fallback`` on the same tick: ``freeze``,
  ``fixed`` (``fallback_hz``) or ``local`` (cabinet back to automatic). A clean stop hands
  control back to the cabinet.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from agent.config.control import ControlConfig
from agent.control.direct import DirectMode
from agent.control.feedforward import (
    flow_gain_hz_per_m3h,
)
from agent.control.io import EventQueue, Writer
from agent.control.law import Mode, PidState, ramp
from agent.control.lowdemand import (
    Phase,
    SleepState,
    proportional_setpoint,
    scheduled_setpoint,
    sleep_offset,
)
from agent.control.outputs import Confirm, OutputSet, OutputState, Transition
from agent.control.protect import (
    InterlockState,
    SensorState,
    SupplyReading,
    check_pv,
    interlocks,
)
from agent.control.remote import RemoteSetpoint
from agent.control.requests import LoopRequests
from agent.control.schedule import TickSchedule
from agent.control.staging import StagingState
from agent.control.state import LawParams, LoopState
from agent.core import progress
from agent.core.aio import within
from agent.core.cache import Cache
from agent.core.model import DriverError, Quality, Reading, WallClock, clock
from drivers.base import Driver
from drivers.specs import PointSpec

log = logging.getLogger(__name__)

Outputs = Mapping[str, tuple[Driver, PointSpec]]
"""Point name → (the driver its poller uses, its spec)."""

HAND_BACK_TRIES = 3
"""Writes of automatic mode on a clean stop, each read back, before giving up (derived)."""

RECOVER_S = 2.0
"""A good outlet pressure must last this long before the loop leaves its fallback (derived)."""

STARTUP_GRACE_DEFAULT_S = 10.0
"""Start-up grace, s, when the PV's device is not known (a loop built without a site config:
tests, plots); :func:`agent.control.wiring.startup_grace_s` computes it from the device
otherwise."""


class ControlLoop(DirectMode, LoopRequests):
    """See the module docstring.

    Args:
        config: the ``control:`` section.
        cache: the latest-value cache (the only thing read).
        outputs: point name → (driver, spec) for writes (:func:`outputs_from_pollers`).
        publish: receives the loop's telemetry readings (``ingest.submit``); must not block.
        event_sink: awaited with each event body (store it, wake the uplink).
        wall: wall clock for event times.
        time_of_day: local time of day in s since midnight, for the clock program (default:
            the system's local time).
        startup_grace_s: at start-up the loop waits (state ``starting``: no writes, no
            events, telemetry only) until the outlet pressure's device has answered a poll, at
            most this long, s (:func:`agent.control.wiring.startup_grace_s`); after it a PV
            that is still missing or failing is a sensor fault like any other (``pv_fault``,
            fallback).
    """

    def __init__(
        self,
        config: ControlConfig,
        cache: Cache,
        outputs: Outputs,
        *,
        publish: Callable[[Sequence[Reading]], None] | None = None,
        event_sink: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
        wall: WallClock = clock,
        time_of_day: Callable[[], float] | None = None,
        startup_grace_s: float = STARTUP_GRACE_DEFAULT_S,
    ) -> None:
        self.cfg = config
        self.startup_grace_s = startup_grace_s
        self._startup_since: float | None = None
        """Monotonic time of the first tick while the loop still waits for the PV (s)."""
        self._waiting_pv = True
        self.law = LawParams.from_config(config)
        self.cache = cache
        self.outputs = outputs
        self.publish = publish
        self.wall = wall
        self.time_of_day = time_of_day or _local_time_of_day
        self.events = EventQueue(event_sink or _discard)
        self.writers: dict[int, Writer] = {}
        for driver, _spec in outputs.values():
            self.writers.setdefault(id(driver), Writer(driver, timeout_s=1.0))
        self.mode = Mode.AUTO
        self.manual_hz = 0.0
        self.local_lock = False
        self.remote = RemoteSetpoint(config.remote, config.setpoint_mpa)
        self.sp = config.setpoint_mpa
        self.sp_eff = config.setpoint_mpa
        self.pv: float | None = None
        self.pid = PidState()
        self.staging = StagingState.initial(len(config.pumps))
        self.sensor = SensorState()
        self.pv_fault: str | None = None
        self.inter = InterlockState()
        self.sleep = SleepState()
        self.fallback = False
        self.handed_back = False
        self.active: set[str] = set()
        self.state = LoopState.STARTING
        self.schedule = TickSchedule(config.period_s)
        self._first_step = False
        """An accepted remote setpoint is waiting for its first ramp step (and its write)."""
        self._good_since: float | None = None
        self._under_since: float | None = None
        self._last_tick: float | None = None
        self._last_publish = -math.inf
        self.out = OutputSet(
            outputs,
            self.writers,
            cache,
            Confirm(config.confirm.retry_s, config.confirm.max_tries, config.confirm.window_s),
        )
        """Every control output as desired state, confirmed by read-back (:mod:`.outputs`)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        cap = config.staging.pump_capacity_m3h
        gain = config.pid.ff_hz_per_m3h
        if gain is None:
            gain = flow_gain_hz_per_m3h(config.pid.out_max_hz, cap) if cap else 0.0
        self._ff_gain = gain
        self._ff_flow: float | None = None
        self._ff_pending = 0.0
        self._new_polls: list[tuple[float, float]] = []
        self._handover: tuple[int, float, float, float, float, float] | None = None
        """(new pump, lead change Hz, head fraction, fraction applied, since s, lead Hz then)"""

    # --- life cycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every period until cancelled; on the way out hand control back (direct).

        An accepted setpoint command wakes the loop at once (:class:`TickSchedule`): that
        extra tick takes the first ramp step and writes it, without moving the deadlines."""
        self._tasks = [
            asyncio.create_task(w.run(), name="control-writer") for w in self.writers.values()
        ]
        self._tasks.append(asyncio.create_task(self.events.run(), name="control-events"))
        self._running = True
        self._event("started", mode=self.cfg.mode, setpoint_mpa=self.sp)
        try:
            while True:
                await self.schedule.wait()
                woke = time.monotonic()
                self.tick(woke)
                progress.beat("control", self._tasks)  # raises if a writer/event task ended
                self.schedule.tick_ms.append((time.monotonic() - woke) * 1000.0)
        finally:
            self._running = False
            self.remote.cancel()
            log.info("control: %s", self.schedule.summary())
            await self._hand_back()
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _hand_back(self) -> None:
        """Clean stop in direct mode: put the cabinet back in automatic, and believe it only
        once the register reads back automatic (at most :data:`HAND_BACK_TRIES` writes, each
        read back, 1 s bounds); an ERROR names the failure otherwise."""
        name = self.cfg.points.cabinet_mode
        if self.cfg.mode != "direct" or name is None or name not in self.outputs:
            return
        driver, spec = self.outputs[name]
        auto = self.cfg.codes.cabinet_auto
        for _ in range(HAND_BACK_TRIES):
            try:
                await within(driver.write(spec, auto), 1.0)
                readings = await within(driver.read(driver.plan([spec])), 1.0)
            except (DriverError, TimeoutError) as exc:
                log.warning("control: hand-back to the cabinet: %r", exc)
                continue
            got = next((r.value for r in readings if r.point == name), None)
            if got is not None and float(got) == float(auto):
                log.info("control: cabinet back in automatic (read back)")
                return
        log.error("control: the cabinet did not confirm automatic mode on stop (%s)", name)

    def status(self) -> dict[str, Any]:
        """The loop for the status page: ``{"mode", "state", "setpoint_mpa", "pv_mpa",
        "fallback", "pv_fault", "active", "drive_comm_loss", "outputs"}``; ``drive_comm_loss``
        (direct mode) is ``{"action", "timeout_s", "confirmed"}`` — whether every drive reads
        back the communication-loss action the loop set; ``outputs`` per written point its
        wanted and read-back value and state (:meth:`.outputs.OutputSet.summary`)."""
        guard = None
        if self.cfg.mode == "direct":
            cl = self.cfg.comm_loss
            points = [p for pump in self.cfg.pumps for p in (pump.comm_action, pump.comm_timeout)]
            confirmed = all(self.out.confirmed(p) for p in points if p)
            guard = {"action": cl.action, "timeout_s": cl.timeout_s, "confirmed": confirmed}
        return {
            "mode": self.cfg.mode,
            "state": self.state,
            "setpoint_mpa": round(self.sp_eff, 4),
            "pv_mpa": self.pv,
            "fallback": self.fallback,
            "pv_fault": self.pv_fault,
            "active": sorted(self.active),
            "drive_comm_loss": guard,
            "outputs": self.out.summary(),
        }

    # --- one tick -------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """One control step at monotonic time ``now`` (s): at a deadline, or early for an
        accepted setpoint request; ``dt`` is the time since the previous step (s), so the PI
        and the timers integrate the same either way. Synchronous; never blocks."""
        cfg, law = self.cfg, self.law
        if self._waiting_pv and self._await_first_pv(now):
            if now - self._last_publish >= cfg.publish_interval_s:
                self._last_publish = now
                self._publish()
            return
        dt = cfg.period_s if self._last_tick is None else max(now - self._last_tick, 1e-3)
        self._last_tick = now
        pts = cfg.points
        lead_hz = self._lead_hz()
        flow = self._value(pts.flow)
        pvr = self._pv_reading(now, lead_hz, flow)
        self.sensor, fault = check_pv(law.sensor, self.sensor, pvr)
        self.pv = pvr.value if fault is None else None
        self._track_sensor(now, fault)

        supply = SupplyReading(
            now,
            suction_mpa=self._value(pts.suction),
            suction_switch_low=_as_bool(self._value(pts.suction_switch)),
            tank_m=self._value(pts.tank_level),
            outlet_mpa=self.pv,
        )
        self.inter, changes = interlocks(law.interlocks, self.inter, supply)
        for name, raised in changes:
            self._event(
                "interlock",
                name=name,
                raised=raised,
                suction_mpa=supply.suction_mpa,
                outlet_mpa=self.pv,
            )
        self._set_active("interlock", bool(self.inter.active))

        base, period = scheduled_setpoint(cfg.setpoint_mpa, law.program, self.time_of_day())
        self._set_active("clock_program", period is not None)
        target = self.remote.target if self.mode is Mode.REMOTE else base
        self._set_active("remote_setpoint", self.mode is Mode.REMOTE)
        rate = self.remote.ramp if self.mode is Mode.REMOTE else cfg.setpoint_ramp_mpa_per_s
        # an accepted request takes its first step (one period's worth) on the tick it wakes
        first, self._first_step = self._first_step and self.mode is Mode.REMOTE, False
        self.sp = ramp(self.sp, target, rate, max(dt, cfg.period_s) if first else dt)
        sp = self.sp
        if cfg.proportional is not None:
            sp = proportional_setpoint(
                sp, flow, cfg.proportional.nominal_flow_m3h, cfg.proportional.rise_mpa
            )
            self._set_active("proportional", sp != self.sp)
        self.sp_eff = sp + sleep_offset(law.sleep, self.sleep)
        self._under_pressure(now, flow)
        if cfg.mode == "direct":
            self._direct(now, dt, flow)
        else:
            self._supervisory(now, first)
        for change in self.out.sync(now):
            self._output_event(change)
        if self.mode is Mode.REMOTE:
            self.remote.check_reached(self.sp, self.pv, self._reached_event)
        if now - self._last_publish >= cfg.publish_interval_s:
            self._last_publish = now
            self._publish()

    def _supervisory(self, now: float, first_step: bool = False) -> None:
        cfg = self.cfg
        self._write_once(cfg.points.cabinet_mode, cfg.codes.cabinet_auto, now)
        # written on change and rewritten while the read-back differs, not refreshed: the
        # cabinet runs its own loop and has no watchdog to feed (a same-value rewrite every
        # second was 1.7 needless requests/s on its bus)
        if cfg.points.run_enable:
            self._write(cfg.points.run_enable, 0 if self.inter.active else 1, now, refresh=False)
        if cfg.points.setpoint:
            # a request's first ramp step goes out now, however small
            self._write(cfg.points.setpoint, round(self.sp_eff, 3), now, tolerance=0.004,
                        force=first_step, refresh=False)  # fmt: skip
        auto = cfg.points.cabinet_mode is None or self.out.confirmed(cfg.points.cabinet_mode)
        self.state = (
            LoopState.INTERLOCK
            if self.inter.active
            else LoopState.SUPERVISORY
            if auto
            else LoopState.STARTING
        )

    # --- pieces ---------------------------------------------------------------------------

    def _await_first_pv(self, now: float) -> bool:
        """True while the loop still waits at start-up for the outlet pressure: its device has
        not answered a poll yet (nothing in the cache, or only comm-fail readings) and the
        start-up grace has not run out. A PV that has simply not been polled yet is no fault;
        one that is still missing after ``startup_grace_s`` is judged as usual."""
        if self._startup_since is None:
            self._startup_since = now
        latest = self.cache.get(self.cfg.points.pv)
        answered = latest is not None and latest.quality is not Quality.COMM_FAIL
        waited = now - self._startup_since
        if not answered and waited < self.startup_grace_s:
            return True
        self._waiting_pv = False
        if answered:
            log.info("control: first outlet pressure after %.1f s", waited)
        else:
            log.warning(
                "control: no outlet pressure (%s) within the %.1f s start-up grace",
                self.cfg.points.pv,
                self.startup_grace_s,
            )
        return False

    def _track_sensor(self, now: float, fault: str | None) -> None:
        if fault is not None:
            self._good_since = None
            if fault != self.pv_fault:
                self._event(
                    "pv_fault",
                    fault=fault,
                    fallback=self.cfg.fallback if self.cfg.mode == "direct" else None,
                )
            self.pv_fault = fault
            if not self.fallback:
                self.fallback = True
                self._set_active("fallback", True)
                if self.cfg.mode == "direct" and self.cfg.fallback == "local":
                    self._hand_over_to_cabinet(now)
            return
        if not self.fallback:
            return
        if self._good_since is None:
            self._good_since = now
        if now - self._good_since >= RECOVER_S:
            self._event("pv_recovered", fault=self.pv_fault)
            self.fallback, self.pv_fault = False, None
            self._set_active("fallback", False)
            if self.handed_back:
                self.handed_back = False
                self.state = LoopState.STARTING  # re-enter bus mode and resync from the drives

    def _hand_over_to_cabinet(self, now: float) -> None:
        self._write_once(self.cfg.points.cabinet_mode, self.cfg.codes.cabinet_auto, now)
        self.handed_back = True

    def _under_pressure(self, now: float, flow: float | None) -> None:
        il = self.cfg.interlocks
        low = self.pv is not None and self.pv < self.sp_eff - il.under_pressure_band_mpa
        low = low and self.sleep.phase is Phase.RUN
        if low:
            if self._under_since is None:
                self._under_since = now
            if (
                now - self._under_since >= il.under_pressure_s
                and "under_pressure" not in self.active
            ):
                self._set_active("under_pressure", True)
                burst = flow is not None and self.staging.count >= self.law.staging.max_running
                self._event("under_pressure", pv=self.pv, sp=round(self.sp_eff, 3), flow_m3h=flow,
                            pumps_running=self.staging.count, burst_suspected=burst)  # fmt: skip
        else:
            self._under_since = None
            if "under_pressure" in self.active:
                self._set_active("under_pressure", False)
                self._event("under_pressure_cleared", pv=self.pv)

    def _output_event(self, change: Transition) -> None:
        """An output that could not be confirmed (alarm), or is confirmed again."""
        kind = "output_failed" if change.state is OutputState.FAILED else "output_confirmed"
        self._event(
            kind,
            point=change.name,
            desired=change.desired,
            observed=change.observed,
            tries=change.tries,
        )
        if change.state is OutputState.FAILED:
            log.error(
                "control: %s not confirmed after %d tries (wanted %s, device reads %s)",
                change.name, change.tries, change.desired, change.observed,
            )  # fmt: skip

    def _reached_event(self) -> None:
        self._event("setpoint_reached", setpoint_mpa=self.remote.target, pv=self.pv)


def _as_bool(v: float | None) -> bool | None:
    return None if v is None else bool(v)


def _local_time_of_day() -> float:
    t = time.localtime()
    return t.tm_hour * 3600.0 + t.tm_min * 60.0 + t.tm_sec


async def _discard(body: dict[str, Any]) -> None:
    return None
