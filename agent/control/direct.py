"""Direct mode: the agent closes the loop and writes the drives' frequency references (PI with
flow feed-forward, staging hand-over, drive outputs); a base of
:class:`agent.control.loop.ControlLoop`."""

from __future__ import annotations

import math
from dataclasses import replace

from agent.control.feedforward import (
    equal_speed_hz,
    extrapolate_hz,
    flow_gain_at,
    head_fraction,
    startup_fraction,
)
from agent.control.law import Mode, PidInput, PidParams, pid_step, reset_for
from agent.control.loop_io import LoopIO
from agent.control.lowdemand import (
    Phase,
    SleepInput,
    SleepState,
    sleep_step,
)
from agent.control.staging import StagingInput, StagingState, stage
from agent.control.state import LoopState
from agent.core.model import Quality

START_FRACTION = 0.8
"""A pump started from standstill begins at this fraction of ``out_max`` before the PI takes
over (Danfoss 20-82 PID start speed: ramp open-loop to a start speed, then close the loop [S6])."""
HANDOVER_MAX_S = 15.0
"""Longest a stage-on hand-over follows the new pump's speed before it is given up (derived:
a drive ramps 0→50 Hz in 3–10 s)."""


class DirectMode(LoopIO):
    """The direct-mode half of the control loop (see the module docstring); every attribute
    it uses is declared on :class:`~agent.control.loop_io.LoopIO` or here (mypy checks)."""

    _ff_gain: float
    _ff_flow: float | None
    _ff_pending: float
    _new_polls: list[tuple[float, float]]
    _handover: tuple[int, float, float, float, float, float] | None

    def _direct(self, now: float, dt: float, flow: float | None) -> None:
        cfg, law = self.cfg, self.law
        mode_point = cfg.points.cabinet_mode
        if self.handed_back:
            self._release_drives()
            self._write_once(mode_point, cfg.codes.cabinet_auto, now)
            back = mode_point is None or self.out.confirmed(mode_point)
            self.state = LoopState.LOCAL if back else LoopState.FALLBACK
            return
        guarded = self._drives_guarded(now)
        if not guarded and self.state in (LoopState.STARTING, LoopState.LOCAL):
            # Take no control before every drive reads back its communication-loss action
            # and timeout: a dead agent must not leave the drives at their last speed.
            failed = any(self.out.failed(p) for p in self._comm_points())
            self.state = LoopState.LOCAL if failed else LoopState.STARTING
            self._release_drives()
            return
        self._write_once(mode_point, cfg.codes.cabinet_bus, now)
        if mode_point is not None and not self.out.confirmed(mode_point):
            # The cabinet has not read back bus mode: its own controller still runs the pumps.
            # Write no drive reference (two controllers) and report no direct control.
            self.state = LoopState.LOCAL if self.out.failed(mode_point) else LoopState.STARTING
            self._release_drives()
            return
        if self.state in (LoopState.STARTING, LoopState.LOCAL):
            self._resync()
        running = self.staging.count
        demand = not self.inter.active
        track: float | None = None
        if self.fallback:
            track = self.pid.out if cfg.fallback == "freeze" else cfg.fallback_hz
            if running == 0:
                track = 0.0
        elif not demand or self.sleep.phase is Phase.SLEEP or running == 0:
            track = 0.0
        pv = self.pv if self.pv is not None else self.sp_eff
        ff = self._feedforward(now, flow, running, track is None and self.mode is not Mode.MANUAL)
        self.pid = pid_step(
            self._scheduled_pid(running),
            self.pid,
            PidInput(dt, self.sp_eff, pv, self.mode, self.manual_hz, track, ff),
        )
        if not self.fallback and demand:
            self.sleep = self._sleep_step(now, dt, flow, running)
        elif self.sleep.phase is not Phase.RUN:
            self.sleep = SleepState()
            self._set_active("sleep", False)
            self._set_active("boost", False)
        demand = demand and self.sleep.phase is not Phase.SLEEP
        result = stage(
            law.staging,
            self.staging,
            StagingInput(
                now, dt, self.pid.out, pv, self.sp_eff, self._available(), self._hours(), flow,
                demand, allow_start=not self.inter.pending,
            ),
        )  # fmt: skip
        if self.fallback and cfg.fallback != "fixed":
            result = type(result)(self.staging)  # freeze: no staging while the PV is unknown
        for ev in result.events:
            self._event(
                ev.kind,
                pump=ev.pump + 1,
                reason=ev.reason,
                pv=self.pv,
                mv_hz=round(self.pid.out, 2),
            )
        if running == 0 and result.state.count > 0:
            self.pid = reset_for(self.pid, START_FRACTION * law.pid.out_max)
        elif running > 0 and result.state.count != running:
            self._start_handover(now, flow, running, result.state.running)
        self.staging = result.state
        if self.inter.active:
            self.state = LoopState.INTERLOCK
        elif self.fallback:
            self.state = LoopState.FALLBACK
        else:
            self.state = LoopState.MANUAL if self.mode is Mode.MANUAL else LoopState.DIRECT
        self._drive_outputs(now)

    def _sleep_step(self, now: float, dt: float, flow: float | None, running: int) -> SleepState:
        old = self.sleep.phase
        pv = self.pv if self.pv is not None else self.sp_eff
        new = sleep_step(
            self.law.sleep,
            self.sleep,
            SleepInput(now, dt, running, self.pid.out, flow, pv, self.sp),
        )
        if new.phase is not old:
            self._event("sleep", phase=str(new.phase), pv=self.pv, flow_m3h=flow)
        self._set_active("sleep", new.phase is Phase.SLEEP)
        self._set_active("boost", new.phase is Phase.BOOST)
        return new

    def _resync(self) -> None:
        """Take over from whatever runs now: pumps turning stay running, PI starts from their
        frequency (bumpless)."""
        running = []
        for pump in self.cfg.pumps:
            hz = self._value(pump.freq)
            running.append(bool(hz and hz > 0.5))
        n = len(running)
        self.staging = StagingState(tuple(running), (-1.0e9,) * n, ((),) * n)
        outs = [v for v in (self._value(p.freq) for p in self.cfg.pumps) if v]
        self.pid = reset_for(self.pid, max(outs) if outs else 0.0)
        self.state = LoopState.DIRECT

    def _scheduled_pid(self, running: int) -> PidParams:
        """The PI tuning for ``running`` pumps: the gain times ``pid.gain_by_pumps[n − 1]``
        (gain scheduling: with n pumps in parallel near shut-off a speed change moves n times
        the flow, so the loop gain grows with n)."""
        factors = self.cfg.pid.gain_by_pumps
        if running <= 0 or not factors:
            return self.law.pid
        factor = factors[min(running, len(factors)) - 1]
        return replace(self.law.pid, kp=self.law.pid.kp * factor)

    def _release_drives(self) -> None:
        """Not in control: want nothing of the drives' run commands and references (the
        cabinet's controller drives them; its values are no failure of ours)."""
        for pump in self.cfg.pumps:
            self.out.forget(pump.freq_ref)
            self.out.forget(pump.cmd)

    def _comm_points(self) -> list[str]:
        return [p for pump in self.cfg.pumps for p in (pump.comm_action, pump.comm_timeout) if p]

    def _drives_guarded(self, now: float) -> bool:
        """Want every drive's communication-loss action and timeout (``control.comm_loss``);
        True once all of them read back."""
        cl = self.cfg.comm_loss
        for pump in self.cfg.pumps:
            self._write_once(pump.comm_action, cl.action, now)
            self._write_once(pump.comm_timeout, cl.timeout_s, now)
        return all(self.out.confirmed(p) for p in self._comm_points())

    def _flow_gain(self, running: int, flow: float) -> float:
        """Lead Hz per m³/h of total flow: ``pid.ff_hz_per_m3h`` as configured (per pump,
        shared by the running pumps), or derived at the operating point from
        ``staging.pump_capacity_m3h`` (:func:`~agent.control.feedforward.flow_gain_at`; with one
        drive and fixed-speed pumps, the drive pump's rated-point gain)."""
        cap, all_vfd = self.cfg.staging.pump_capacity_m3h, self.cfg.staging.topology == "all_vfd"
        if self.cfg.pid.ff_hz_per_m3h is not None or cap is None or not all_vfd:
            return self._ff_gain / (running if all_vfd else 1)
        return flow_gain_at(self.pid.out, flow, running, self.law.pid.out_max, cap)

    def _feedforward(self, now: float, flow: float | None, running: int, closed: bool) -> float:
        """This period's feed-forward increment, Hz (:mod:`agent.control.feedforward`): the
        flow change shared by the running pumps, plus the staging hand-over."""
        ff, self._ff_pending = self._ff_pending, 0.0
        last, self._ff_flow = self._ff_flow, flow
        if not closed or running == 0:
            self._handover = None
            return 0.0
        if flow is not None and last is not None:
            ff += self._flow_gain(running, last) * (flow - last)
        if self._handover is not None:
            pump, delta, h, done, since, since_hz = self._handover
            gone = not self.staging.running[pump] or now - since > HANDOVER_MAX_S
            new_hz, f_max = self._new_pump_hz(pump, now), self.law.pid.out_max
            target = since_hz + delta  # the equal speed the new pump comes up to
            frac = done if gone else max(done, startup_fraction(new_hz, target, h, f_max))
            ff += delta * (frac - done)  # never came up: the rest is left to the PI
            keep = not gone and frac < 1.0
            self._handover = (pump, delta, h, frac, since, since_hz) if keep else None
        return ff

    def _new_pump_hz(self, pump: int, now: float) -> float | None:
        """The starting pump's output frequency now, extrapolated from its last two polls."""
        name = self.cfg.pumps[pump].freq
        latest = self.cache.get(name) if name else None
        if latest is None or latest.quality is not Quality.GOOD or latest.value is None:
            return None
        last = (latest.mono, float(latest.value))
        prev = self._new_polls[-1] if self._new_polls else None
        if prev is None or prev[0] != last[0]:
            self._new_polls = [*self._new_polls[-1:], last]
        prev = self._new_polls[0] if len(self._new_polls) == 2 else None
        return extrapolate_hz(prev, self._new_polls[-1], now, self.pid.out)

    def _start_handover(self, now: float, flow: float | None, before: int,
                        running: tuple[bool, ...]) -> None:  # fmt: skip
        """Pumps were staged on or off: move the lead to the speed the new count needs for
        the same flow (feed-forward, :mod:`agent.control.feedforward`)."""
        st, f_max = self.cfg.staging, self.law.pid.out_max
        after = sum(running)
        if st.topology == "one_vfd":
            self._ff_pending += math.copysign(st.stage_on_hz - st.stage_off_hz, before - after)
            return
        cap = st.pump_capacity_m3h
        if not cap or flow is None:
            return
        h = head_fraction(self.pid.out, flow, before, f_max, cap)
        suction, pv = self._value(self.cfg.points.suction), self.pv
        if suction is not None and pv is not None and pv - suction > 0.02:
            # the lead's target is the head at the setpoint, not at a sagged pressure
            h *= max(self.sp_eff - suction, 0.0) / (pv - suction)
        delta = equal_speed_hz(h, flow, after, f_max, cap) - self.pid.out
        new = [i for i, r in enumerate(running) if r and not self.staging.running[i]]
        if after > before and new:
            self._handover = (new[0], delta, h, 0.0, now, self.pid.out)
            self._new_polls = []
        else:
            self._handover = None
            self._ff_pending += delta

    def _drive_outputs(self, now: float) -> None:
        cfg = self.cfg
        fixed_max = self.law.pid.out_max
        for i, pump in enumerate(cfg.pumps):
            run = self.staging.running[i]
            hz = self.pid.out if (cfg.staging.topology == "all_vfd" or i == 0) else fixed_max
            if pump.freq_ref and run:
                self._write(pump.freq_ref, round(max(hz, 0.0), 2), now, tolerance=0.05)
            elif pump.freq_ref:
                self.out.forget(pump.freq_ref)
            if pump.cmd:
                self._write(pump.cmd, cfg.codes.run if run else cfg.codes.stop, now)
