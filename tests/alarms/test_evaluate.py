"""Table tests of the rule evaluator through the engine: limits with hysteresis and delays,
digital states with chattering contacts, rate of change, stale, frozen, bad quality, faults."""

from __future__ import annotations

from typing import Any

import pytest

from agent.alarms.rules import PointFacts
from agent.core.model import Quality
from tests.alarms.helpers import Run, engine, facts


def _run(point: str, rule: dict[str, Any], series: list[tuple[float, Any]], *extra: str) -> Run:
    eng = engine({"points": {point: [rule]}}, facts(point, *extra))
    return Run(eng).series(point, series)


LIMIT_CASES = [
    # (name, rule, series (t, value), expected transitions of the rule's alarm)
    (
        "low raises at once without delay and clears above limit + deadband only",
        {"kind": "low", "limit": 0.05, "deadband": 0.02},
        [(0, 0.3), (1, 0.04), (2, 0.06), (3, 0.069), (4, 0.071)],
        [(1, "raised"), (4, "cleared")],
    ),
    (
        "high with deadband: 1.1 raises, 0.95 holds, 0.89 clears",
        {"kind": "high", "limit": 1.0, "deadband": 0.1},
        [(0, 0.5), (1, 1.1), (2, 0.95), (3, 0.89)],
        [(1, "raised"), (3, "cleared")],
    ),
    (
        "on-delay: a 2 s excursion under a 3 s on-delay never raises",
        {"kind": "high", "limit": 1.0, "on_delay_s": 3},
        [(0, 0.5), (1, 1.2), (2, 1.2), (3, 0.5), (4, 0.5)],
        [],
    ),
    (
        "on-delay: 3 s of excursion raises at 3 s after it began",
        {"kind": "high", "limit": 1.0, "on_delay_s": 3},
        [(0, 0.5), (1, 1.2), (2, 1.2), (3, 1.2), (4, 1.2), (5, 0.5)],
        [(4, "raised"), (5, "cleared")],
    ),
    (
        "off-delay: the value must stay good 2 s before it clears",
        {"kind": "low", "limit": 0.05, "off_delay_s": 2},
        [(0, 0.01), (1, 0.2), (2, 0.01), (3, 0.2), (4, 0.2), (5, 0.2)],
        [(0, "raised"), (5, "cleared")],
    ),
    (
        "a not-good sample holds a limit alarm (neither raises nor clears it)",
        {"kind": "low", "limit": 0.05},
        [(0, 0.01), (1, Quality.COMM_FAIL), (2, Quality.BAD_VALUE), (3, 0.3)],
        [(0, "raised"), (3, "cleared")],
    ),
    (
        "low_low and booleans: a bool value never trips a limit rule",
        {"kind": "low_low", "limit": 0.5},
        [(0, True), (1, False), (2, 0.4)],
        [(2, "raised")],
    ),
]


@pytest.mark.parametrize(
    ("rule", "series", "expected"), [c[1:] for c in LIMIT_CASES], ids=[c[0] for c in LIMIT_CASES]
)
def test_limit_rules(
    rule: dict[str, Any], series: list[tuple[float, Any]], expected: list[Any]
) -> None:
    run = Run(engine({"points": {"x": [rule]}}, facts("x")))
    got = []
    for t_s, v in series:
        run.feed(t_s, x=v)
        got += [(t_s, what) for _, what in run.take()]
    assert got == expected


def test_limit_event_carries_value_and_limit() -> None:
    run = Run(
        engine({"points": {"wq.chlorine": [{"kind": "low", "limit": 0.05}]}}, facts("wq.chlorine"))
    )
    run.feed(0, wq__chlorine=0.02)
    (tr,) = run.out
    assert (tr.alarm.value, tr.alarm.limit, tr.alarm.code) == (0.02, 0.05, "WQ_CHLORINE_LOW")


