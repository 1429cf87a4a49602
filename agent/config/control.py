"""``control:``: the local constant-pressure loop (optional; absent = no control loop).

Pressures MPa, frequencies Hz, flows m³/h, times s. Defaults and their sources are documented
where they are used: :mod:`agent.control.law` (PI), :mod:`agent.control.staging` (cascade),
:mod:`agent.control.protect` (sensor checks, interlocks), :mod:`agent.control.lowdemand`
(sleep, clock program, proportional pressure). Setpoint bounds default to GB 50015-2019 §3.4
(fixture working pressure ≤ 0.60 MPa [S24], domain.md §1.6).

Which points exist and are writable is checked against ``devices:`` by
:func:`agent.config.checks.check_control`.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from agent.config.schema import Name, Seconds, Strict

Mpa = Annotated[float, Field(ge=0, le=1.6)]
Hz = Annotated[float, Field(ge=0, le=400)]


class PumpPoints(Strict):
    """One pump's points. ``cmd`` (run/stop command register), ``freq_ref`` (frequency
    reference), ``comm_timeout`` and ``comm_action`` (the drive's communication-loss timeout,
    s, and action code: INVT P14.04/P14.05, Danfoss 8-03/8-04 [S29]) are written in direct
    mode; ``freq`` (actual output), ``fault`` (fault code, 0 = none), ``mode`` (cabinet
    per-pump mode) and ``hours`` (running hours) are read."""

    cmd: Name | None = None
    freq_ref: Name | None = None
    comm_timeout: Name | None = None
    comm_action: Name | None = None
    freq: Name | None = None
    fault: Name | None = None
    mode: Name | None = None
    hours: Name | None = None


class ControlPoints(Strict):
    """Points the loop reads (``pv`` … ``tank_level``) and writes (``setpoint`` …
    ``cabinet_mode``)."""

    pv: Name
    pv_ma: Name | None = None
    flow: Name | None = None
    suction: Name | None = None
    suction_switch: Name | None = None
    tank_level: Name | None = None
    setpoint: Name | None = None
    run_enable: Name | None = None
    cabinet_mode: Name | None = None


class DriveCodes(Strict):
    """Command-register values (INVT Goodrive 2000H: 1 forward run, 5 stop, 7 fault reset,
    domain.md §4.4 [S70][S71]) and cabinet-mode values (Wilo 40025: 0 = p-c auto [S4]; 20 =
    bus, the simulator's extension); ``pump_auto`` is the per-pump mode that lets the loop
    use a pump (Wilo 40041–40043: 2 = auto [S4])."""

    run: int = 1
    stop: int = 5
    cabinet_auto: int = 0
    cabinet_bus: int = 20
    pump_auto: int = 2


class Pid(Strict):
    """PI(D) tuning (see :class:`agent.control.law.PidParams`).

    ``out_min_hz``: the lowest speed of a running pump, Hz; at or above the pumps' shut-off
    speed at the room's boost, below which a pump delivers nothing (it churns against its
    closed check valve). Shut-off speed = 50 Hz × √(boost head / shut-off head at 50 Hz); the
    default 34 Hz is that of a 10 m³/h-class multistage pump with the EPANET single-point curve
    (shut-off head 1.33 × the 35 m design head, domain.md §5.1 [S91], the simulator's
    ``PumpCurve``) at a 0.20–0.21 MPa boost: 33.1–33.9 Hz. The drives' own LOW FREQ defaults
    (ABB 25–30 Hz [S12][S13]) are below it, so do not copy them.
    """

    kp_hz_per_mpa: Annotated[float, Field(ge=0)] = 100.0
    ti_s: Seconds = 2.0
    td_s: Annotated[float, Field(ge=0)] = 0.0
    out_min_hz: Hz = 34.0
    out_max_hz: Hz = 50.0
    rate_hz_per_s: Seconds = 10.0
    ff_hz_per_m3h: Annotated[float, Field(ge=0)] | None = None
    """Flow feed-forward gain of one pump, Hz per m³/h; ``None`` derives it from
    ``staging.pump_capacity_m3h`` (:mod:`agent.control.feedforward`), 0 turns it off."""
    gain_by_pumps: Annotated[list[Annotated[float, Field(gt=0, le=2)]], Field(max_length=4)] = (
        Field(default_factory=list)
    )
    """Gain scheduling: ``kp_hz_per_mpa`` is multiplied by entry n − 1 while n pumps run
    (the last entry for more); empty = one gain for any number."""


class Staging(Strict):
    """Cascade (see :class:`agent.control.staging.StagingParams`)."""

    topology: Literal["all_vfd", "one_vfd"] = "all_vfd"
    standby: Annotated[int, Field(ge=0, le=3)] = 0
    stage_on_hz: Hz = 48.0
    stage_off_hz: Hz = 30.0
    pump_capacity_m3h: Annotated[float, Field(gt=0)] | None = None
    staging_band: Annotated[float, Field(ge=0, le=1)] = 0.02
    override_band: Annotated[float, Field(gt=0, le=1)] = 0.10
    stage_delay_s: Seconds = 10.0
    destage_delay_s: Seconds = 20.0
    obw_time_s: Annotated[float, Field(ge=0)] = 10.0
    override_interval_s: Annotated[float, Field(ge=0)] = 5.0
    min_run_s: Annotated[float, Field(ge=0)] = 30.0
    min_stop_s: Annotated[float, Field(ge=0)] = 10.0
    max_starts_per_hour: Annotated[int, Field(ge=1, le=120)] = 20
    full_delay_s: Annotated[float, Field(ge=0)] = 2.0


class Sleep(Strict):
    """Sleep with boost and wake (see :class:`agent.control.lowdemand.SleepParams`)."""

    enabled: bool = False
    sleep_hz: Hz = 36.0
    sleep_flow_m3h: Annotated[float, Field(ge=0)] | None = None
    sleep_delay_s: Seconds = 30.0
    boost_mpa: Annotated[float, Field(ge=0, le=0.2)] = 0.03
    boost_max_s: Seconds = 15.0
    wake_band_mpa: Annotated[float, Field(gt=0, le=0.3)] = 0.04
    min_sleep_s: Annotated[float, Field(ge=0)] = 5.0


class ClockPeriodConfig(Strict):
    """One clock-program period, local time ``HH:MM`` (may wrap past midnight)."""

    name: Name
    start: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    end: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$")]
    setpoint_mpa: Mpa


class Proportional(Strict):
    """Proportional pressure: ``rise_mpa`` added at ``nominal_flow_m3h`` (quadratic in flow)."""

    nominal_flow_m3h: Annotated[float, Field(gt=0)]
    rise_mpa: Annotated[float, Field(ge=0, le=0.3)]


class Sensor(Strict):
    """Outlet-sensor validation (see :class:`agent.control.protect.SensorParams`)."""

    stale_s: Seconds = 2.5
    """A PV older than this is stale; it must exceed the PV's poll interval (checked)."""
    pv_min_mpa: float = 0.0
    pv_max_mpa: Mpa = 1.2
    frozen_s: Seconds = 3.0
    frozen_hz: Seconds = 2.0
    frozen_flow_m3h: Annotated[float, Field(gt=0)] = 1.0


