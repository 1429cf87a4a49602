"""The simulated booster pump room as one pure, deterministic state machine: ``Plant.step(dt_s)``.

A 叠压 (direct boosting) set: municipal mains → 3 pumps on VFDs in parallel (check valves) →
outlet header with an 18 L diaphragm tank → building with pressure-driven, stochastic demand.
A bypass check valve lets the mains feed the header directly when the pumps stop (usual in
叠压 sets, derived). The cabinet's controller (:mod:`hil_sim.controller`) runs the pumps in
automatic mode; in bus mode the drives follow their fieldbus commands (:mod:`hil_sim.drive`).

Units: pressure MPa gauge, flow m³/h, frequency Hz, power kW, energy kWh, time s.
Nothing here does I/O or reads a clock; random draws come from one ``random.Random(seed)``, so two
plants with the same parameters and seed produce identical trajectories.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import ClassVar

from hil_sim.controller import CabinetController, ControllerParams
from hil_sim.drive import Drive, WatchdogAction
from hil_sim.environment import PulseDemand, Room, WaterQuality
from hil_sim.hydraulics import (
    DIURNAL_PATTERN,
    M_PER_MPA,
    DiaphragmTank,
    PressureDrivenDemand,
    PumpCurve,
    Riser,
    average_flow_m3h,
    diurnal_factor,
    mains_pressure_mpa,
)

MODE_AUTO = 0
"""Cabinet control mode: constant pressure by the cabinet's PI (Wilo 40025 value 0 "p-c", [S4])."""
MODE_BUS = 20
"""Cabinet control mode: drives follow fieldbus commands (simulator extension, not a Wilo value)."""
PUMP_OFF, PUMP_HAND, PUMP_AUTO = 0, 1, 2
"""Per-pump mode, Wilo 40041–40043: 0 off, 1 hand, 2 auto ([S4])."""


@dataclass(frozen=True, slots=True)
class PlantParams:
    """Fixed parameters of the simulated room (defaults: domain.md §5 worked numbers).

    Attributes:
        n_pumps: number of pumps (each with its own VFD).
        curve: pump curve at 50 Hz.
        tank: outlet diaphragm tank.
        pdd: pressure-driven demand model.
        riser: the building up to the top-floor tap (index-point pressure ``Plant.p_index``).
        households, persons, quota_l_per_day: demand sizing (200 × 2.8 × 200 L, §5.2, [S98]).
        base_leak_m3h: always-on draw (leaking cisterns), m³/h, part of the day's volume: the
            draws carry the diurnal mean minus it (night minimum 0.05–0.2 m³/h, §5.2).
        peak_surge: amplitude of the demand's surge factor at the peak hour (Kh 2.5), falling
            linearly to 0 at the average hour (:class:`~hil_sim.environment.PulseDemand`;
            calibrated so the peak hour's highest instant is §5.2's design flow, ≈ 26 m³/h).
            Scaled by the draws' duration scale in a compressed day (``day_speed``).
        mains_mean_mpa, mains_swing_mpa: municipal suction pressure, MPa.
        bypass_m3h_per_sqrt_mpa: bypass check-valve conductance, m³/h per √MPa.
        dry_run_mpa, dry_run_delay_s: suction below this for this long stops all pumps
            (Grundfos water shortage > 5 s, [S14]); they restart when it recovers.
        min_pressure_frac, max_pressure_frac: low/high outlet-pressure alarm thresholds as
            fractions of the setpoint (derived from the Aquavar under-pressure example, [S27]).
        start_time_of_day_s: local time of day at plant time 0, s since midnight.
        p_noise_mpa, flow_noise_frac: standard deviation of sensor noise.
        controller: cabinet controller tuning.
        pattern: 24 hourly factors of the average-day flow (default
            :data:`~hil_sim.hydraulics.DIURNAL_PATTERN`, domain.md §5.2).
        random_draws: False replaces the Poisson draws by their mean (a smooth, repeatable
            demand for scenarios that test control, not statistics).
    """

    n_pumps: int = 3
    curve: PumpCurve = field(default_factory=PumpCurve)
    tank: DiaphragmTank = field(default_factory=DiaphragmTank)
    pdd: PressureDrivenDemand = field(default_factory=PressureDrivenDemand)
    riser: Riser = field(default_factory=Riser)
    households: int = 200
    persons: float = 2.8
    quota_l_per_day: float = 200.0
    base_leak_m3h: float = 0.1
    peak_surge: float = 0.8
    mains_mean_mpa: float = 0.20
    mains_swing_mpa: float = 0.04
    bypass_m3h_per_sqrt_mpa: float = 60.0
    dry_run_mpa: float = 0.03
    dry_run_delay_s: float = 5.0
    min_pressure_frac: float = 0.5
    max_pressure_frac: float = 1.5
    start_time_of_day_s: float = 8 * 3600.0
    p_noise_mpa: float = 0.0005
    flow_noise_frac: float = 0.003
    controller: ControllerParams = field(default_factory=ControllerParams)
    pattern: tuple[float, ...] = DIURNAL_PATTERN
    random_draws: bool = True