STATE_CASES = [
    (
        "door open raises at once, closes clears",
        {"kind": "state"},
        [(0, False), (1, True), (2, True), (3, False)],
        [(1, "raised"), (3, "cleared")],
    ),
    (
        "a contact chattering every 0.5 s under a 2 s on-delay never raises",
        {"kind": "state", "on_delay_s": 2},
        [(t / 2, bool(i % 2)) for i, t in enumerate(range(0, 20))],
        [],
    ),
    (
        "the same contact held 2 s raises once; its chatter while active, with a 2 s off-delay,"
        " does not clear it",
        {"kind": "state", "on_delay_s": 2, "off_delay_s": 2},
        [
            (0, True),
            (1, True),
            (2, True),
            (2.5, False),
            (3, True),
            (3.5, False),
            (4, True),
            (5, False),
            (6, False),
            (7, False),
        ],
        [(2, "raised"), (7, "cleared")],
    ),
    (
        "state on an integer value (phase monitor 0 = failure)",
        {"kind": "state", "state": 0},
        [(0, 1), (1, 0), (2, 1)],
        [(1, "raised"), (2, "cleared")],
    ),
    (
        "state false: the phase-OK contact opening",
        {"kind": "state", "state": False},
        [(0, True), (1, False), (2, True)],
        [(1, "raised"), (2, "cleared")],
    ),
]


@pytest.mark.parametrize(
    ("rule", "series", "expected"), [c[1:] for c in STATE_CASES], ids=[c[0] for c in STATE_CASES]
)
def test_state_rules(
    rule: dict[str, Any], series: list[tuple[float, Any]], expected: list[Any]
) -> None:
    run = Run(engine({"points": {"x": [rule]}}, facts("x")))
    got = []
    for t_s, v in series:
        run.feed(t_s, x=v)
        got += [(t_s, what) for _, what in run.take()]
    assert got == expected


def test_rate_of_change() -> None:
    """0.2 NTU/s limit: a step of 1 NTU in 1 s raises; 0.1 NTU/s after clears."""
    run = Run(engine({"points": {"t": [{"kind": "rate", "limit": 0.2}]}}, facts("t")))
    got = []
    for t_s, v in [(0, 0.2), (1, 0.25), (2, 1.25), (3, 1.3), (4, 1.4)]:
        run.feed(t_s, t=v)
        got += [(t_s, w, tr.alarm.value) for (_, w), tr in zip(run.seen(), run.out, strict=True)]
        run.out = []
    assert got == [(2, "raised", 1.0), (3, "cleared", pytest.approx(0.05))]


def test_stale_raises_after_n_seconds_without_a_good_sample_and_clears_on_the_next() -> None:
    """Stale 10 s on a point of a device whose comm-loss delay (5 s) is shorter: it raises at
    10 s + one poll interval + the 1 s fold margin (the device alarm could have folded it;
    here another point of the device answers, so there is no comm loss)."""
    run = Run(engine({"points": {"p": [{"kind": "stale", "after_s": 10}]}}, facts("p", "q")))
    run.feed(0, p=1.0, q=1)
    for t in range(1, 12):
        run.feed(t, p=Quality.BAD_VALUE, q=1)
    assert run.take() == []
    run.feed(12, p=Quality.BAD_VALUE, q=1)
    assert run.take() == [("p.stale", "raised")]
    run.feed(13, p=1.0, q=1)
    assert run.take() == [("p.stale", "cleared")]


def test_frozen_needs_the_process_to_move() -> None:
    """A pressure stuck at 0.40 while the pump speed moves raises after 30 s; the same flat
    pressure with the speed flat too (a steady process) does not."""
    rule = {"kind": "frozen", "after_s": 30, "moving": "speed", "min_change": 0.0005}
    run = Run(engine({"points": {"p": [rule]}, "comm_loss_delay_s": 1000}, facts("p", "speed")))
    for t in range(0, 60):
        run.feed(t, p=0.40, speed=40.0)  # steady: both flat
    assert run.take() == []
    for t in range(60, 100):
        run.feed(t, p=0.40, speed=40.0 + (t % 5))  # the pump moves, the pressure does not
    assert run.take() == [("p.frozen", "raised")]
    run.feed(100, p=0.41, speed=41.0)
    assert run.take() == [("p.frozen", "cleared")]