class Interlocks(Strict):
    """Interlocks (see :class:`agent.control.protect.InterlockParams`)."""

    suction_min_mpa: float | None = 0.05
    suction_recover_mpa: float = 0.08
    tank_min_m: float | None = None
    tank_recover_m: float = 0.5
    raise_delay_s: Annotated[float, Field(ge=0)] = 2.0
    """Low suction / switch / tank must last this long before the pumps stop, s."""
    recover_delay_s: Annotated[float, Field(ge=0)] = 10.0
    outlet_max_mpa: Mpa | None = 0.60
    outlet_recover_mpa: Mpa = 0.55
    outlet_recover_s: Annotated[float, Field(ge=0)] = 5.0
    under_pressure_band_mpa: Annotated[float, Field(gt=0)] = 0.05
    under_pressure_s: Annotated[float, Field(ge=0)] = 1.0


class Remote(Strict):
    """Bounds on setpoint changes from the platform: outside ``min_mpa``–``max_mpa`` or more
    than ``max_step_mpa`` from the setpoint in force is refused (never clamped); at most one
    change per ``min_interval_s``; the change is ramped at ``ramp_mpa_per_s``."""

    min_mpa: Mpa = 0.20
    max_mpa: Mpa = 0.55
    max_step_mpa: Annotated[float, Field(gt=0, le=0.5)] = 0.10
    min_interval_s: Annotated[float, Field(ge=0)] = 10.0
    ramp_mpa_per_s: Annotated[float, Field(gt=0)] = 0.01
    reached_band_mpa: Annotated[float, Field(gt=0)] = 0.01

    @model_validator(mode="after")
    def _bounds(self) -> Remote:
        if self.min_mpa > self.max_mpa:
            raise ValueError(f"min_mpa {self.min_mpa:g} > max_mpa {self.max_mpa:g}")
        return self


class ConfirmConfig(Strict):
    """Read-back of control writes (see :mod:`agent.control.outputs`): an output not read back
    is rewritten every ``retry_s`` and given up (alarm ``OUTPUT_FAILED``, fallback) after
    ``max_tries`` × ``retry_s``, which must exceed the poll interval plus the timeout of every
    written point's device (checked)."""

    retry_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    max_tries: Annotated[int, Field(ge=1, le=20)] = 3
    window_s: Annotated[float, Field(gt=0, le=60)] = 5.0


