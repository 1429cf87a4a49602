"""Table tests of the pure parts: PI law, staging, sensor checks, interlocks, sleep, program."""

from __future__ import annotations

import math

import pytest

from agent.control.law import Mode, PidInput, PidParams, PidState, pid_step, ramp
from agent.control.lowdemand import (
    ClockPeriod,
    Phase,
    SleepInput,
    SleepParams,
    SleepState,
    parse_hhmm,
    proportional_setpoint,
    scheduled_setpoint,
    sleep_step,
)
from agent.control.protect import (
    InterlockParams,
    InterlockState,
    PvReading,
    SensorParams,
    SensorState,
    SupplyReading,
    check_pv,
    interlocks,
)
from agent.control.staging import StagingInput, StagingParams, StagingState, stage

P = PidParams(kp=100.0, ti_s=2.0, out_min=25.0, out_max=50.0, rate_hz_per_s=10.0)


@pytest.mark.parametrize(
    ("state", "inp", "out"),
    [
        # P + I: e = 0.01 → P = 1 Hz, I += 100/2·0.01·0.2 = 0.1 Hz
        (PidState(40.0, 0, 0.40, 41.0), PidInput(0.2, 0.40, 0.39), 41.1),
        # rate limit 10 Hz/s · 0.2 s = 2 Hz per period
        (PidState(40.0, 0, 0.40, 40.0), PidInput(0.2, 0.50, 0.40), 42.0),
        # output limit high
        (PidState(49.0, 0, 0.40, 49.5), PidInput(0.2, 0.45, 0.40), 50.0),
        # output limit low
        (PidState(26.0, 0, 0.40, 26.0), PidInput(0.2, 0.40, 0.45), 25.0),
        # manual: output follows manual_out
        (PidState(40.0, 0, 0.40, 40.0), PidInput(0.2, 0.40, 0.30, Mode.MANUAL, 33.0), 33.0),
        # track: held at the tracked value whatever the error
        (PidState(40.0, 0, 0.40, 40.0), PidInput(0.2, 0.40, 0.30, track=38.0), 38.0),
        # from standstill (out 0) no rate limit: the drive's own ramp applies
        (PidState(40.0, 0, 0.40, 0.0), PidInput(0.2, 0.40, 0.40), 40.0),
    ],
)
def test_pid_step_table(state: PidState, inp: PidInput, out: float) -> None:
    assert pid_step(P, state, inp).out == pytest.approx(out, abs=1e-9)


def test_anti_windup_recovers_at_once() -> None:
    s = PidState(45.0, 0, 0.30, 45.0)
    for _ in range(200):  # 40 s far below setpoint: output saturates
        s = pid_step(P, s, PidInput(0.2, 0.40, 0.30))
    assert s.out == 50.0
    assert s.integral <= 50.0 - 100.0 * 0.10 + 1e-9  # clamped, not wound up
    s = pid_step(P, s, PidInput(0.2, 0.40, 0.41))  # error changes sign
    assert s.out < 50.0


def test_manual_to_auto_is_bumpless() -> None:
    s = PidState(40.0, 0, 0.40, 40.0)
    s = pid_step(P, s, PidInput(0.2, 0.40, 0.38, Mode.MANUAL, 37.0))
    s2 = pid_step(P, s, PidInput(0.2, 0.40, 0.38, Mode.AUTO))
    assert s2.out == pytest.approx(37.0 + 100.0 / 2.0 * 0.02 * 0.2)  # one period of I, no P jump


def test_derivative_on_measurement_no_setpoint_kick() -> None:
    p = PidParams(kp=100.0, ti_s=math.inf, td_s=1.0, rate_hz_per_s=1000.0)
    s = PidState(40.0, 0.0, 0.40, 40.0)
    s = pid_step(p, s, PidInput(0.2, 0.45, 0.40))  # SP step, PV flat
    assert s.d_term == 0.0
    s = pid_step(p, s, PidInput(0.2, 0.45, 0.42))  # PV rises: D opposes
    assert s.d_term < 0.0


