"""Plant physics: pure, deterministic, checked against the hydraulic relations it claims."""

from __future__ import annotations

import math
import statistics

import pytest

from hil_sim.devices.flowmeter import FlowMeter
from hil_sim.drive import WatchdogAction
from hil_sim.hydraulics import DiaphragmTank, PressureDrivenDemand, PumpCurve
from hil_sim.plant import MODE_BUS, Plant, PlantParams

DT = 0.1


def trace(plant: Plant, seconds: float) -> list[tuple[float, float, int]]:
    """(p_out, flow, pumps running) once per simulated second."""
    out = []
    per = round(1.0 / DT)
    for i in range(round(seconds / DT)):
        plant.step(DT)
        if i % per == per - 1:
            out.append((plant.p_out, plant.flow_m3h, plant.running_count))
    return out


def test_epanet_single_point_curve_passes_through_its_points() -> None:
    c = PumpCurve(q_bep_m3h=10.0, h_bep_m=35.0)
    assert c.head_m(0.0, 1.0) == pytest.approx(1.33 * 35.0)
    assert c.head_m(20.0, 1.0) == pytest.approx(0.0, abs=1e-9)
    assert c.head_m(10.0, 1.0) == pytest.approx(35.0, rel=0.01)
    assert c.efficiency(10.0, 1.0) == pytest.approx(c.eta_bep)


@pytest.mark.parametrize("s", [0.5, 0.7, 0.9])
def test_affinity_laws(s: float) -> None:
    c = PumpCurve()
    for q in (2.0, 8.0, 14.0):
        # Corresponding points: Q ∝ s, H ∝ s², P ∝ s³.
        assert c.head_m(q * s, s) == pytest.approx(c.head_m(q, 1.0) * s * s)
        assert c.shaft_power_kw(q * s, s) == pytest.approx(c.shaft_power_kw(q, 1.0) * s**3)
        h = c.head_m(q, 1.0)
        assert c.flow_m3h(h * s * s, s) == pytest.approx(q * s)
    assert c.flow_m3h(c.a_m * s * s + 0.1, s) == 0.0  # above shut-off: check valve closed


def test_tank_compliance_is_the_derivative_of_stored_water() -> None:
    tank = DiaphragmTank()
    for p in (0.30, 0.40, 0.55):
        dp = 1e-6
        numeric = (tank.water_m3(p + dp) - tank.water_m3(p - dp)) / (2 * dp)
        assert tank.compliance_m3_per_mpa(p) == pytest.approx(numeric, rel=1e-4)
    # Isothermal gas: at 0.40 MPa(g) with 0.28 MPa(g) precharge the 18 L tank holds ~4.3 L.
    assert tank.water_m3(0.40) - tank.water_m3(0.0) == pytest.approx(
        0.018 * (1 - 0.381325 / 0.501325) + 0.0005 * 0.40, rel=1e-6
    )


def test_header_pressure_follows_the_compliance_ode() -> None:
    plant = Plant(seed=3)
    plant.drives_on = False  # no pumps
    plant.suction_dip_mpa = 0.5  # mains gone: bypass check valve closed
    plant.demand_factor = 0.0
    plant.demand.leak_m3h = 3.6  # exactly 1 L/s drawn
    plant.p_out = 0.40
    p0 = plant.p_out
    for _ in range(20):
        plant.step(0.05)
    drawn = plant.params.tank.water_m3(p0) - plant.params.tank.water_m3(plant.p_out)
    assert drawn == pytest.approx(0.001, rel=0.01)
    c = plant.params.tank.compliance_m3_per_mpa(0.5 * (p0 + plant.p_out))
    assert p0 - plant.p_out == pytest.approx(0.001 / c, rel=0.02)
    assert plant.total_m3 == pytest.approx(0.001, rel=0.01)


def test_pressure_driven_demand() -> None:
    pdd = PressureDrivenDemand(pmin_mpa=0.15, preq_mpa=0.30, pexp=0.5)
    assert pdd.delivered_m3h(10.0, 0.35) == 10.0
    assert pdd.delivered_m3h(10.0, 0.10) == 0.0
    assert pdd.delivered_m3h(10.0, 0.225) == pytest.approx(10.0 * math.sqrt(0.5))


def test_cabinet_pi_holds_the_setpoint() -> None:
    plant = Plant(seed=1)
    samples = trace(plant, 240.0)[60:]
    pressures = [p for p, _, _ in samples]
    assert statistics.fmean(pressures) == pytest.approx(0.40, abs=0.003)
    assert max(abs(p - 0.40) for p in pressures) < 0.03
    assert statistics.fmean(q for _, q, _ in samples) > 5.0  # morning demand was served


def test_setpoint_change_is_followed() -> None:
    plant = Plant(seed=2)
    trace(plant, 60.0)
    plant.set_setpoint(0.45)
    samples = trace(plant, 90.0)[45:]
    assert statistics.fmean(p for p, _, _ in samples) == pytest.approx(0.45, abs=0.004)


def test_more_demand_stages_more_pumps() -> None:
    counts = {}
    for factor in (0.3, 2.5):
        plant = Plant(seed=4)
        plant.demand_factor = factor
        samples = trace(plant, 240.0)[90:]
        counts[factor] = statistics.fmean(n for _, _, n in samples)
        assert statistics.fmean(p for p, _, _ in samples) == pytest.approx(0.40, abs=0.01)
    assert counts[0.3] <= 1.2
    assert counts[2.5] >= 2.5


