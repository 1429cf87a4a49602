"""Alarms end to end: the simulator makes the cause, the real agent decides, Mosquitto carries
the events to a platform subscriber. One simulator + agent run serves every case, in phases:

1. six causes at once (chlorine below 0.05 mg/L, turbidity spike, door, flood, a pump trip with
   its drive fault code, the outlet transmitter's 4–20 mA loop open): exactly these six alarms
   rise, each no sooner than its on-delay, and clear when the cause goes;
2. the whole RS-485 bus lost: ONE COMM_LOST alarm naming the affected points, cleared after;
3. a 4 s power blip: ONE PHASE_FAILURE alarm with the tripped drives folded into it;
4. the broker down while a door opens and closes: both transitions arrive, in order, after;
5. alarm.ack / alarm.shelve (and their refusals) over the command channel; shelving expires;
6. a restart: an alarm active before it is not raised again, one cleared meanwhile clears.

Throughout, every event arrives once per seq, in seq order, and every message keeps the
contract (``agent/schemas``).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_commands import Platform
from tests.procs import EXAMPLE, AgentProc, Mosquitto, Simulator, Subscriber, wait_for

pytestmark = pytest.mark.e2e

FAST = {"on_delay_s: 10": "on_delay_s: 2", "off_delay_s: 5": "off_delay_s: 2"}
"""The example's alarms with shorter delays (the test's time budget)."""
RTU_UNITS = (11, 12, 13, 21, 22)


def _config(tmp: Path) -> Path:
    text = EXAMPLE.read_text()
    assert "alarms:" in text
    for old, new in FAST.items():
        text = text.replace(old, new)
    path = tmp / "site.yaml"
    path.write_text(text)  # the fault maps: the shipped ones (config/faultmaps/)
    return path


class Events:
    """Alarm events the subscriber got, by (stream) seq, duplicates dropped."""

    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub

    def all(self) -> list[dict[str, Any]]:
        seen: dict[int, dict[str, Any]] = {}
        order: list[int] = []
        for topic, body, _ in self.sub.snapshot():
            if topic.endswith("/event"):
                for e in body["events"]:
                    if e["seq"] not in seen:
                        order.append(e["seq"])
                    seen[e["seq"]] = e
        assert order == sorted(order), "events arrived out of seq order"
        return [seen[s] for s in order]

    def alarms(self, after: int = 0) -> list[dict[str, Any]]:
        """The alarm stage's alarm events (each names its rule ``id``); the example's control
        loop raises its own (``code`` PV_FAULT, UNDER_PRESSURE…, no ``id``: tests/control)."""
        return [e for e in self.all() if e["type"] == "alarm" and "id" in e and e["seq"] > after]

    def last_seq(self) -> int:
        every = self.all()
        return every[-1]["seq"] if every else 0

    def wait(
        self, after: int, want: set[tuple[str, str]], timeout_s: float
    ) -> list[dict[str, Any]]:
        def got() -> list[dict[str, Any]] | None:
            evs = self.alarms(after)
            have = {(e["id"], e["transition"]) for e in evs}
            return evs if want <= have else None

        try:
            return wait_for(got, timeout_s, f"alarm events {sorted(want)}")
        except AssertionError:
            raise AssertionError(
                f"wanted {sorted(want)}; got {[(e['id'], e['transition']) for e in self.alarms(after)]}"
            ) from None


def _pairs(evs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["id"], e["transition"]) for e in evs]


def _retained_alarms(sub: Subscriber) -> list[dict[str, Any]]:
    status = [
        b for t, b, _ in sub.snapshot() if t.endswith("/status") and b.get("state") == "online"
    ]
    return status[-1].get("alarms", []) if status else []


def test_alarms_end_to_end(tmp_path: Path) -> None:
    site = "alarms-" + uuid.uuid4().hex[:8]
    broker = Mosquitto(tmp_path).start()
    sim = Simulator(tmp_path).start()
    sub = Subscriber(broker.port, site, validate=True).start()
    agent = AgentProc(tmp_path, broker.port, sim, site, config=_config(tmp_path))
    platform = None
    try:
        agent.start()
        ev = Events(sub)
        base = wait_for(
            lambda: next((t.rsplit("/", 1)[0] for t, _, _ in sub.snapshot() if t.endswith("/status")), None),
            30, "the gateway online")  # fmt: skip
        wait_for(lambda: "wq.chlorine" in sub.latest_by_point(), 30, "water quality uplinked")
        time.sleep(3)  # the rules have seen a few polls of every connection
        assert ev.alarms() == [], f"alarms at rest: {_pairs(ev.alarms())}"

        # ---- 1. six causes at once ---------------------------------------------------------
        mark = ev.last_seq()
        t0 = time.time() * 1000
        for name, value in [("chlorine_in_mg_l", 0.03), ("turbidity_event_ntu", 3.0), ("door", True),
                            ("flood", True), ("pump2.trip", 11), ("p_out.fault", "open")]:  # fmt: skip
            sim.command({"cmd": "set", "name": name, "value": value})
        delays = {"wq.chlorine.low": 2, "wq.turbidity.high": 2, "room.door.state": 1,
                  "room.flood.state": 1, "pump2.fault_code.fault": 3, "p_out.bad_quality": 2}  # fmt: skip
        raised = ev.wait(mark, {(a, "raised") for a in delays}, 20)
        assert {e["id"] for e in raised} == set(delays), _pairs(raised)  # no other alarm
        for e in raised:
            # no sooner than the on-delay (1 s of slack: the poll that saw the cause can be up
            # to a poll interval older than the command); no later than delay + 4 s
            assert delays[e["id"]] * 1000 - 1000 <= e["t"] - t0 <= delays[e["id"]] * 1000 + 4000, e
        trip = next(e for e in raised if e["id"] == "pump2.fault_code.fault")
        assert (trip["code"], trip["detail"]["cause"], trip["detail"]["vendor"]) == (
            "DRIVE_FAULT",
            "overload",
            "OL1",
        )
        assert trip["detail"]["vendor_code"] == 11 and trip["device"] == "vfd2"
        low = next(e for e in raised if e["id"] == "wq.chlorine.low")
        assert low["value"] < 0.05 and low["limit"] == 0.05 and low["unit"] == "mg/L"
        wait_for(lambda: {a["id"] for a in _retained_alarms(sub)} >= set(delays), 10,
                 "the retained status listing the six")  # fmt: skip
        mark = ev.last_seq()
        for name, value in [("chlorine_in_mg_l", 0.45), ("turbidity_event_ntu", 0.0), ("door", False),
                            ("flood", False), ("pump2.trip", 0), ("p_out.fault", "none")]:  # fmt: skip
            sim.command({"cmd": "set", "name": name, "value": value})
        cleared = ev.wait(mark, {(a, "cleared") for a in delays}, 20)
        assert sorted(_pairs(cleared)) == sorted((a, "cleared") for a in delays)
        assert all(e["alarm_state"] == "rtn_unack" for e in cleared)  # nobody acknowledged

        # ---- 2. the whole RS-485 bus lost: one alarm --------------------------------------------
        mark = ev.last_seq()
        # all units in one command: unit by unit, a loaded machine spreads the silencing over
        # seconds and the first devices are rightly their own alarms before the bus is lost
        sim.command({"cmd": "fault", "unit": list(RTU_UNITS), "transport": "rtu", "silent": True})
        got = ev.wait(mark, {(f"comm.{_rtu_id(sim)}", "raised")}, 25)
        assert len(got) == 1, _pairs(got)  # the bus alarm alone: its devices' alarms fold in
        (bus,) = got
        assert bus["code"] == "COMM_LOST" and bus["device"] == f"rtu:{sim.rtu_link}"
        assert {"p_out", "p_in", "pump1.fault_code", "pump3.freq"} <= set(bus["detail"]["affected"])
        time.sleep(4)  # stale/bad-quality members would have risen by now
        assert _pairs(ev.alarms(mark)) == [(bus["id"], "raised")]
        sim.command({"cmd": "clear_faults"})
        ev.wait(mark, {(bus["id"], "cleared")}, 20)
        assert _pairs(ev.alarms(mark)) == [(bus["id"], "raised"), (bus["id"], "cleared")]

        # ---- 3. a power blip: one alarm ---------------------------------------------------------
        mark = ev.last_seq()
        sim.command({"cmd": "set", "name": "power_blip_s", "value": 4})
        ev.wait(mark, {("di.phase_ok.state", "cleared")}, 20)
        time.sleep(4)  # the drives' own alarms would come after the window
        blip = ev.alarms(mark)
        assert _pairs(blip) == [("di.phase_ok.state", "raised"), ("di.phase_ok.state", "cleared")]
        assert blip[0]["priority"] == "critical"
        assert {"pump1.fault_code", "pump2.fault_code", "pump3.fault_code"} <= set(
            blip[1]["detail"]["affected"]
        ), blip[1]

        # ---- 4. the broker down during an event -------------------------------------------------
        mark = ev.last_seq()
        broker.stop()
        sim.command({"cmd": "set", "name": "door", "value": True})
        time.sleep(3)
        sim.command({"cmd": "set", "name": "door", "value": False})
        time.sleep(2)
        broker.start()
        door = ev.wait(mark, {("room.door.state", "raised"), ("room.door.state", "cleared")}, 40)
        assert _pairs(door) == [("room.door.state", "raised"), ("room.door.state", "cleared")]
        assert door[0]["t"] < door[1]["t"]

        # ---- 5. acknowledge and shelve over the command channel ---------------------------------
        platform = Platform(broker.port, base)

        def command(cid: str, method: str, **params: Any) -> list[dict[str, Any]]:
            platform.send({"v": 1, "id": cid, "method": method, "issuer": {"principal": "ops:t"},
                           "params": params})  # fmt: skip
            return wait_for(lambda: platform.answers(cid) if len(platform.answers(cid)) >= 1 else None,
                            10, f"an answer to {cid}")  # fmt: skip

        ack = command("c-ack-1", "alarm.ack", alarm="room.door.state")  # rtn_unack → normal
        assert ack[0]["status"] == "accepted", ack
        wait_for(lambda: len(platform.answers("c-ack-1")) == 2, 10, "the ack's result")
        assert platform.answers("c-ack-1")[1]["result"]["alarm"]["state"] == "normal"
        assert (
            command("c-unknown", "alarm.ack", alarm="no.such.alarm")[0]["code"]
            == "INVALID_ARGUMENT"
        )
        assert (
            command("c-nothing", "alarm.ack", alarm="room.door.state")[0]["code"] == "NOT_PERMITTED"
        )
        too_long = command("c-long", "alarm.shelve", alarm="room.flood.state", duration_s=10**6)
        assert (too_long[0]["code"], too_long[0]["detail"]["max"]) == ("OUT_OF_RANGE", 28800)
        mark = ev.last_seq()
        assert (
            command("c-shelve", "alarm.shelve", alarm="room.flood.state", duration_s=4)[0]["status"]
            == "accepted"
        )
        sim.command({"cmd": "set", "name": "flood", "value": True})  # shelved: silent
        time.sleep(2.5)
        assert _pairs(ev.alarms(mark)) == [("room.flood.state", "shelved")]
        back = ev.wait(mark, {("room.flood.state", "shelve_expired")}, 10)
        assert back[-1]["alarm_state"] == "unack_active"  # still wet: annunciated again
        shelved = next(e for e in back if e["transition"] == "shelved")
        assert (shelved["by"], shelved["cmd_id"]) == ("ops:t", "c-shelve")
        acked = [e for e in ev.alarms() if e["transition"] == "acknowledged"]
        assert (acked[-1]["id"], acked[-1]["by"], acked[-1]["cmd_id"]) == (
            "room.door.state",
            "ops:t",
            "c-ack-1",
        )

        # ---- 6. a restart: active stays raised once, cleared-meanwhile clears ------------------
        sim.command({"cmd": "set", "name": "door", "value": True})
        ev.wait(mark, {("room.door.state", "raised")}, 10)
        mark = ev.last_seq()
        assert agent.stop() == 0
        sim.command(
            {"cmd": "set", "name": "door", "value": False}
        )  # closed while the agent is down
        agent.start()
        ev.wait(mark, {("room.door.state", "cleared")}, 30)
        time.sleep(3)
        assert _pairs(ev.alarms(mark)) == [("room.door.state", "cleared")]  # flood not raised again
        # the list is rebuilt from the buffer: phase 1's unacknowledged alarms are still on it
        want = {"room.flood.state", "room.door.state", "wq.chlorine.low", "di.phase_ok.state"}
        wait_for(lambda: want <= {a["id"] for a in _retained_alarms(sub)}
                 and next(a for a in _retained_alarms(sub) if a["id"] == "room.door.state")["state"]
                 == "rtn_unack", 10, "the retained list after the restart")  # fmt: skip
        listed = _retained_alarms(sub)
        assert [a["priority"] for a in listed] == sorted(
            (a["priority"] for a in listed), key=["critical", "high", "medium", "low"].index
        )
        flood = next(a for a in _retained_alarms(sub) if a["id"] == "room.flood.state")
        assert flood["state"] == "unack_active" and flood["priority"] == "critical"
        sim.command({"cmd": "set", "name": "flood", "value": False})
        ev.wait(mark, {("room.flood.state", "cleared")}, 15)
        sub.assert_valid()
    finally:
        if platform is not None:
            platform.stop()
        agent.stop()
        print(agent.log.read_text()[-5000:] if agent.log.exists() else "")
        sub.stop()
        sim.stop()
        broker.stop()


def _rtu_id(sim: Simulator) -> str:
    """The id part of the RTU bus's comm alarm (its serial port path, made an id)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"rtu:{sim.rtu_link}").strip("_")


def test_example_alarms_cite_their_sources() -> None:
    """Every shipped water-quality and NE 43 rule names its source."""
    import yaml

    cfg = yaml.safe_load(EXAMPLE.read_text())["alarms"]["points"]
    for point in ("wq.chlorine", "wq.turbidity", "wq.ph"):
        assert all("GB 5749-2022" in r.get("source", "") for r in cfg[point]), point
    assert any("NE 43" in r.get("source", "") for r in cfg["p_out"])
    assert json.dumps(cfg)  # plain data