class CommLoss(Strict):
    """What each drive does when the agent stops writing (it died, the bus broke), written to
    ``pumps[].comm_action`` / ``comm_timeout`` and read back before the loop takes control in
    direct mode (domain.md §2: "configure the drive watchdog and refresh faster than the
    timeout"). ``action``: the drive's code — with the simulator's INVT-like drives 20 hands
    control back to the cabinet's own controller (its extension), 2 stops, 0 trips; never
    "continue" (1), which keeps the last speed for ever. ``timeout_s``: the drive's timeout,
    s; at least twice ``watchdog_refresh_s`` (checked)."""

    action: Annotated[int, Field(ge=0, le=65535)] = 20
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0


class ControlConfig(Strict):
    """``control:``.

    ``mode``: ``supervisory`` writes the setpoint and run enable to the cabinet's own PID and
    supervises; ``direct`` closes the loop in the agent and writes the drives' frequency
    references (the cabinet is put into bus mode). ``fallback`` is what the direct loop does on
    a bad outlet pressure: ``freeze`` (hold the output), ``fixed`` (``fallback_hz``), ``local``
    (hand control back to the cabinet). ``watchdog_refresh_s`` must be well under the drives'
    communication timeout (Danfoss 8-03 default 60 s [S29]).
    """

    mode: Literal["supervisory", "direct"] = "supervisory"
    period_s: Annotated[float, Field(ge=0.1, le=1.0)] = 0.2
    setpoint_mpa: Mpa = 0.40
    setpoint_ramp_mpa_per_s: Annotated[float, Field(gt=0)] = 0.02
    points: ControlPoints
    pumps: Annotated[list[PumpPoints], Field(min_length=1, max_length=4)]
    codes: DriveCodes = DriveCodes()
    pid: Pid = Pid()
    staging: Staging = Staging()
    sleep: Sleep = Sleep()
    clock_program: list[ClockPeriodConfig] = Field(default_factory=list)
    proportional: Proportional | None = None
    sensor: Sensor = Sensor()
    interlocks: Interlocks = Interlocks()
    remote: Remote = Remote()
    fallback: Literal["freeze", "fixed", "local"] = "local"
    fallback_hz: Hz = 40.0
    watchdog_refresh_s: Seconds = 1.0
    confirm: ConfirmConfig = ConfirmConfig()
    comm_loss: CommLoss = CommLoss()
    publish_interval_s: Seconds = 1.0

    @field_validator("period_s")
    @classmethod
    def _period(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("period_s must be finite")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ControlConfig:
        if self.staging.standby >= len(self.pumps):
            raise ValueError("staging.standby must be less than the number of pumps")
        if self.pid.out_min_hz > self.pid.out_max_hz:
            raise ValueError("pid.out_min_hz > pid.out_max_hz")
        if self.mode == "direct":
            missing = [i + 1 for i, p in enumerate(self.pumps) if not (p.cmd and p.freq_ref)]
            if missing:
                raise ValueError(f"direct mode needs cmd and freq_ref for pumps {missing}")
            unguarded = [
                i + 1 for i, p in enumerate(self.pumps) if not (p.comm_timeout and p.comm_action)
            ]
            if unguarded:
                raise ValueError(
                    f"direct mode needs comm_timeout and comm_action for pumps {unguarded}:"
                    " the loop sets each drive's communication-loss action before it takes"
                    " control (else a dead agent leaves the drives at their last speed)"
                )
            if 2 * self.watchdog_refresh_s > self.comm_loss.timeout_s:
                raise ValueError(
                    f"watchdog_refresh_s {self.watchdog_refresh_s:g} s must be at most half of"
                    f" comm_loss.timeout_s {self.comm_loss.timeout_s:g} s"
                )
        elif self.points.setpoint is None:
            raise ValueError("supervisory mode needs points.setpoint")
        return self

    def read_points(self) -> list[tuple[str, str]]:
        """``(key, point)`` for every configured point the loop reads."""
        out = [(k, v) for k, v in _items(self.points) if k in _READ_KEYS]
        for i, p in enumerate(self.pumps):
            out += [(f"pumps.{i}.{k}", v) for k, v in _items(p) if k not in PUMP_WRITES]
        return out

    def write_points(self) -> list[tuple[str, str]]:
        """``(key, point)`` for every configured point the loop writes."""
        out = [(k, v) for k, v in _items(self.points) if k not in _READ_KEYS]
        for i, p in enumerate(self.pumps):
            out += [(f"pumps.{i}.{k}", v) for k, v in _items(p) if k in PUMP_WRITES]
        return out


PUMP_WRITES = ("cmd", "freq_ref", "comm_timeout", "comm_action")
"""``pumps[]`` keys the loop writes (the others it reads)."""

_READ_KEYS = {"pv", "pv_ma", "flow", "suction", "suction_switch", "tank_level"}


def _items(model: Strict) -> list[tuple[str, str]]:
    return [(k, v) for k, v in model.model_dump().items() if isinstance(v, str)]