@dataclass
class PumpState:
    """Per-pump state besides its drive. Hours in s, energy kWh, flow m³/h, power kW."""

    drive: Drive = field(default_factory=Drive)
    mode: int = PUMP_AUTO
    flow_m3h: float = 0.0
    power_kw: float = 0.0
    head_m: float = 0.0
    run_s: float = 0.0
    starts: int = 0
    energy_kwh: float = 0.0
    was_running: bool = False


DRAW_FRACTION_OF_HOUR = 0.5
"""With a compressed day, a draw lasts on average at most this fraction of one (compressed)
hour of the diurnal profile (derived: keeps the hourly profile's shape in the delivered flow)."""


def draw_duration_scale(day_speed: float, mean_duration_s: float) -> float:
    """Multiplier of the mean draw duration for a day running ``day_speed`` times faster than
    plant time: 1 in real time, ``DRAW_FRACTION_OF_HOUR`` × 3600 s / ``day_speed`` /
    ``mean_duration_s`` once that is shorter (a day in 8 min: 60 s draws → 10 s)."""
    if day_speed <= 1.0 or mean_duration_s <= 0.0:
        return 1.0
    return min(1.0, DRAW_FRACTION_OF_HOUR * 3600.0 / day_speed / mean_duration_s)


class Plant:
    """The pump room. Create, then call :meth:`step` repeatedly; read attributes for the state.

    Args:
        params: fixed parameters.
        seed: seed of the plant's random generator.

    Public state (read freely; change only through the methods): ``t_s`` plant time (s),
    ``p_in`` / ``p_out`` true suction / outlet pressure (MPa), ``p_index`` true pressure at the
    top-floor tap (MPa, see :class:`~hil_sim.hydraulics.Riser`), ``p_in_meas`` / ``p_out_meas``
    transmitter readings (MPa), ``flow_m3h`` delivered demand, ``flow_meas_m3h`` meter reading,
    ``required_m3h``, ``total_m3`` totaliser (m³), ``pumps``, ``setpoint``, ``mode``,
    ``drives_on``, ``demand_factor``, ``suction_dip_mpa``, ``quality``, ``room``, ``alarms``.
    """

    def __init__(self, params: PlantParams | None = None, seed: int = 0) -> None:
        self.params = p = params or PlantParams()
        self.rng = random.Random(seed)
        self.t_s = 0.0
        self.setpoint = 0.40
        self.mode = MODE_AUTO
        self.drives_on = True
        self.demand_factor = 1.0
        self.suction_dip_mpa = 0.0
        self.watchdog_fallbacks = 0
        self.day_speed = 1.0
        self.pt_out_fault = "none"
        self.blip_until_s = 0.0
        """A supply blip lasts until this plant time (:meth:`power_blip`)."""
        self.bypass_factor = 1.0
        """Opening of the mains bypass check valve, 0–1 (0: stuck closed, a scenario fault)."""
        self._tod_s = p.start_time_of_day_s
        self.pumps = [PumpState() for _ in range(p.n_pumps)]
        self.controller = CabinetController(p.n_pumps, p.controller, p.curve)
        self.demand = PulseDemand(leak_m3h=p.base_leak_m3h)
        self.quality = WaterQuality()
        self.room = Room()
        self.p_in = mains_pressure_mpa(p.start_time_of_day_s, p.mains_mean_mpa, p.mains_swing_mpa)
        self.p_out = self.p_in
        self.p_in_meas = self.p_in
        self.p_out_meas = self.p_out
        self.p_index = p.riser.index_pressure_mpa(self.p_out, 0.0)
        self.required_m3h = 0.0
        self.flow_m3h = 0.0
        self.flow_meas_m3h = 0.0
        self.bypass_m3h = 0.0
        self.total_m3 = 0.0
        self.sleeping = False
        self.dry_run = False
        self._dry_timer = 0.0
        self._low_timer = 0.0
        self.alarms = {"min_pressure": False, "max_pressure": False, "dry_run": False}

    # --- commands (from the device layer) --------------------------------------------------

    def vfd_command(self, pump: int, code: int) -> None:
        """INVT 2000H command to pump ``pump`` (0-based). Raises ValueError on unknown codes."""
        self.pumps[pump].drive.command(code, self.t_s)

    def vfd_frequency(self, pump: int, hz: float) -> None:
        """INVT 2001H frequency reference (Hz) to pump ``pump`` (0-based)."""
        self.pumps[pump].drive.set_frequency(hz, self.t_s)

    def set_mode(self, mode: int) -> None:
        """Cabinet control mode, :data:`MODE_AUTO` or :data:`MODE_BUS`. Raises ValueError."""
        if mode not in (MODE_AUTO, MODE_BUS):
            raise ValueError(f"unknown cabinet mode {mode}")
        if mode != self.mode:
            if mode == MODE_AUTO:  # bumpless: the cabinet's PI takes over the running pumps
                self.controller.takeover(
                    [p.drive.f_out_hz > 0.0 for p in self.pumps],
                    max(p.drive.f_out_hz for p in self.pumps),
                )
            else:
                self.controller.reset()
            for pump in self.pumps:  # bus control starts from the drive's present state
                pump.drive.bus_run = pump.drive.run
                pump.drive.bus_freq_hz = pump.drive.f_target_hz
                pump.drive.last_control_s = self.t_s
        self.mode = mode

    def set_pump_mode(self, pump: int, mode: int) -> None:
        """Per-pump mode 0 off / 1 hand / 2 auto (Wilo 40041–40043). Raises ValueError."""
        if mode not in (PUMP_OFF, PUMP_HAND, PUMP_AUTO):
            raise ValueError(f"unknown pump mode {mode}")
        self.pumps[pump].mode = mode

    def set_setpoint(self, mpa: float) -> None:
        """Outlet pressure setpoint, MPa; accepted range 0.05–1.2 MPa (domain.md §1.6)."""
        if not 0.05 <= mpa <= 1.2:
            raise ValueError(f"setpoint {mpa} MPa outside 0.05–1.2")
        self.setpoint = mpa

    def trip(self, pump: int, code: int) -> None:
        """Latch fault ``code`` on pump ``pump``'s drive (cleared by INVT command 7)."""
        self.pumps[pump].drive.fault_code = code

    UNDERVOLTAGE_CODE: ClassVar[int] = 10
    """Fault code a drive latches on a supply blip (INVT "UV", config/faultmaps/invt_gd200a.yaml;
    the number is that map's assumption)."""

    def power_blip(self, seconds: float) -> None:
        """A supply blip of ``seconds``: the phase monitor drops, every drive trips with
        undervoltage, and restarts by itself when the supply is back (drive auto-restart after
        undervoltage, domain.md §2 "power failure / blip")."""
        self.blip_until_s = self.t_s + max(0.0, seconds)
        for pump in self.pumps:
            pump.drive.fault_code = self.UNDERVOLTAGE_CODE

    @property
    def phase_ok(self) -> bool:
        """The phase monitor relay: False during a supply blip."""
        return self.t_s >= self.blip_until_s

    def acknowledge(self) -> None:
        """Clear latched pump faults (Wilo 40141 acknowledge, [S4])."""
        for pump in self.pumps:
            pump.drive.fault_code = 0

    # --- physics ---------------------------------------------------------------------------

    @property
    def time_of_day_s(self) -> float:
        """Local time of day, s since midnight. It runs ``day_speed`` times faster than plant
        time (a day compressed into minutes for the diurnal demand profile, while every
        dynamic — drives, tank, draws — stays in plant time)."""
        return self._tod_s % 86400.0

    PT_FAULTS: ClassVar[dict[str, float | None]] = {
        "none": None,
        "open": -0.4,
        "short": 1.8,
        "range": 1.4,
    }
    """Outlet-transmitter faults: the value it reports, MPa. ``open``: a 0–1.6 MPa 4–20 mA
    element with an open loop (0 mA → −0.4 MPa); ``short``: 22 mA → 1.8 MPa (NAMUR NE 43 failure
    currents [S31]); ``range``: an implausible but in-span 1.4 MPa (domain.md §6.2)."""

    @property
    def p_out_tx(self) -> float:
        """What the outlet RS-485 transmitter reports, MPa (:data:`PT_FAULTS`); the cabinet's
        own controller keeps its separate sensor (``p_out_meas``)."""
        fault = self.PT_FAULTS.get(self.pt_out_fault)
        return self.p_out_meas if fault is None else fault

    @property
    def watchdog_timeout_s(self) -> float:
        """Communication timeout of the drives, s (pump 1's; setting it sets every drive's,
        as a commissioning tool would; each drive's own is ``drive.comm_timeout_s``)."""
        return self.pumps[0].drive.comm_timeout_s

    @watchdog_timeout_s.setter
    def watchdog_timeout_s(self, value: float) -> None:
        for pump in self.pumps:
            pump.drive.comm_timeout_s = value

    @property
    def watchdog_action(self) -> WatchdogAction:
        """Communication-loss action of the drives (pump 1's; setting it sets every drive's)."""
        return self.pumps[0].drive.comm_action

    @watchdog_action.setter
    def watchdog_action(self, value: WatchdogAction) -> None:
        for pump in self.pumps:
            pump.drive.comm_action = value

    def _watchdog_local(self) -> None:
        """Bus mode with drives set to the ``local`` action: when none of them got a control
        write for its timeout, the cabinet's own controller takes over (WatchdogAction.LOCAL),
        bumplessly (:meth:`set_mode`)."""
        local = [
            p.drive
            for p in self.pumps
            if p.drive.comm_action is WatchdogAction.LOCAL and p.drive.comm_timeout_s > 0
        ]
        if not local or self.mode != MODE_BUS:
            return
        silent_s = self.t_s - max(d.last_control_s for d in local)
        if silent_s > min(d.comm_timeout_s for d in local):
            self.set_mode(MODE_AUTO)
            self.watchdog_fallbacks += 1

    def step(self, dt_s: float) -> None:
        """Advance the plant by ``dt_s`` seconds (> 0; 0.05–0.1 s keeps the dynamics right)."""
        p = self.params
        self.t_s += dt_s
        self._tod_s += dt_s * self.day_speed
        tod = self.time_of_day_s
        self.p_in = max(
            mains_pressure_mpa(tod, p.mains_mean_mpa, p.mains_swing_mpa) - self.suction_dip_mpa,
            -0.05,
        )
        factor = diurnal_factor(tod, p.pattern)
        mean = average_flow_m3h(p.households, p.persons, p.quota_l_per_day) * factor
        surge = p.peak_surge * min(max((factor - 1.0) / 1.5, 0.0), 1.0)
        self.demand.duration_scale = draw_duration_scale(
            self.day_speed, self.demand.mean_duration_s
        )
        draws = max(mean * self.demand_factor - p.base_leak_m3h, 0.0)  # the leak is in the day
        # a compressed day shortens the draws and shows the profile, not the instants: the
        # surge fades with the draws' duration scale (1 in real time)
        surge *= self.demand.duration_scale
        if p.random_draws:
            self.required_m3h = self.demand.step(self.t_s, draws, self.rng, surge)
        else:
            self.required_m3h = self.demand.leak_m3h + draws

        # Dry-run protection (device-side, §2): stop everything while suction is lost.
        self._dry_timer = self._dry_timer + dt_s if self.p_in < p.dry_run_mpa else 0.0
        self.dry_run = self._dry_timer >= p.dry_run_delay_s or (
            self.dry_run and self.p_in < p.dry_run_mpa
        )

        if self.blip_until_s and self.t_s >= self.blip_until_s:  # supply back: auto-restart
            self.blip_until_s = 0.0
            for pump in self.pumps:
                if pump.drive.fault_code == self.UNDERVOLTAGE_CODE:
                    pump.drive.fault_code = 0
        self._drive_pumps(dt_s)
        self._solve_header(dt_s)
        self._account(dt_s)

    def _drive_pumps(self, dt_s: float) -> None:
        self._watchdog_local()
        hours = [pump.run_s for pump in self.pumps]
        available = [pump.mode == PUMP_AUTO and not pump.drive.fault_code for pump in self.pumps]
        decision = None
        if self.mode == MODE_AUTO and self.drives_on and not self.dry_run:
            decision = self.controller.step(
                dt_s,
                self.p_out_meas,
                self.setpoint,
                available,
                hours,
                self.flow_meas_m3h,
                (self.p_out_meas - self.p_in_meas) * M_PER_MPA,
            )
            self.sleeping = decision.sleeping
        else:
            self.controller.reset()
            self.sleeping = False
        for i, pump in enumerate(self.pumps):
            run, ref = False, 0.0
            if not self.drives_on or self.dry_run or pump.mode == PUMP_OFF:
                pass
            elif pump.mode == PUMP_HAND:
                run, ref = True, pump.drive.f_max_hz
            elif decision is not None:
                run, ref = decision.run[i], decision.freq_ref_hz
            elif self.mode == MODE_BUS:
                d = pump.drive
                run, ref = d.bus_target(self.t_s, d.comm_timeout_s, d.comm_action)
            pump.drive.step(dt_s, run, ref)
            running = pump.drive.f_out_hz > 0.0
            if running and not pump.was_running:
                pump.starts += 1
            pump.was_running = running

    def _net_inflow_m3h(self, p_out: float) -> float:
        prm = self.params
        head = (p_out - self.p_in) * M_PER_MPA
        q = 0.0
        for pump in self.pumps:
            q += prm.curve.flow_m3h(head, pump.drive.speed_hz / pump.drive.f_max_hz)
        if self.p_in > p_out:
            q += self.bypass_factor * prm.bypass_m3h_per_sqrt_mpa * math.sqrt(self.p_in - p_out)
        return q - prm.pdd.delivered_m3h(self.required_m3h, p_out)

    def _solve_header(self, dt_s: float) -> None:
        """Implicit (backward Euler) step of the tank compliance ODE dV(p)/dt = ΣQ_in − Q_out.

        ``V(p_new) − V(p_old) − dt·net_inflow(p_new) = 0`` is increasing in ``p_new``, so
        bisection always converges — stable even where the tank is empty and only the stiff
        pipe compliance remains.
        """
        tank = self.params.tank
        v_old = tank.water_m3(self.p_out)
        lo, hi = -0.09, 3.0
        for _ in range(48):
            mid = 0.5 * (lo + hi)
            if tank.water_m3(mid) - v_old - dt_s * self._net_inflow_m3h(mid) / 3600.0 > 0.0:
                hi = mid
            else:
                lo = mid
        self.p_out = 0.5 * (lo + hi)

    def _account(self, dt_s: float) -> None:
        prm = self.params
        head = (self.p_out - self.p_in) * M_PER_MPA
        loss_kw = 0.0
        for pump in self.pumps:
            s = pump.drive.speed_hz / pump.drive.f_max_hz
            pump.flow_m3h = prm.curve.flow_m3h(head, s)
            pump.head_m = prm.curve.head_m(pump.flow_m3h, s) if s > 0 else 0.0
            pump.power_kw = prm.curve.electrical_power_kw(pump.flow_m3h, s)
            loss_kw += pump.power_kw * (1.0 - prm.curve.eta_drive)
            pump.energy_kwh += pump.power_kw * dt_s / 3600.0
            if pump.drive.f_out_hz > 0.0:
                pump.run_s += dt_s
        self.bypass_m3h = (
            self.bypass_factor * prm.bypass_m3h_per_sqrt_mpa * math.sqrt(self.p_in - self.p_out)
            if self.p_in > self.p_out
            else 0.0
        )
        self.flow_m3h = prm.pdd.delivered_m3h(self.required_m3h, self.p_out)
        self.total_m3 += self.flow_m3h * dt_s / 3600.0
        self.p_index = prm.riser.index_pressure_mpa(self.p_out, self.flow_m3h)
        rng = self.rng
        self.p_out_meas = self.p_out + rng.gauss(0.0, prm.p_noise_mpa)
        self.p_in_meas = self.p_in + rng.gauss(0.0, prm.p_noise_mpa)
        self.flow_meas_m3h = max(0.0, self.flow_m3h * (1.0 + rng.gauss(0.0, prm.flow_noise_frac)))
        self.quality.step(dt_s, self.flow_m3h, rng)
        self.room.step(dt_s, loss_kw)

        low = self.p_out < self.setpoint * prm.min_pressure_frac
        self._low_timer = self._low_timer + dt_s if low else 0.0
        self.alarms["min_pressure"] = self._low_timer >= 10.0
        self.alarms["max_pressure"] = self.p_out > self.setpoint * prm.max_pressure_frac
        self.alarms["dry_run"] = self.dry_run

    @property
    def running_count(self) -> int:
        """Number of pumps whose drive output frequency is above zero."""
        return sum(1 for pump in self.pumps if pump.drive.f_out_hz > 0.0)

    def summary(self) -> str:
        """One-line human summary of the state (for the CLI)."""
        freqs = "/".join(f"{pump.drive.f_out_hz:4.1f}" for pump in self.pumps)
        h, rem = divmod(int(self.time_of_day_s), 3600)
        return (
            f"t={self.t_s:8.1f}s {h:02d}:{rem // 60:02d} p_in={self.p_in:.3f} "
            f"p_out={self.p_out:.3f}/{self.setpoint:.2f} p_top={self.p_index:.3f} MPa "
            f"Q={self.flow_m3h:5.2f} m³/h "
            f"pumps={self.running_count} f={freqs} Hz{' sleep' if self.sleeping else ''}"
            f"{' DRY-RUN' if self.dry_run else ''}"
        )
