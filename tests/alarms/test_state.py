"""Table tests of the ISA-18.2 state machine, shelving, restart in every state, and flood
control (one cause, one alarm)."""

from __future__ import annotations

import pytest

from agent.alarms.state import Alarm, Refused, State
from agent.core.model import Quality
from tests.alarms.helpers import T0, Run, engine, facts

DOOR = {"points": {"door": [{"kind": "state", "priority": "high"}]}, "shelve_max_s": 3600}


def _door() -> Run:
    return Run(engine(DOOR, facts("door")))


def _state(run: Run) -> State:
    return run.eng.alarms["door.state"].state


SEQUENCES = [
    # (name, steps, expected transitions, final state); a step is (t, "open"/"close"/"ack")
    ("raise, ack, clear", [(1, "open"), (2, "ack"), (3, "close")],
     ["raised", "acknowledged", "cleared"], State.NORMAL),
    ("raise, clear (returned unacknowledged), ack", [(1, "open"), (2, "close"), (3, "ack")],
     ["raised", "cleared", "acknowledged"], State.NORMAL),
    ("returned unacknowledged raises again", [(1, "open"), (2, "close"), (3, "open")],
     ["raised", "cleared", "raised"], State.UNACK_ACTIVE),
    ("ack while active stays active until it clears", [(1, "open"), (2, "ack")],
     ["raised", "acknowledged"], State.ACK_ACTIVE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("steps", "expected", "final"), [c[1:] for c in SEQUENCES], ids=[c[0] for c in SEQUENCES]
)
def test_transitions(steps: list[tuple[int, str]], expected: list[str], final: State) -> None:
    run = _door().feed(0, door=False)
    for t, step in steps:
        if step == "ack":
            run.out.append(run.eng.acknowledge("door.state", T0 + t * 1000, "ops:a"))
        else:
            run.feed(t, door=step == "open")
    assert [w for _, w in run.seen()] == expected
    assert _state(run) is final


def test_ack_when_nothing_to_ack_is_refused() -> None:
    run = _door().feed(0, door=False)
    with pytest.raises(Refused) as e:
        run.eng.acknowledge("door.state", T0, "ops:a")
    assert e.value.code == "NOT_PERMITTED"
    with pytest.raises(Refused) as e:
        run.eng.acknowledge("no.such", T0, "ops:a")
    assert (e.value.code, e.value.detail["reason"]) == ("INVALID_ARGUMENT", "unknown alarm")


@pytest.mark.parametrize("duration", [0, -1, 3601, 1e9])
def test_shelve_out_of_bounds_is_refused(duration: float) -> None:
    run = _door().feed(0, door=True)
    with pytest.raises(Refused) as e:
        run.eng.shelve("door.state", duration, T0, "ops:a")
    assert e.value.code == "OUT_OF_RANGE"
    assert e.value.detail["max"] == 3600


def test_shelving_hides_then_expiry_reannunciates_an_active_condition() -> None:
    run = _door().feed(0, door=True)
    assert run.take() == [("door.state", "raised")]
    run.out.append(run.eng.shelve("door.state", 10, T0 + 1000, "ops:a"))
    assert run.take() == [("door.state", "shelved")]
    assert run.eng.alarms["door.state"].shelved_until == T0 + 11_000
    run.feed(2, door=False).feed(3, door=True)  # followed silently while shelved
    assert run.take() == []
    run.feed(10.9, door=True)
    assert run.take() == []
    run.feed(11.0, door=True)
    assert run.take() == [("door.state", "shelve_expired")]
    assert _state(run) is State.UNACK_ACTIVE  # still open: annunciated again


def test_shelve_expiry_of_a_cleared_condition_returns_to_normal() -> None:
    run = _door().feed(0, door=True)
    run.eng.shelve("door.state", 5, T0, "ops:a")
    run.feed(1, door=False).feed(5.0, door=False)
    assert run.take() == [("door.state", "raised"), ("door.state", "shelve_expired")]
    assert _state(run) is State.NORMAL


def test_unshelve_and_refusal_when_not_shelved() -> None:
    run = _door().feed(0, door=True)
    run.eng.shelve("door.state", 60, T0, "ops:a")
    tr = run.eng.unshelve("door.state", T0 + 1000, "ops:b")
    assert (tr.what.value, tr.by, tr.alarm.state) == ("unshelved", "ops:b", State.UNACK_ACTIVE)
    with pytest.raises(Refused):
        run.eng.unshelve("door.state", T0 + 2000, "ops:b")


def test_out_of_service_is_never_annunciated() -> None:
    cfg = {"points": {"door": [{"kind": "state", "out_of_service": True}]}}
    run = Run(engine(cfg, facts("door"))).feed(0, door=True).feed(1, door=False)
    assert run.take() == []
    assert run.eng.alarms["door.state"].state is State.OUT_OF_SERVICE
    assert run.eng.active_list()[0].id == "door.state"  # listed, so it is not forgotten


# ---- restart in every state -------------------------------------------------------------------


def _restart(run: Run) -> Run:
    """A new engine from the records a buffer would hold (to_json → from_json)."""
    stored = {a.id: Alarm.from_json(a.to_json()) for a in run.eng.alarms.values() if a.annunciated}
    return Run(engine(DOOR, facts("door"), stored))


RESTARTS = [
    # (name, steps before, door after the restart, expected after, final state)
    ("unack active, still open: not raised twice", ["open"], True, [], State.UNACK_ACTIVE),
    ("unack active, closed meanwhile: cleared", ["open"], False, ["cleared"], State.RTN_UNACK),
    ("ack active, still open", ["open", "ack"], True, [], State.ACK_ACTIVE),
    ("ack active, closed meanwhile", ["open", "ack"], False, ["cleared"], State.NORMAL),
    ("returned unack, still closed", ["open", "close"], False, [], State.RTN_UNACK),
    ("returned unack, open again", ["open", "close"], True, ["raised"], State.UNACK_ACTIVE),
    ("normal, opened meanwhile", ["open", "ack", "close"], True, ["raised"], State.UNACK_ACTIVE),
    ("shelved, opened: silent", ["shelve"], True, [], State.SHELVED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("before", "door", "expected", "final"),
    [c[1:] for c in RESTARTS],
    ids=[c[0] for c in RESTARTS],
)
def test_restart_in_every_state(
    before: list[str], door: bool, expected: list[str], final: State
) -> None:
    run = _door().feed(0, door=False)
    for i, step in enumerate(before, start=1):
        if step == "ack":
            run.eng.acknowledge("door.state", T0 + i * 1000, "ops:a")
        elif step == "shelve":
            run.eng.shelve("door.state", 600, T0 + i * 1000, "ops:a")
        else:
            run.feed(i, door=step == "open")
    after = _restart(run).feed(100, door=door)
    assert [w for _, w in after.seen()] == expected
    assert after.eng.alarms["door.state"].state is final


# ---- flood control ------------------------------------------------------------------------------


def test_a_whole_bus_lost_is_one_alarm_with_the_affected_points() -> None:
    """Two devices on one bus, stale and bad-quality rules on their points: the bus going
    silent raises comm.bus only (devices and points folded), and it clears with the bus."""
    points = facts("a1", "a2", device="dev_a") | facts("b1", device="dev_b")
    cfg = {"points": {"a1": [{"kind": "stale", "after_s": 6}],
                      "b1": [{"kind": "bad_quality", "on_delay_s": 2}]}}  # fmt: skip
    run = Run(engine(cfg, points))
    for t in range(0, 3):
        run.feed(t, a1=1.0, a2=2.0, b1=3.0)
    for t in range(3, 30):
        run.feed(t, a1=Quality.COMM_FAIL, a2=Quality.COMM_FAIL, b1=Quality.COMM_FAIL)
    assert run.take() == [("comm.bus", "raised")]
    bus = run.eng.alarms["comm.bus"]
    assert bus.detail["affected"] == ["a1", "a2", "b1"]
    assert bus.value >= 5 and bus.limit == 5.0
    for t in range(30, 34):
        run.feed(t, a1=1.0, a2=2.0, b1=3.0)
    assert run.take() == [("comm.bus", "cleared")]


def test_one_device_lost_is_its_own_alarm() -> None:
    points = facts("a1", device="dev_a") | facts("b1", device="dev_b")
    run = Run(engine({"points": {"a1": [{"kind": "stale", "after_s": 6}]}}, points))
    for t in range(0, 20):
        run.feed(t, a1=Quality.COMM_FAIL if t > 2 else 1.0, b1=1.0)
    assert run.take() == [("comm.dev_a", "raised")]
    assert run.eng.alarms["comm.dev_a"].detail["affected"] == ["a1"]


def test_power_blip_group_folds_the_drive_trips_into_one_alarm() -> None:
    """Phase failure (the cause) and three drives tripping with undervoltage within a poll:
    one alarm, the phase failure, with the drives as affected points; when the drives stay
    tripped after the window, they are annunciated one by one."""
    cfg = {
        "points": {"phase_ok": [{"kind": "state", "state": False, "priority": "critical"}]}
        | {
            f"pump{n}.fault_code": [{"kind": "fault", "fault_map": "invt_gd200a"}]
            for n in (1, 2, 3)
        },
        "groups": [
            {"cause": "phase_ok.state", "members": ["pump*.fault_code.fault"], "window_s": 3}
        ],
    }
    points = facts("phase_ok", device="cab") | facts(*(f"pump{n}.fault_code" for n in (1, 2, 3)))
    run = Run(engine(cfg, points))
    ok = {f"pump{n}__fault_code": 0 for n in (1, 2, 3)}
    uv = {f"pump{n}__fault_code": 10 for n in (1, 2, 3)}
    run.feed(0, phase_ok=True, **ok)
    run.feed(1, phase_ok=True, **uv)  # the drives trip a poll before the phase relay reads
    run.feed(2, phase_ok=False, **uv)
    run.feed(3, phase_ok=False, **uv)
    run.feed(4, phase_ok=True, **uv)
    run.feed(5, phase_ok=True, **ok)  # auto-restart after the blip
    for t in range(6, 12):
        run.feed(t, phase_ok=True, **ok)
    assert run.take() == [("phase_ok.state", "raised"), ("phase_ok.state", "cleared")]
    assert run.eng.alarms["phase_ok.state"].detail["affected"] == [
        "pump1.fault_code",
        "pump2.fault_code",
        "pump3.fault_code",
    ]
    # a real trip later, with the phase fine: its own alarm after the window
    for t in range(20, 25):
        run.feed(t, phase_ok=True, pump1__fault_code=11, pump2__fault_code=0, pump3__fault_code=0)
    assert run.take() == [("pump1.fault_code.fault", "raised")]


@pytest.mark.parametrize(
    ("rule", "still"),
    [
        ({"kind": "stale", "after_s": 10}, Quality.COMM_FAIL),
        ({"kind": "frozen", "after_s": 5}, 7.0),
    ],
    ids=["stale", "frozen"],
)
def test_a_time_alarm_active_before_a_restart_stays_raised_once(rule: dict, still: object) -> None:
    """Stale and frozen alarms count time since the last good or changed sample; after a
    restart that time is unknown: a restored active one stays active until a sample clears it
    (it is neither cleared by the restart nor raised again)."""
    cfg = {"points": {"p": [rule]}}
    run = Run(engine(cfg, facts("p", "q")))
    run.feed(0, p=7.0, q=1)
    for t in range(1, 25):
        run.feed(t, p=still, q=1)
    rid = f"p.{rule['kind']}"
    assert run.take() == [(rid, "raised")]
    stored = {a.id: Alarm.from_json(a.to_json()) for a in run.eng.alarms.values() if a.annunciated}
    after = Run(engine(cfg, facts("p", "q"), stored))
    for t in range(100, 120):
        after.feed(t, p=still, q=1)
    assert after.take() == []
    after.feed(120, p=8.0, q=1)
    assert after.take() == [(rid, "cleared")]