@pytest.mark.parametrize(
    ("cur", "tgt", "rate", "dt", "out"),
    [(0.40, 0.45, 0.01, 1.0, 0.41), (0.40, 0.405, 0.01, 1.0, 0.405), (0.45, 0.40, 0.01, 2.0, 0.43),
     (0.40, 0.45, 0.0, 1.0, 0.45)],
)  # fmt: skip
def test_ramp(cur: float, tgt: float, rate: float, dt: float, out: float) -> None:
    assert ramp(cur, tgt, rate, dt) == pytest.approx(out)


SP = StagingParams(n_pumps=3, stage_delay_s=10, destage_delay_s=20, min_run_s=30, min_stop_s=10,
                   obw_time_s=10, max_starts_per_hour=3)  # fmt: skip


def run_staging(state: StagingState, steps: int, **kw: object) -> tuple[StagingState, list]:
    events = []
    base = {"dt_s": 1.0, "mv_hz": 40.0, "pv": 0.40, "sp": 0.40, "available": (True,) * 3,
            "hours": (5.0, 1.0, 3.0), "flow_m3h": None, "demand": True}  # fmt: skip
    base.update(kw)
    t0 = float(base.pop("t0", 1000.0))  # type: ignore[arg-type]
    for k in range(steps):
        r = stage(SP, state, StagingInput(now_s=t0 + k, **base))  # type: ignore[arg-type]
        state = r.state
        events += [(t0 + k, e.kind, e.pump) for e in r.events]
    return state, events


def test_lead_is_the_pump_with_fewest_hours() -> None:
    s, ev = run_staging(StagingState.initial(3), 1)
    assert s.running == (False, True, False)
    assert ev == [(1000.0, "stage_on", 1)]


def test_stage_on_after_delay_only_when_short_of_band() -> None:
    s0 = StagingState((False, True, False), (0.0,) * 3, ((), (), ()))
    _, ev = run_staging(s0, 9, mv_hz=49.0, pv=0.38)
    assert ev == []
    _, ev = run_staging(s0, 11, mv_hz=49.0, pv=0.38)
    assert [e[1:] for e in ev] == [("stage_on", 2)]  # next fewest hours: pump 3
    _, ev = run_staging(s0, 30, mv_hz=49.0, pv=0.395)  # inside the staging band
    assert ev == []


def test_override_band_stages_at_once_then_lets_each_pump_come_up() -> None:
    """The first pump at once, the next only after the default 5 s a drive needs to reach the
    pump's shut-off speed (the old 2 s stacked three starts within 4.2 s)."""
    s0 = StagingState((False, True, False), (0.0,) * 3, ((), (), ()))
    _, ev = run_staging(s0, 7, mv_hz=50.0, pv=0.30)
    assert [e[1] for e in ev] == ["stage_on", "stage_on"]
    assert ev[1][0] - ev[0][0] == 5.0  # override_interval_s


def test_no_pump_starts_while_low_supply_is_pending() -> None:
    """Low suction not yet raised (its raise delay runs): the pressure sags for want of water,
    not of pumps, so the override band starts no pump; once allowed again it does."""
    s0 = StagingState((False, True, False), (0.0,) * 3, ((), (), ()))
    _, ev = run_staging(s0, 7, mv_hz=50.0, pv=0.30, allow_start=False)
    assert ev == []
    _, ev = run_staging(StagingState.initial(3), 1, allow_start=False)
    assert ev == []  # not even the lead
    _, ev = run_staging(s0, 1, mv_hz=50.0, pv=0.30)
    assert [e[1] for e in ev] == ["stage_on"]


