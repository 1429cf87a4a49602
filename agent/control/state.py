"""Shared shapes of the control loop: setpoint-command results, telemetry codes, parameters.

Telemetry points published by the loop (``ingest.submit``), every ``publish_interval_s``:

* ``ctl.sp`` effective setpoint, MPa; ``ctl.pv`` outlet pressure as used, MPa;
  ``ctl.mv`` lead frequency output, Hz (direct) or 0 (supervisory);
* ``ctl.mode`` a :data:`MODE_CODES` value; ``ctl.pumps_running`` pumps commanded to run;
* ``ctl.active`` a bitmap of :data:`ACTIVE_BITS` (active functions, after the Grundfos
  booster "active functions" status, [S22]).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from agent.config.control import ControlConfig
from agent.config.plan import PointInfo
from agent.control.law import PidParams
from agent.control.lowdemand import ClockPeriod, SleepParams, parse_hhmm
from agent.control.protect import InterlockParams, SensorParams
from agent.control.staging import StagingParams


class LoopState(enum.StrEnum):
    """The loop's operating state (``ctl.mode``, :data:`MODE_CODES`).

    * ``starting``: not (yet) in control — waiting for the first outlet pressure, for the
      drives to read back their communication-loss settings, or for the cabinet to read back
      the mode the loop wrote.
    * ``supervisory``: the cabinet's PID runs on the loop's setpoint (read back).
    * ``direct``: the loop closes the loop (the cabinet reads back bus mode).
    * ``manual``: direct mode, output set by hand.
    * ``fallback``: bad outlet pressure, or handing control back and not yet read back.
    * ``local``: the cabinet's own controller runs the pumps (handed back, or the loop could
      not take control: an output it needs could not be confirmed).
    * ``interlock``: pumps held stopped by an interlock.
    """

    STARTING = "starting"
    SUPERVISORY = "supervisory"
    DIRECT = "direct"
    MANUAL = "manual"
    FALLBACK = "fallback"
    LOCAL = "local"
    INTERLOCK = "interlock"


MODE_CODES = {
    LoopState.STARTING: 0,
    LoopState.SUPERVISORY: 1,
    LoopState.DIRECT: 2,
    LoopState.MANUAL: 3,
    LoopState.FALLBACK: 4,
    LoopState.LOCAL: 5,
    LoopState.INTERLOCK: 6,
}
"""``ctl.mode`` values: the loop's operating state."""

ACTIVE_BITS = {
    "sleep": 1,
    "boost": 2,
    "clock_program": 4,
    "fallback": 8,
    "interlock": 16,
    "remote_setpoint": 32,
    "proportional": 64,
    "under_pressure": 128,
}
"""``ctl.active`` bits: active functions."""

_MODES = ", ".join(f"{v} {k}" for k, v in MODE_CODES.items())
_BITS = ", ".join(f"{v} {k}" for k, v in ACTIVE_BITS.items())
CATALOGUE = (
    ("ctl.sp", "MPa", "control: effective pressure setpoint"),
    ("ctl.pv", "MPa", "control: outlet pressure used by the loop"),
    ("ctl.mv", "Hz", "control: lead drive frequency output"),
    ("ctl.mode", None, f"control: state code {_MODES}"),
    ("ctl.pumps_running", None, "control: pumps commanded to run"),
    ("ctl.active", None, f"control: active functions bitmap {_BITS}"),
)
"""``(name, unit, description)`` of each telemetry point, for the point catalogue."""


def catalogue_points(config: ControlConfig | None) -> list[PointInfo]:
    """The loop's telemetry points as catalogue entries (device ``control``, read-only,
    source ``agent control loop <mode>``); empty without ``control:``."""
    if config is None:
        return []
    return [
        PointInfo(
            name, "control", unit, False, None, None, desc, f"agent control loop {config.mode}"
        )
        for name, unit, desc in CATALOGUE
    ]


RESULT_CODES = (
    "OK",
    "OUT_OF_RANGE",
    "RATE_LIMITED",
    "NOT_PERMITTED",
    "UNAVAILABLE",
    "INVALID_ARGUMENT",
)


@dataclass(frozen=True, slots=True)
class SetpointResult:
    """Answer to a setpoint request.

    Attributes:
        code: one of :data:`RESULT_CODES`.
        detail: JSON-able details (bounds, the accepted from/to, the reason).
    """

    code: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the request was accepted."""
        return self.code == "OK"


@dataclass(frozen=True, slots=True)
class LawParams:
    """The pure parts' parameters, built once from the config."""

    pid: PidParams
    staging: StagingParams
    sensor: SensorParams
    interlocks: InterlockParams
    sleep: SleepParams
    program: tuple[ClockPeriod, ...]

    @classmethod
    def from_config(cls, c: ControlConfig) -> LawParams:
        """Translate ``control:`` into the pure parameter objects."""
        st = c.staging
        return cls(
            pid=PidParams(
                kp=c.pid.kp_hz_per_mpa,
                ti_s=c.pid.ti_s if c.pid.ti_s > 0 else math.inf,
                td_s=c.pid.td_s,
                out_min=c.pid.out_min_hz,
                out_max=c.pid.out_max_hz,
                rate_hz_per_s=c.pid.rate_hz_per_s,
            ),
            staging=StagingParams(
                n_pumps=len(c.pumps),
                topology=st.topology,
                standby=st.standby,
                stage_on_hz=st.stage_on_hz,
                stage_off_hz=st.stage_off_hz,
                pump_capacity_m3h=st.pump_capacity_m3h,
                staging_band=st.staging_band,
                override_band=st.override_band,
                stage_delay_s=st.stage_delay_s,
                destage_delay_s=st.destage_delay_s,
                obw_time_s=st.obw_time_s,
                override_interval_s=st.override_interval_s,
                min_run_s=st.min_run_s,
                min_stop_s=st.min_stop_s,
                max_starts_per_hour=st.max_starts_per_hour,
                full_hz=c.pid.out_max_hz - 0.5,
                full_delay_s=st.full_delay_s,
            ),
            sensor=SensorParams(
                stale_s=c.sensor.stale_s,
                pv_min=c.sensor.pv_min_mpa,
                pv_max=c.sensor.pv_max_mpa,
                frozen_s=c.sensor.frozen_s,
                frozen_hz=c.sensor.frozen_hz,
                frozen_flow_m3h=c.sensor.frozen_flow_m3h,
            ),
            interlocks=InterlockParams(
                suction_min_mpa=c.interlocks.suction_min_mpa,
                suction_recover_mpa=c.interlocks.suction_recover_mpa,
                tank_min_m=c.interlocks.tank_min_m,
                tank_recover_m=c.interlocks.tank_recover_m,
                raise_delay_s=c.interlocks.raise_delay_s,
                recover_delay_s=c.interlocks.recover_delay_s,
                outlet_max_mpa=c.interlocks.outlet_max_mpa,
                outlet_recover_mpa=c.interlocks.outlet_recover_mpa,
                outlet_recover_s=c.interlocks.outlet_recover_s,
            ),
            sleep=SleepParams(**c.sleep.model_dump()),
            program=tuple(
                ClockPeriod(p.name, parse_hhmm(p.start), parse_hhmm(p.end), p.setpoint_mpa)
                for p in c.clock_program
            ),
        )
