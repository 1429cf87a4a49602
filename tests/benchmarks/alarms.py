"""Alarm benchmarks (issue 14):

* ``alarm_cpu_pct_of_core``: the CPU the rule evaluation costs the typical room — the example
  site's 103 points polled every second through its 28 rules (incl. the comm-loss summaries),
  ticked every 0.5 s — as % of one core, measured with ``time.process_time`` over an hour of
  simulated polls run as fast as possible (the engine is pure, so this is the agent's cost
  without the I/O). ``alarm_cpu_us_per_reading`` is the same per reading. Also for a heavier
  room (``alarm_heavy_*``): 200 points with 3 limit rules each.
* ``alarm_cause_to_subscriber_p50_ms`` / ``_p99_ms``: the simulator's door contact toggled at
  random 1.3–2.3 s intervals (every phase of the 1 s OPC UA poll); the time from the control
  command to the ``alarm`` event (raised or cleared) at a platform subscriber, with the door
  rule's on-delay set to 0 (so the figure is poll wait + pipeline: 0–1 s poll wait expected).

``python -m tests.benchmarks --only alarms`` prints them.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from agent.alarms.engine import AlarmEngine
from agent.alarms.rules import PointFacts, compile_rules
from agent.config import load_config
from agent.config.alarms import AlarmsConfig
from agent.core.model import Reading
from tests.benchmarks.harness import load_average, percentile
from tests.procs import EXAMPLE, AgentProc, Mosquitto, Simulator, wait_for


def _example_engine() -> tuple[AlarmEngine, dict[str, list[str]]]:
    cfg = load_config(EXAMPLE)
    assert cfg.alarms is not None
    units = {p.name: p.unit for p in cfg.catalogue()}
    facts: dict[str, PointFacts] = {}
    by_conn: dict[str, list[str]] = {}
    for cp in cfg.connections():
        for interval, points in cp.groups.items():
            for p in points:
                facts[p.name] = PointFacts(p.device, cp.spec.name, units.get(p.name), interval)
                by_conn.setdefault(cp.spec.name, []).append(p.name)
    specs = compile_rules(cfg.alarms, facts, EXAMPLE.parent)
    return AlarmEngine(specs, {}, cfg.alarms.shelve_max_s), by_conn


def _heavy_engine(n: int = 200) -> tuple[AlarmEngine, dict[str, list[str]]]:
    names = [f"p{i}" for i in range(n)]
    rules = [{"kind": "low", "limit": 0.1, "deadband": 0.01, "on_delay_s": 2},
             {"kind": "high", "limit": 0.9, "deadband": 0.01, "on_delay_s": 2},
             {"kind": "bad_quality", "on_delay_s": 2}]  # fmt: skip
    cfg = AlarmsConfig.model_validate({"points": {name: rules for name in names}})
    facts = {
        name: PointFacts(f"dev{i // 12}", f"bus{i // 60}", None, 1.0)
        for i, name in enumerate(names)
    }
    by_conn: dict[str, list[str]] = {}
    for name, f in facts.items():
        by_conn.setdefault(f.connection, []).append(name)
    return AlarmEngine(compile_rules(cfg, facts, EXAMPLE.parent), {}, 3600), by_conn


def _values(names: list[str], t: int) -> list[Reading]:
    out = []
    for k, name in enumerate(names):
        if "door" in name or "flood" in name or "phase" in name or "suction_low" in name:
            out.append(Reading(name, name == "di.phase_ok"))
        elif "fault_code" in name or "status" in name:
            out.append(Reading(name, 1 if "status" in name else 0))
        else:
            out.append(Reading(name, 0.4 + 0.001 * ((t + k) % 7)))
    return out


def cpu(
    engine: AlarmEngine, by_conn: dict[str, list[str]], seconds: int = 3600
) -> dict[str, float]:
    """CPU seconds per simulated second of 1 s polls (one poll per connection) + 0.5 s ticks."""
    polls = {c: [_values(names, t) for t in range(7)] for c, names in by_conn.items()}
    readings = sum(len(n) for n in by_conn.values())
    t0 = time.process_time()
    for s in range(seconds):
        for c in by_conn:
            engine.observe(polls[c][s % 7], 1_700_000_000_000 + s * 1000, float(s))
        engine.tick(1_700_000_000_000 + s * 1000, float(s))
        engine.tick(1_700_000_000_000 + s * 1000 + 500, s + 0.5)
    used = time.process_time() - t0
    return {
        "cpu_pct_of_core": round(100 * used / seconds, 3),
        "cpu_us_per_reading": round(1e6 * used / (seconds * readings), 2),
        "readings_per_s": readings,
    }


def latency(workdir: Path, toggles: int) -> dict[str, Any]:
    """Cause (simulator command) → alarm event at a subscriber, ms."""
    workdir.mkdir(parents=True, exist_ok=True)
    text = EXAMPLE.read_text()
    door = "room.door:\n      - {kind: state, on_delay_s: 1,"
    assert door in text
    cfg = workdir / "site.yaml"
    cfg.write_text(text.replace(door, "room.door:\n      - {kind: state, on_delay_s: 0,"))
    site = "bench-alarm-" + uuid.uuid4().hex[:6]
    mq = Mosquitto(workdir, extra_conf="set_tcp_nodelay true\n").start()
    sim = Simulator(workdir).start()
    arrivals: list[tuple[float, dict[str, Any]]] = []
    lock = threading.Lock()

    def on_message(c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        now = time.time()
        with lock:
            for e in json.loads(msg.payload)["events"]:
                arrivals.append((now, e))

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{site}")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"pumproom/v1/{site}/+/event", qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", mq.port)
    client.loop_start()
    agent = AgentProc(workdir, mq.port, sim, site, config=cfg).start()
    try:
        wait_for(lambda: agent.log.exists() and "uplink: connected" in agent.log.read_text(),
                 30, "the agent connected")  # fmt: skip
        time.sleep(4)  # every connection polled
        causes: list[tuple[float, bool]] = []
        state = False
        for _ in range(toggles):
            state = not state
            causes.append((time.time(), state))
            sim.command({"cmd": "set", "name": "door", "value": state})
            time.sleep(random.uniform(1.3, 2.3))
        time.sleep(3)
    finally:
        agent.stop()
        client.loop_stop()
        client.disconnect()
        sim.stop()
        mq.stop()
    with lock:
        door_events = [(t, e) for t, e in arrivals if e.get("id") == "room.door.state"]
    lat = []
    for (t_cause, opened), (t_arr, e) in zip(causes, door_events, strict=False):
        assert (e["transition"] == "raised") == opened, (opened, e)
        lat.append(1000 * (t_arr - t_cause))
    return {
        "alarm_cause_to_subscriber_p50_ms": round(percentile(lat, 0.5) or 0, 1),
        "alarm_cause_to_subscriber_p99_ms": round(percentile(lat, 0.99) or 0, 1),
        "alarm_transitions_measured": len(lat),
        "alarm_transitions_expected": toggles,
        "alarm_latency_load_avg": round(load_average(), 2),
    }


def run(workdir: Path, toggles: int = 30) -> dict[str, Any]:
    """Every alarm figure (see the module docstring)."""
    out: dict[str, Any] = {}
    for key, value in cpu(*_example_engine()).items():
        out[f"alarm_{key}"] = value
    for key, value in cpu(*_heavy_engine(), seconds=600).items():
        out[f"alarm_heavy_{key}"] = value
    out.update(latency(workdir, toggles))
    return out


if __name__ == "__main__":
    print(json.dumps(run(Path("/tmp/pumproom-alarm-bench"), 20), indent=1))