def test_destage_timer_holds_through_a_short_dip() -> None:
    """Low flow for one pump fewer, with a 2 s dip below the staging band (not below the
    override band) every 10 s: the destage timer holds through the dips and the pump stops
    after ~20 s of low flow (the old timer restarted on each dip and never got there)."""
    p = StagingParams(n_pumps=3, pump_capacity_m3h=10.0, destage_delay_s=20, min_run_s=0)
    s = StagingState((True, True, False), (0.0,) * 3, ((), (), ()))
    stopped = None
    for k in range(60):
        pv = 0.385 if k % 10 in (8, 9) else 0.40  # below 0.392 (2 % band), above 0.36 (OBW)
        r = stage(p, s, StagingInput(1000.0 + k, 1.0, 40.0, pv, 0.40, (True,) * 3,
                                     (5.0, 1.0, 3.0), 5.0))  # fmt: skip
        s = r.state
        if any(e.kind == "stage_off" for e in r.events) and stopped is None:
            stopped = k
    assert stopped is not None and stopped <= 26, stopped


def test_destage_on_low_flow_after_delay_and_min_run() -> None:
    s0 = StagingState((True, True, False), (0.0,) * 3, ((), (), ()))
    _, ev = run_staging(s0, 25, mv_hz=40.0, flow_m3h=5.0)
    assert ev == []  # no capacity configured, frequency above stage_off
    p = StagingParams(n_pumps=3, pump_capacity_m3h=10.0, destage_delay_s=20, min_run_s=30)
    s = s0
    kinds = []
    for k in range(25):
        r = stage(p, s, StagingInput(1000.0 + k, 1.0, 40.0, 0.40, 0.40, (True,) * 3,
                                     (5.0, 1.0, 3.0), 5.0))  # fmt: skip
        s = r.state
        kinds += [(k, e.kind, e.pump) for e in r.events]
    assert kinds == [(19, "stage_off", 0)]  # the one with the most hours


def test_max_starts_per_hour_and_fault_changeover() -> None:
    s = StagingState.initial(3)
    starts = 0
    for k in range(10):
        # demand on/off cycles every 20 s; pump 2 (fewest hours) may start only 3 times/hour
        r = stage(SP, s, StagingInput(1000.0 + 20 * k, 1.0, 40.0, 0.4, 0.4, (True,) * 3,
                                      (5.0, 1.0, 3.0), None, demand=k % 2 == 0))  # fmt: skip
        s = r.state
        starts += sum(1 for e in r.events if e.kind == "stage_on" and e.pump == 1)
    assert starts == 3
    s = StagingState((False, True, False), (0.0,) * 3, ((), (), ()))
    r = stage(SP, s, StagingInput(2000.0, 1.0, 40.0, 0.4, 0.4, (True, False, True),
                                  (5.0, 1.0, 3.0)))  # fmt: skip
    assert [(e.kind, e.pump) for e in r.events] == [("pump_lost", 1), ("stage_on", 2)]


def test_standby_caps_running_pumps() -> None:
    p = StagingParams(n_pumps=3, standby=1, override_interval_s=0.0)
    s = StagingState((True, True, False), (0.0,) * 3, ((), (), ()))
    r = stage(p, s, StagingInput(1000.0, 1.0, 50.0, 0.2, 0.4, (True,) * 3, (0, 0, 0)))
    assert r.state.count == 2 and r.events == ()


@pytest.mark.parametrize(
    ("reading", "fault"),
    [
        (PvReading(10.0, 0.40), None),
        (PvReading(10.0, None, "comms"), "comms"),
        (PvReading(10.0, None, "missing"), "comms"),
        (PvReading(10.0, 0.40, age_s=1.5), "stale"),
        (PvReading(10.0, 0.40, ma=3.5), "open"),
        (PvReading(10.0, 0.40, ma=3.7), None),
        (PvReading(10.0, 0.40, ma=21.5), "short"),
        (PvReading(10.0, 1.4), "range"),
        (PvReading(10.0, -0.2), "range"),
        (PvReading(10.0, None, "bad"), "bad"),
    ],
)
def test_check_pv_table(reading: PvReading, fault: str | None) -> None:
    assert check_pv(SensorParams(), SensorState(), reading)[1] == fault


