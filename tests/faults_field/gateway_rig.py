"""A Modbus TCP gateway with a dead unit behind it, played by the simulator, polled by the real
agent: the healthy unit's poll period and the dead unit's recovery time, from what a platform
subscriber receives. Used by ``test_gateway_agent.py`` and ``python -m tests.benchmarks.gateway``.

The simulator serves the cabinet (unit 1) and the flow meter (unit 2) on one Modbus TCP port, as a
TCP/RTU gateway would; the agent runs ``config/example.yaml`` reduced to those two devices, polled
every :data:`POLL_S`. The fault is scripted through the simulator's control port.
"""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from tests.procs import EXAMPLE, AgentProc, Mosquitto, Simulator, Subscriber, wait_for

POLL_S = 0.5
"""Poll interval of both devices, s."""

TIMEOUT_S = 1.0
"""Response timeout of both devices, s (longer than the poll interval, as in the field)."""

HEALTHY = "cabinet.p_out"
"""A point of the healthy unit (1) whose sample times give its poll period."""

DEAD = "flow"
"""The flow meter's point (unit 2, the dead one)."""


def gateway_config(workdir: Path, sim: Simulator) -> Path:
    """config/example.yaml with only the cabinet and the flow meter, pointed at ``sim``."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    devices = [d for d in doc["devices"] if d["name"] in ("cabinet", "flowmeter")]
    for d in devices:
        d.update(port=sim.tcp_port, poll_interval_s=POLL_S, timeout_s=TIMEOUT_S)
    doc["devices"] = devices
    doc.pop("control", None)
    doc.pop("alarms", None)  # its rules name points of the devices left out
    doc["uplink"]["batch_interval_s"] = 0.1
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def run(workdir: Path, fault: dict[str, Any], fault_s: float) -> dict[str, Any]:
    """Start simulator, broker, subscriber; set ``fault`` on unit 2 BEFORE the agent starts
    (the start-up case), run the agent ``fault_s`` seconds, clear the fault and wait for the
    flow meter's first good sample.

    Returns:
        ``healthy_period_median_s`` / ``healthy_period_max_s``: spacing of the cabinet's good
        samples while unit 2 was dead; ``healthy_gaps_over_1_5x``: how many of those spacings
        exceeded 1.5 poll intervals; ``healthy_samples``; ``dead_qualities``: quality → count
        of the flow meter's samples during the fault; ``dead_reasons``: the reasons seen;
        ``recovery_s``: from clearing the fault to the first good flow sample's time.
    """
    sim = Simulator(workdir).start()
    broker = Mosquitto(workdir).start()
    site = f"gw-{int(time.time() * 1000) % 10**8}"
    sub = Subscriber(broker.port, site, validate=True).start()
    agent = AgentProc(
        workdir, broker.port, sim, site, config=gateway_config(workdir, sim), device_sets=[]
    )
    try:
        sim.command({"cmd": "fault", "unit": 2, "transport": "tcp", **fault})
        t_start = time.time()
        agent.start()

        def first_sample() -> bool:
            if agent.proc is not None and agent.proc.poll() is not None:
                raise AssertionError(f"the agent exited: {agent.log.read_text()[-2000:]}")
            return bool(_good(sub, HEALTHY))

        wait_for(first_sample, 30, "the cabinet's first good sample")
        time.sleep(fault_s)
        t_clear_ms = int(time.time() * 1000)
        sim.command({"cmd": "clear_faults"})
        back = wait_for(
            lambda: [t for t in _good(sub, DEAD) if t >= t_clear_ms], 60, "flow to come back"
        )
        samples = sub.samples()
        sub.assert_valid()
    finally:
        agent.stop()
        sub.stop()
        broker.stop()
        sim.stop()
    t0_ms = int(t_start * 1000)
    healthy = sorted(
        t
        for _, p, t, _, q, _, _ in samples
        if p == HEALTHY and q == "g" and t0_ms <= t < t_clear_ms
    )
    gaps = [(b - a) / 1000 for a, b in itertools.pairwise(healthy)]
    dead = [(q, r) for _, p, t, _, q, r, _ in samples if p == DEAD and t0_ms <= t < t_clear_ms]
    qualities: dict[str, int] = {}
    for q, _ in dead:
        qualities[q] = qualities.get(q, 0) + 1
    return {
        "healthy_samples": len(healthy),
        "healthy_period_median_s": round(statistics.median(gaps), 3) if gaps else None,
        "healthy_period_max_s": round(max(gaps), 3) if gaps else None,
        "healthy_gaps_over_1_5x": sum(g > 1.5 * POLL_S for g in gaps),
        "fault_s": round(t_clear_ms / 1000 - t_start, 1),
        "dead_qualities": qualities,
        "dead_reasons": sorted({str(r) for _, r in dead}),
        "recovery_s": round((min(back) - t_clear_ms) / 1000, 2),
    }


def _good(sub: Subscriber, point: str) -> list[int]:
    return [t for _, p, t, _, q, _, _ in sub.samples() if p == point and q == "g"]
