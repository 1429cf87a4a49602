"""The alarm stage's pieces that need no agent: rate-limited logging, event bodies against the
contract, and the buffer keeping an alarm's record in the same transaction as its event."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent import schemas
from agent.alarms.rules import PointFacts
from agent.alarms.runtime import (
    LOG_BURST,
    LOG_WINDOW_S,
    AlarmRuntime,
    LogLimiter,
    event_body,
    status_entry,
)
from agent.alarms.state import Alarm, State
from agent.config.alarms import AlarmsConfig
from agent.core.model import WallClock
from agent.store import Store
from tests.alarms.helpers import T0, Run, engine, facts


def test_log_lines_are_rate_limited_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    lim = LogLimiter()
    assert [lim.allow("raised", 0.0) for _ in range(LOG_BURST + 7)].count(True) == LOG_BURST
    assert lim.allow("cleared", 1.0)  # another kind has its own budget
    with caplog.at_level(logging.WARNING, "agent.alarms"):
        assert lim.allow("raised", LOG_WINDOW_S + 0.1)
    assert "7 more 'raised' transitions not logged" in caplog.text


def test_every_transition_makes_a_valid_event_and_status_entry() -> None:
    cfg = {"points": {"door": [{"kind": "state", "priority": "high", "code": "DOOR_OPEN"}],
                      "pump1.fault_code": [{"kind": "fault", "fault_map": "invt_gd200a"}]}}  # fmt: skip
    run = Run(engine(cfg, facts("door", "pump1.fault_code")))
    run.feed(0, door=True, pump1__fault_code=17)
    run.out.append(run.eng.acknowledge("door.state", T0 + 1, "ops:a"))
    run.out.append(run.eng.shelve("door.state", 60, T0 + 2, "ops:a"))
    run.feed(1, door=False, pump1__fault_code=0)
    run.out.append(run.eng.unshelve("door.state", T0 + 3000, "ops:b"))
    events = [{"seq": i + 1, **event_body(tr, "c-1")} for i, tr in enumerate(run.out)]
    msg = {"v": 1, "site": "s", "gw": "g", "session": 1, "stream": "event", "sent": T0,
           "events": events}  # fmt: skip
    schemas.validate("pumproom/v1/s/g/event", msg)
    assert [e["transition"] for e in events] == [
        "raised", "raised", "acknowledged", "shelved", "cleared", "unshelved"]  # fmt: skip
    fault = events[1]
    assert (fault["detail"]["cause"], fault["detail"]["vendor"]) == ("external", "EF")
    status = {"v": 1, "site": "s", "gw": "g", "session": 1, "state": "online", "ts": T0,
              "alarms": [status_entry(a) for a in run.eng.active_list()]}  # fmt: skip
    schemas.validate("pumproom/v1/s/g/status", status)


async def test_the_record_goes_with_its_event_and_normal_deletes_it(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "b.sqlite", 1 << 24)
    try:
        a = Alarm("door.state", "door", "state", "DOOR_OPEN", "high", State.UNACK_ACTIVE, True)
        ev = await store.add_alarm_event({"type": "alarm", "t": T0}, a.id, a.to_json())
        assert [e.seq for e in await store.begin_events(10)] == [ev.seq]
        assert Alarm.from_json((await store.alarm_records())["door.state"]) == a
        await store.add_alarm_event({"type": "alarm", "t": T0 + 1}, a.id, None)
        assert await store.alarm_records() == {}
    finally:
        await store.close()
    reopened = await Store.open(tmp_path / "b.sqlite", 1 << 24)
    try:
        assert len(await reopened.begin_events(10)) == 2
    finally:
        await reopened.close()


async def test_a_restart_restores_the_list_and_forgets_alarms_whose_rule_is_gone(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "b.sqlite", 1 << 24)
    try:
        for aid in ("door.state", "old.high"):
            a = Alarm(aid, aid.split(".")[0], "state", "X", "high", State.UNACK_ACTIVE, True)
            await store.add_alarm_event({"type": "alarm", "t": T0}, aid, a.to_json())
        cfg = AlarmsConfig.model_validate({"points": {"door": [{"kind": "state"}]}})
        facts = {"door": PointFacts("dev", "bus", None, 1.0)}
        rt = await AlarmRuntime.open(cfg, facts, tmp_path, store, WallClock(), lambda: None)
        assert [a["id"] for a in rt.status_list()] == ["door.state"]
        assert set(await store.alarm_records()) == {"door.state"}
    finally:
        await store.close()