def test_frozen_only_while_speed_changes() -> None:
    p = SensorParams(frozen_s=3.0, frozen_hz=2.0)
    s, f = SensorState(), None
    for k in range(50):  # identical value, speed steady: not frozen
        s, f = check_pv(p, s, PvReading(k * 0.2, 0.4012, lead_hz=40.0))
    assert f is None
    s = SensorState()
    for k in range(20):  # identical value while the drive moves 40 → 44 Hz
        s, f = check_pv(p, s, PvReading(k * 0.2, 0.4012, lead_hz=40.0 + 0.2 * k))
    assert f == "frozen"


def test_frozen_at_steady_speed_when_the_flow_moves() -> None:
    """A frozen transmitter at steady speed (the PI sees no error and holds the speed): the
    flow moving while the value stays bit-identical is the sign (the old check needed ≥ 2 Hz
    of speed change and never fired)."""
    p = SensorParams(frozen_s=3.0, frozen_hz=2.0, frozen_flow_m3h=1.0)
    s, f, when = SensorState(), None, None
    for k in range(40):  # 8 s at 0.2 s, speed steady, flow 10 → 13.9 m³/h
        s, f = check_pv(p, s, PvReading(k * 0.2, 0.4012, lead_hz=40.0, flow_m3h=10.0 + 0.1 * k))
        if f == "frozen" and when is None:
            when = k * 0.2
    assert when is not None and 3.0 <= when <= 3.2, when
    s = SensorState()
    for k in range(40):  # steady flow (± noise below the threshold): not frozen
        flow = 10.0 + 0.3 * (k % 2)
        s, f = check_pv(p, s, PvReading(k * 0.2, 0.4012, lead_hz=40.0, flow_m3h=flow))
    assert f is None


@pytest.mark.parametrize(
    ("samples", "raised_at"),
    [
        ([(0, 0.2), (1, 0.01), (1.5, 0.2), (5, 0.2)], None),  # one low sample: no stop
        ([(0, 0.01), (1, 0.01), (1.9, 0.01), (2.0, 0.01)], 2.0),  # low for the 2 s delay
        ([(0, 0.01), (1, 0.2), (2, 0.01), (3, 0.01), (4.1, 0.01)], 4.1),  # timer restarts
    ],
)
def test_suction_interlock_raise_delay(
    samples: list[tuple[float, float]], raised_at: float | None
) -> None:
    p = InterlockParams(suction_min_mpa=0.05, suction_recover_mpa=0.08, raise_delay_s=2.0)
    s, first = InterlockState(), None
    for t, suction in samples:
        s, ch = interlocks(p, s, SupplyReading(t, suction_mpa=suction))
        if ("low_suction", True) in ch and first is None:
            first = t
    assert first == raised_at


def test_interlock_holds_until_recovered_for_delay() -> None:
    p = InterlockParams(
        suction_min_mpa=0.05, suction_recover_mpa=0.08, recover_delay_s=10.0, raise_delay_s=0.0
    )
    s = InterlockState()
    log = []
    for t, suction in [(0, 0.2), (1, 0.01), (2, 0.06), (5, 0.09), (10, 0.09), (15.5, 0.1)]:
        s, ch = interlocks(p, s, SupplyReading(t, suction_mpa=suction))
        log.append((t, sorted(s.active), ch))
    assert log[1] == (1, ["low_suction"], [("low_suction", True)])
    assert log[2][1] == ["low_suction"]  # 0.06: not yet recovered (hysteresis)
    assert log[4][1] == ["low_suction"]  # recovered at 5 s, delay 10 s not over
    assert log[5] == (15.5, [], [("low_suction", False)])
    s, ch = interlocks(p, InterlockState(), SupplyReading(0, 0.2, suction_switch_low=True))
    assert ch == [("low_suction", True)]
    p = InterlockParams(raise_delay_s=2.0)  # the high-outlet interlock acts at once
    s, ch = interlocks(p, InterlockState(), SupplyReading(0, 0.2, outlet_mpa=0.65))
    assert ch == [("high_outlet", True)]


