"""SIGHUP re-reads the configuration (``systemctl reload``): identical → no-op; a changed device
→ only its connection's poller restarts; invalid → the running configuration stays and the
reason is logged, in status and in an ``info`` event. The buffer is never recreated, emptied or
re-sequenced: every row from before is still there, unchanged, and seqs go on from where they
were. Before, SIGHUP killed the agent (default action) without a clean stop.

The broker port has nothing listening, so nothing is acknowledged and every row stays.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import yaml

from tests.procs import EXAMPLE, AgentProc, Simulator, free_port, wait_for
from tests.supervision.conftest import status_json


def _config(sim: Simulator, analyser_interval_s: float) -> str:
    doc = yaml.safe_load(EXAMPLE.read_text())
    cab = next(d for d in doc["devices"] if d["name"] == "cabinet")
    cab.update(port=sim.tcp_port, poll_interval_s=0.2, timeout_s=0.5)
    ana = next(d for d in doc["devices"] if d["name"] == "analyser")
    ana.update(
        endpoint=f"opc.tcp://127.0.0.1:{sim.opcua_port}/pumproom/hil-sim/",
        poll_interval_s=analyser_interval_s,
    )
    doc["devices"] = [cab, ana]
    doc.pop("control", None)
    # only the door's rule: the others name points of the devices left out
    doc["alarms"] = {
        "points": {"room.door": [{"kind": "state", "priority": "high", "code": "DOOR_OPEN"}]}
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _door(events: list[dict]) -> list[str]:
    """The door alarm's transitions among buffered events, in order ("active", "cleared")."""
    return [e["state"] for e in events if e.get("type") == "alarm" and e.get("code") == "DOOR_OPEN"]


def _rows(buffer: Path) -> tuple[dict[int, tuple], int, list[dict]]:
    """(seq → row, seq_base, event bodies), read-only while the agent runs (WAL)."""
    db = sqlite3.connect(f"file:{buffer}?mode=ro", uri=True, timeout=5)
    try:
        rows = {r[0]: r[1:] for r in db.execute("SELECT * FROM samples")}
        base = db.execute("SELECT value FROM meta WHERE key = 'seq_base'").fetchone()[0]
        events = [json.loads(r[0]) for r in db.execute("SELECT body FROM events")]
    finally:
        db.close()
    return rows, base, events


def _conn(snap: dict, name: str) -> dict:
    return next(c for c in snap["connections"] if c["name"] == name)


def _reload(agent: AgentProc, count: int) -> dict:
    before = (status_json(agent) or {}).get("reload")
    agent.proc.send_signal(signal.SIGHUP)

    def done():
        snap = status_json(agent)
        return snap if snap and snap["reload"] and snap["reload"] != before else None

    snap = wait_for(done, 15, f"reload {count}")
    assert agent.proc.poll() is None, "the agent ended on SIGHUP"
    return snap


def test_sighup_identical_changed_invalid_config_and_the_buffer_untouched(
    tmp_path: Path, sim: Simulator, site: str
):
    config = tmp_path / "site.yaml"
    config.write_text(_config(sim, 1.0))
    agent = AgentProc(tmp_path, free_port(), sim, site, config=config, device_sets=[])
    agent.start()
    try:
        snap = wait_for(
            lambda: (
                (s := status_json(agent))
                and all(c["polls"] >= 2 and c["ok"] for c in s["connections"])
                and s
            ),
            30,
            "both connections polling",
        )
        assert [c["name"] for c in snap["connections"]] == ["cabinet", "analyser"]

        sim.command({"cmd": "set", "name": "door", "value": True})
        wait_for(lambda: _door(_rows(agent.buffer)[2]) == ["active"], 15, "the door alarm")
        rows0, base0, _ = _rows(agent.buffer)
        snap = _reload(agent, 1)  # identical
        assert snap["reload"]["outcome"] == "unchanged"

        config.write_text(_config(sim, 0.5))  # the analyser polls faster
        cab_before = _conn(status_json(agent), "cabinet")
        snap = _reload(agent, 2)
        assert snap["reload"]["outcome"] == "applied"
        assert snap["reload"]["restarted"] == ["analyser"]
        cab = _conn(snap, "cabinet")  # kept: same poller, counters go on
        assert cab["polls"] >= cab_before["polls"]
        assert cab["driver"]["reconnects"] == cab_before["driver"]["reconnects"]
        wait_for(lambda: _conn(status_json(agent), "analyser")["ok"], 15, "analyser again")
        # the alarm rules follow the new devices and keep their state: the door alarm is not
        # raised again by the reload, and clears when the door closes
        assert [a["id"] for a in status_json(agent)["alarms"]] == ["room.door.state"]
        sim.command({"cmd": "set", "name": "door", "value": False})
        wait_for(lambda: _door(_rows(agent.buffer)[2]) == ["active", "cleared"], 15, "cleared")

        good = config.read_text()
        config.write_text(good.replace("poll_interval_s: 0.5", "poll_interval_s: -3", 1))
        snap = _reload(agent, 3)
        assert snap["reload"]["outcome"] == "refused"
        assert "site.yaml:" in snap["reload"]["detail"]  # FILE:LINE:COL of the problem
        assert [c["name"] for c in snap["connections"]] == ["cabinet", "analyser"]
        polls = _conn(snap, "cabinet")["polls"]
        wait_for(lambda: _conn(status_json(agent), "cabinet")["polls"] > polls + 3, 10, "polls")

        config.write_text(good.replace("batch_max_samples: 500", "batch_max_samples: 400", 1))
        snap = _reload(agent, 4)  # valid, but the MQTT session holds it: nothing applied
        assert snap["reload"]["outcome"] == "restart_needed", snap["reload"]
        assert snap["reload"]["restart_needed"] == ["uplink"]
        assert agent.stop() == 0
    finally:
        if agent.proc is not None:
            agent.stop(signal.SIGKILL)

    rows1, base1, events = _rows(agent.buffer)
    assert base1 == base0
    assert all(rows1.get(seq) == row for seq, row in rows0.items()), "rows changed"
    assert min(rows1) == min(rows0) and max(rows1) > max(rows0)
    assert sorted(rows1) == list(range(min(rows1), max(rows1) + 1))  # gap-free, not reset
    codes = [e.get("code") for e in events if e.get("type") == "info"]
    assert {"CONFIG_RELOADED", "CONFIG_RELOAD_REFUSED", "CONFIG_RESTART_NEEDED"} <= set(codes)
    log = agent.log.read_text()
    assert "ERROR agent.reload: reload: " in log and "poll_interval_s" in log