def test_flat_line_without_moving_point() -> None:
    run = Run(
        engine(
            {"points": {"p": [{"kind": "frozen", "after_s": 5}]}, "comm_loss_delay_s": 1000},
            facts("p"),
        )
    )
    run.series("p", [(t, 7.0) for t in range(0, 7)])
    assert run.take() == [("p.frozen", "raised")]


def test_bad_quality_longer_than_its_delay() -> None:
    """NE 43: an open loop reads as a bad value (valid range); 3 s bad raises, 2 s does not."""
    rule = {"kind": "bad_quality", "on_delay_s": 3}
    run = Run(engine({"points": {"p": [rule]}}, facts("p", "q")))
    for t, v in [(0, 0.4), (1, Quality.BAD_VALUE), (2, Quality.BAD_VALUE), (3, 0.4)]:
        run.feed(t, p=v, q=1)
    assert run.take() == []
    for t in (4, 5, 6):
        run.feed(t, p=Quality.BAD_VALUE, q=1)
    assert run.take() == []
    run.feed(7, p=Quality.BAD_VALUE, q=1)
    assert run.take() == [("p.bad_quality", "raised")]
    assert run.eng.alarms["p.bad_quality"].detail == {
        "reason": "timeout",
        "q": "b",
        "device": "dev",
    }
    run.feed(8, p=0.4, q=1)
    assert run.take() == [("p.bad_quality", "cleared")]


def test_drive_fault_code_is_normalised_and_keeps_the_vendor_code() -> None:
    rule = {"kind": "fault", "fault_map": "invt_gd200a", "priority": "high"}
    run = Run(engine({"points": {"pump1.fault_code": [rule]}}, facts("pump1.fault_code")))
    run.series("pump1.fault_code", [(0, 0), (1, 11)])
    (tr,) = run.out
    assert tr.alarm.detail == {
        "cause": "overload",
        "vendor_code": 11,
        "vendor": "OL1",
        "text": "motor overload",
        "map": "invt_gd200a",
        "device": "dev",
    }
    run.out = []
    run.feed(2, pump1__fault_code=0)
    assert run.take() == [("pump1.fault_code.fault", "cleared")]


def test_a_bus_lost_mid_poll_is_one_alarm_that_stays() -> None:
    """Five devices on one RS-485 bus (1 s polls, 1 s timeout). The bus dies 0.1 s into a poll:
    that poll read d1 and then waits out four timeouts, so it lands 4 s late with d1's good
    value. That late good value must neither clear a bus alarm already raised nor let the other
    devices' alarms beat the bus alarm (CI failure: raised, cleared, then one alarm per device)."""
    devs = [f"d{i}" for i in range(1, 6)]
    points = {
        f"p{i}": PointFacts(d, "bus", None, 1.0, timeout_s=1.0, devices_on_connection=5)
        for i, d in enumerate(devs, 1)
    }
    run = Run(engine({"points": {}}, points))
    good = {f"p{i}": 1.0 for i in range(1, 6)}
    for t in range(1, 11):  # healthy: each poll lands 0.3 s after it started
        run.feed(t + 0.3, **good)
    run.at(11.0).at(12.0).at(13.0)  # the poll that started at 10 s is still waiting out timeouts
    lost = {f"p{i}": Quality.COMM_FAIL for i in range(2, 6)}
    run.feed(14.1, p1=1.0, **lost)  # it lands: d1 answered before the bus died
    t = 14.1
    while t < 40:  # then every poll: nothing answers (offline units are probed)
        t += 1.0
        run.feed(t, **{f"p{i}": Quality.COMM_FAIL for i in range(1, 6)})
    assert run.seen() == [("comm.bus", "raised")]