def test_sleep_sequence_boost_sleep_wake() -> None:
    p = SleepParams(sleep_hz=36.0, sleep_delay_s=3.0, boost_mpa=0.03, boost_max_s=5.0,
                    wake_band_mpa=0.04, min_sleep_s=2.0)  # fmt: skip
    s = SleepState()
    phases = []
    pv = 0.40
    for k in range(30):
        t = k * 1.0
        if s.phase is Phase.BOOST:
            pv = 0.43
        elif s.phase is Phase.SLEEP:
            pv -= 0.01
        s = sleep_step(p, s, SleepInput(t, 1.0, 1, 34.0, None, pv, 0.40))
        phases.append(str(s.phase))
        if s.phase is Phase.RUN and k > 5:
            break
    assert phases[:3] == ["run", "run", "boost"]
    assert "sleep" in phases and phases[-1] == "run"
    assert (
        SleepState().phase
        is sleep_step(
            SleepParams(enabled=False), SleepState(), SleepInput(0, 1, 1, 30.0, None, 0.4, 0.4)
        ).phase
    )


def test_clock_program_and_proportional_pressure() -> None:
    night = ClockPeriod("night", parse_hhmm("23:00"), parse_hhmm("05:30"), 0.35)
    assert scheduled_setpoint(0.40, [night], parse_hhmm("02:00")) == (0.35, "night")
    assert scheduled_setpoint(0.40, [night], parse_hhmm("23:30")) == (0.35, "night")
    assert scheduled_setpoint(0.40, [night], parse_hhmm("12:00")) == (0.40, None)
    assert proportional_setpoint(0.40, 5.0, 10.0, 0.04) == pytest.approx(0.41)
    assert proportional_setpoint(0.40, 30.0, 10.0, 0.04) == pytest.approx(0.44)
    assert proportional_setpoint(0.40, None, 10.0, 0.04) == 0.40
    with pytest.raises(ValueError):
        parse_hhmm("25:00")


def test_feed_forward_moves_output_and_integrator_bumplessly() -> None:
    s = PidState(40.0, 0, 0.40, 40.0)
    s = pid_step(P, s, PidInput(0.2, 0.40, 0.40, ff=1.5))  # no error: only the feed-forward
    assert s.out == pytest.approx(41.5) and s.integral == pytest.approx(41.5)
    s = pid_step(P, s, PidInput(0.2, 0.40, 0.40))  # it stays (it is in the integrator)
    assert s.out == pytest.approx(41.5)
    s = pid_step(P, PidState(49.5, 0, 0.40, 49.5), PidInput(0.2, 0.40, 0.40, ff=3.0))
    assert s.out == 50.0 and s.integral <= 50.0  # clamped to the output range