def test_night_low_flow_puts_the_set_to_sleep() -> None:
    plant = Plant(PlantParams(start_time_of_day_s=3 * 3600.0), seed=5)
    slept = False
    for _ in range(round(300 / DT)):
        plant.step(DT)
        slept = slept or plant.sleeping
    assert slept
    assert plant.p_out > 0.30  # the tank and wake-up keep the zone supplied


def test_totaliser_integrates_the_flow() -> None:
    plant = Plant(seed=6)
    meter = FlowMeter(plant)
    expected = 0.0
    for _ in range(round(120 / DT)):
        plant.step(DT)
        expected += plant.flow_m3h * DT / 3600.0
    meter.update()
    served = meter.map.served()
    assert plant.total_m3 == pytest.approx(expected, rel=1e-9)
    assert served["flow.total_int"] + served["flow.total_frac"] == pytest.approx(expected, rel=1e-6)
    assert expected > 0.1


def test_same_seed_same_trajectory() -> None:
    a, b, c = Plant(seed=9), Plant(seed=9), Plant(seed=10)
    for _ in range(600):
        a.step(DT)
        b.step(DT)
        c.step(DT)
    assert a.p_out == b.p_out and a.total_m3 == b.total_m3
    assert a.total_m3 != c.total_m3


def test_bus_mode_frequency_reference_drives_the_hydraulics() -> None:
    plant = Plant(seed=7)
    trace(plant, 60.0)
    plant.set_mode(MODE_BUS)
    for i in range(3):
        plant.vfd_command(i, 1)
        plant.vfd_frequency(i, 48.0)
    high = trace(plant, 30.0)[-10:]
    assert all(n == 3 for _, _, n in high)
    assert statistics.fmean(p for p, _, _ in high) > 0.50  # far above the 0.40 setpoint
    for i in range(3):
        plant.vfd_command(i, 5)  # stop
    low = trace(plant, 30.0)[-5:]
    assert all(n == 0 for _, _, n in low)
    assert statistics.fmean(p for p, _, _ in low) < 0.25  # only the mains via the bypass


@pytest.mark.parametrize(
    ("action", "running_after"), [(WatchdogAction.STOP, 0), (WatchdogAction.FREEZE, 1)]
)
def test_vfd_comms_watchdog(action: WatchdogAction, running_after: int) -> None:
    plant = Plant(seed=8)
    plant.watchdog_timeout_s = 5.0
    plant.watchdog_action = action
    plant.set_mode(MODE_BUS)
    plant.pumps[1].mode = plant.pumps[2].mode = 0  # only pump 1 takes part
    plant.vfd_command(0, 1)
    plant.vfd_frequency(0, 45.0)
    trace(plant, 4.0)
    assert plant.pumps[0].drive.f_out_hz > 30.0
    trace(plant, 10.0)  # no control writes for > 5 s
    assert plant.running_count == running_after
    plant.vfd_command(0, 1)  # a write revives the bus control (10 Hz/s ramp: 4.5 s to 45 Hz)
    trace(plant, 4.9)
    assert plant.pumps[0].drive.f_out_hz == pytest.approx(45.0)


def test_a_power_blip_drops_the_phase_monitor_trips_the_drives_and_restarts_them() -> None:
    """``power_blip_s``: the phase relay opens and every drive latches undervoltage for the
    blip; when the supply is back the drives reset by themselves (auto-restart) and pump again."""
    pl = Plant(seed=1)
    for _ in range(600):
        pl.step(0.05)
    assert pl.phase_ok and any(p.drive.f_out_hz > 0 for p in pl.pumps)
    pl.power_blip(2.0)
    for _ in range(20):
        pl.step(0.05)
    assert not pl.phase_ok
    assert [p.drive.fault_code for p in pl.pumps] == [Plant.UNDERVOLTAGE_CODE] * len(pl.pumps)
    assert all(p.drive.f_out_hz == 0 for p in pl.pumps)
    for _ in range(400):
        pl.step(0.05)
    assert pl.phase_ok
    assert [p.drive.fault_code for p in pl.pumps] == [0] * len(pl.pumps)
    assert any(p.drive.f_out_hz > 0 for p in pl.pumps)


def test_hand_back_to_the_cabinet_is_bumpless() -> None:
    """Bus mode with pumps 2 and 3 at 46 Hz, then back to automatic (as a drive watchdog or a
    clean stop does): the cabinet's PI takes over the running pumps at their speed, as real
    cascade cabinets do. The old controller reset: every pump ramped down, one restarted at
    35 Hz, and the pressure dipped (0.278 MPa seen under the agent)."""
    plant = Plant(seed=3)
    trace(plant, 20.0)
    plant.set_mode(MODE_BUS)
    for i in (1, 2):
        plant.vfd_command(i, 1)
        plant.vfd_frequency(i, 46.0)
    plant.vfd_command(0, 5)
    trace(plant, 10.0)
    plant.set_mode(0)  # automatic
    after = trace(plant, 5.0)
    assert all(running == 2 for _, _, running in after), after
    assert [p.drive.run for p in plant.pumps] == [False, True, True]
    assert min(p for p, _, _ in after) >= plant.setpoint - 0.03, after