def test_feed_forward_curve_model() -> None:
    from agent.control.feedforward import (
        equal_speed_hz,
        extrapolate_hz,
        flow_gain_hz_per_m3h,
        head_fraction,
        startup_fraction,
    )

    # EPANET single-point curve, Q_n 10 m³/h: 1/(4·Q_n) per unit speed at the rated point
    assert flow_gain_hz_per_m3h(50.0, 10.0) == pytest.approx(1.25)
    # one pump at 50 Hz carrying 16 m³/h; two pumps share it at 0.775 speed (ABB-like drop)
    h = head_fraction(50.0, 16.0, 1, 50.0, 10.0)
    assert h == pytest.approx(1.0 - 0.64)
    two = equal_speed_hz(h, 16.0, 2, 50.0, 10.0)
    assert two == pytest.approx(50.0 * math.sqrt(0.36 + 0.16))
    assert equal_speed_hz(h, 16.0, 1, 50.0, 10.0) == pytest.approx(50.0)  # and back
    # a starting pump adds nothing below the shut-off speed √h (30 Hz here)
    assert startup_fraction(25.0, two, h, 50.0) == 0.0
    assert startup_fraction(None, two, h, 50.0) == 0.0
    assert 0.0 < startup_fraction(33.0, two, h, 50.0) < 1.0
    assert startup_fraction(two, two, h, 50.0) == 1.0
    # flow share rises steeply just above shut-off (square law), not linearly in speed
    assert startup_fraction(33.0, two, h, 50.0) > (33.0 - 30.0) / (two - 30.0)
    # a ramping drive polled every 0.5 s: 10 Hz/s, 0.3 s after the last poll, capped
    assert extrapolate_hz((0.0, 10.0), (0.5, 15.0), 0.8, 40.0) == pytest.approx(18.0)
    assert extrapolate_hz((0.0, 10.0), (0.5, 15.0), 9.0, 40.0) == 40.0
    assert extrapolate_hz(None, (0.5, 15.0), 0.8, 40.0) == 15.0


def test_flow_feed_forward_gain_is_taken_at_the_operating_point() -> None:
    """The old loop used the rated-point gain at every load: at part load it cut the speed
    ~1.75 times too much when a draw ended (a step sagged 7 kPa after reaching its target)."""
    from agent.control.feedforward import flow_gain_at, flow_gain_hz_per_m3h

    rated = flow_gain_hz_per_m3h(50.0, 10.0)
    # the rated point (q = Q_n per pump at 50 Hz): the rated gain, shared by the pumps
    assert flow_gain_at(50.0, 10.0, 1, 50.0, 10.0) == pytest.approx(rated)
    assert flow_gain_at(50.0, 20.0, 2, 50.0, 10.0) == pytest.approx(rated / 2)
    # half the rated flow per pump at 0.8 speed: 0.625 of it (q/Q_n / s = 0.5 / 0.8)
    assert flow_gain_at(40.0, 10.0, 2, 50.0, 10.0) == pytest.approx(rated / 2 * 0.625)
    # little flow: little speed moves it (the flat curve near shut-off); nothing running: 0
    assert flow_gain_at(35.0, 1.0, 1, 50.0, 10.0) < 0.15 * rated
    assert flow_gain_at(0.0, 5.0, 1, 50.0, 10.0) == 0.0
    assert flow_gain_at(40.0, 5.0, 0, 50.0, 10.0) == 0.0
    with pytest.raises(ValueError):
        flow_gain_at(40.0, 5.0, 1, 50.0, 0.0)


def test_lead_at_full_speed_stages_after_the_short_delay() -> None:
    p = StagingParams(n_pumps=3, stage_delay_s=10, full_hz=49.5, full_delay_s=2.0)
    s = StagingState((False, True, False), (0.0,) * 3, ((), (), ()), last_stage_on_s=0.0)
    events = []
    for k in range(5):
        r = stage(p, s, StagingInput(1000.0 + k, 1.0, 50.0, 0.385, 0.40, (True,) * 3,
                                     (5.0, 1.0, 3.0)))  # fmt: skip
        s = r.state
        events += [(k, e.kind, e.reason) for e in r.events]
    assert events == [(1, "stage_on", "demand")]  # 2 s at full speed below the band
    for k in range(5, 10):  # the new pump may still be coming up: no second one at once
        r = stage(p, s, StagingInput(1000.0 + k, 1.0, 50.0, 0.385, 0.40, (True,) * 3,
                                     (5.0, 1.0, 3.0)))  # fmt: skip
        s = r.state
        events += [(k, e.kind, e.reason) for e in r.events]
    assert len(events) == 1
