"""The uplink against production-like brokers (issue 12), a benchmark, not a test:
``python -m tests.benchmarks.broker_limits [--quick] [--only reconnect fleet refusing packet]``
(or ``python -m tests.benchmarks --only broker``).

* ``reconnect``: one gateway's reconnect after a broker outage. ``--gateways`` in-process
  uplinks (the agent's own :class:`agent.uplink.Uplink`, each on its own SQLite buffer, each
  connected longer than :data:`agent.reconnect.HEALTHY_AFTER_S`) against a private Mosquitto
  that is stopped for ``--outage-s`` and started again, ``--outages`` times. Each gateway's
  delay from the broker listening again to its session being up (birth and meta PUBACKed) is
  one sample; prints p50/p99/max.
* ``fleet``: 10,000 gateways losing a broker for 20 s, modelled with the agent's own
  :class:`agent.reconnect.ReconnectPolicy` (probe delays and spread drawn by the same code),
  beside main's policy (sleep the shared Backoff after every failure, reset on connect):
  connects per second after the restart (peak 1-s and 100-ms bins), reconnect p50/p99, TCP
  probes per second while the broker is down.
* ``refusing``: the agent process (cabinet of the simulator, 40 points every 0.1 s) behind a
  Mosquitto whose ACL denies telemetry (PUBACK 0x87): CPU % of a core and refused publishes
  over ``--seconds``, then the same with the ACL allowing it (baseline), and samples lost.
* ``packet``: the agent process behind Mosquitto ``max_packet_size 4096`` with a backlog:
  reconnects per minute over ``--seconds`` and samples lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from agent import contract
from agent.core.model import Backoff, WallClock
from agent.mqtt import BrokerSettings
from agent.reconnect import ReconnectPolicy
from agent.store import Store
from agent.uplink import Uplink, UplinkSettings
from tests.benchmarks.harness import percentile
from tests.procs import (
    ACL_ALLOW_ALL,
    ACL_DENY_TELEMETRY,
    EXAMPLE,
    AgentProc,
    Mosquitto,
    Simulator,
    Subscriber,
    acl_broker,
    seq_report,
    wait_for,
)


def reconnect(work: Path, gateways: int, outages: int, outage_s: float) -> dict[str, Any]:
    """Reconnect delays of in-process uplinks after broker outages (see the module doc)."""
    broker = Mosquitto(work).start()

    async def main() -> list[float]:
        ups = []
        for g in range(gateways):
            store = await Store.open(work / f"b{g}.sqlite", 1 << 26)
            site = f"rc-{uuid.uuid4().hex[:6]}"
            ups.append(
                (
                    Uplink(
                        BrokerSettings("127.0.0.1", broker.port, f"gw-{site}", keepalive_s=5),
                        contract.Topics.for_gateway("pumproom/v1", site, "gw"),
                        contract.Identity(site, "gw"),
                        store,
                        {},
                        [],
                        UplinkSettings(),
                        WallClock(),
                    ),
                    store,
                )
            )
        tasks = [asyncio.create_task(u.run()) for u, _ in ups]
        delays: list[float] = []
        try:
            for _ in range(outages):
                await asyncio.sleep(11.0)  # longer than HEALTHY_AFTER_S: a healthy session
                assert all(u.connected.is_set() for u, _ in ups)
                await asyncio.to_thread(broker.stop)
                await asyncio.sleep(outage_s)
                await asyncio.to_thread(broker.start)  # returns once the port answers
                t0 = time.monotonic()
                back = await asyncio.gather(*(_connected_after(u, t0) for u, _ in ups))
                delays += back
                print(f"   outage: back after p50 {sorted(back)[len(back) // 2]:.2f} s, "
                      f"max {max(back):.2f} s", flush=True)  # fmt: skip
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for _, s in ups:
                await s.close()
        return delays

    try:
        delays = asyncio.run(main())
    finally:
        broker.stop()
    return {
        "reconnect_samples": len(delays),
        "reconnect_outage_s": outage_s,
        "reconnect_p50_s": round(percentile(delays, 0.5) or 0, 2),
        "reconnect_p99_s": round(percentile(delays, 0.99) or 0, 2),
        "reconnect_max_s": round(max(delays), 2),
    }


async def _connected_after(uplink: Uplink, t0: float) -> float:
    await asyncio.wait_for(uplink.connected.wait(), 120)
    return time.monotonic() - t0


def fleet(n: int = 10_000, outage_s: float = 20.0, seed: int = 12) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for outage in (outage_s, 120.0):
        out.update(_fleet(n, outage, seed, "" if outage == outage_s else f"_{outage:g}s"))
    return out


def _fleet(n: int, outage_s: float, seed: int, tag: str) -> dict[str, Any]:
    """Model ``n`` gateways losing the broker at t=0 for ``outage_s`` (see the module doc)."""
    random.seed(seed)
    new, probes = [], 0
    for _ in range(n):
        p = ReconnectPolicy()
        t = 0.0
        while True:  # agent.reconnect.ReconnectPolicy.until_reachable, a refused probe is ~0 s
            t += p.probe_delay(t)
            if t < outage_s:
                probes += 1
                continue
            new.append(t + p.spread_delay())
            break
    old = []
    for _ in range(n):  # main: sleep Backoff.next() after the loss and after every failure
        b, t = Backoff(initial_s=0.5, cap_s=30.0), 0.0
        while True:
            t += b.next()
            if t >= outage_s:
                old.append(t)
                break
    out: dict[str, Any] = {f"fleet{tag}_gateways": n, f"fleet{tag}_outage_s": outage_s}
    for name, times in ((f"fleet{tag}", new), (f"fleet{tag}_main", old)):
        after = [t - outage_s for t in times]
        per_s = Counter(int(t) for t in after)
        per_100ms = Counter(int(t * 10) for t in after)
        out[f"{name}_reconnect_p50_s"] = round(percentile(after, 0.5) or 0, 2)
        out[f"{name}_reconnect_p99_s"] = round(percentile(after, 0.99) or 0, 2)
        out[f"{name}_peak_connects_per_s"] = max(per_s.values())
        out[f"{name}_peak_connects_per_100ms"] = max(per_100ms.values())
    out[f"fleet{tag}_probes_per_s_while_down"] = round(probes / outage_s)
    return out


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(agent: AgentProc) -> dict[str, Any]:
    url = f"http://127.0.0.1:{agent.status_port}/status.json"
    with urllib.request.urlopen(url, timeout=5) as r:
        return dict(json.loads(r.read()))


def _cabinet(work: Path, sim: Simulator) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    cab = next(d for d in doc["devices"] if d["name"] == "cabinet")
    cab.update(port=sim.tcp_port, poll_interval_s=0.1, timeout_s=0.5)
    doc["devices"] = [cab]
    doc.pop("alarms", None)  # its rules name points of the devices left out
    doc["uplink"]["batch_interval_s"] = 0.2  # as tests/faults_uplink/conftest.py
    path = work / "cabinet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def _lost(agent: AgentProc, sub: Subscriber) -> int:
    time.sleep(1.0)
    got = [s[0] for s in sub.samples()]
    missing, _ = seq_report(got, agent.buffered_seqs(), agent.appended(), agent.seq_base())
    return len(missing)


def refusing(work: Path, seconds: float) -> dict[str, Any]:
    """CPU of the agent while the broker refuses its telemetry, and with it allowed."""
    (work / "sim").mkdir()
    sim = Simulator(work / "sim").start()
    broker, acl = acl_broker(work, ACL_DENY_TELEMETRY)
    site = "bench-" + uuid.uuid4().hex[:6]
    sub = Subscriber(broker.port, site)
    sub.client.username_pw_set("platform", "pf-secret")
    sub.start()
    agent = AgentProc(work, broker.port, sim, site, config=_cabinet(work, sim), device_sets=[])
    agent.env = {"B_USER": "gw", "B_PASSWORD": "gw-secret"}
    agent.extra = [
        "uplink.credentials.username_env=B_USER",
        "uplink.credentials.password_env=B_PASSWORD",
    ]
    out: dict[str, Any] = {}
    try:
        agent.start()
        assert agent.proc is not None
        wait_for(lambda: any(t.endswith("/status") for t, _, _ in sub.snapshot()), 30, "birth")
        time.sleep(2.0)
        c0, t0 = _cpu_s(agent.proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (_cpu_s(agent.proc.pid) - c0) / (time.monotonic() - t0) * 100
        refused = sum(_status(agent)["uplink"]["refusals"]["counts"].values())
        out["refusing_cpu_pct_of_core"] = round(cpu, 2)
        out["refusing_refused_publishes_per_min"] = round(refused / (seconds + 2) * 60, 1)
        acl.write_text(ACL_ALLOW_ALL)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _status(agent)["buffer"]["pending"] < 100, 60, "the backlog to drain")
        c0, t0 = _cpu_s(agent.proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (_cpu_s(agent.proc.pid) - c0) / (time.monotonic() - t0) * 100
        out["accepting_cpu_pct_of_core"] = round(cpu, 2)
        agent.stop()
        out["refusing_then_allowed_lost"] = _lost(agent, sub)
    finally:
        agent.stop(9) if agent.proc is not None else None
        sub.stop()
        broker.stop()
        sim.stop()
    return out


def packet(work: Path, seconds: float) -> dict[str, Any]:
    """Reconnects per minute and loss behind ``max_packet_size 4096`` with a backlog."""
    (work / "sim").mkdir()
    sim = Simulator(work / "sim").start()
    broker = Mosquitto(work, extra_conf="max_packet_size 4096\n").start()
    site = "bench-" + uuid.uuid4().hex[:6]
    sub = Subscriber(broker.port, site).start()
    agent = AgentProc(work, broker.port, sim, site, config=_cabinet(work, sim), device_sets=[])
    out: dict[str, Any] = {}
    try:
        broker.stop()
        agent.start()
        time.sleep(5.0)  # ~2,000 samples of backlog
        broker.start()
        t0 = time.monotonic()
        time.sleep(seconds)
        minutes = (time.monotonic() - t0) / 60
        connects = agent.log.read_text().count("uplink: connected")
        out["packet_limit_reconnects_per_min"] = round(max(0, connects - 1) / minutes, 1)
        agent.stop()
        out["packet_limit_lost"] = _lost(agent, sub)
        out["packet_limit_still_buffered"] = len(agent.buffered_seqs())
    finally:
        agent.stop(9) if agent.proc is not None else None
        sub.stop()
        broker.stop()
        sim.stop()
    return out


def run(work: Path, quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    """Every part (or ``only`` those), figures as a dict."""
    figures: dict[str, Any] = {}
    seconds = 10.0 if quick else 30.0
    parts = {
        "fleet": lambda: fleet(),
        "reconnect": lambda: reconnect(
            work / "reconnect", 5 if quick else 10, 2 if quick else 6, 3.0 if quick else 20.0
        ),
        "refusing": lambda: refusing(work / "refusing", seconds),
        "packet": lambda: packet(work / "packet", seconds),
    }
    for name, fn in parts.items():
        if only and name not in only:
            continue
        (work / name).mkdir(parents=True, exist_ok=True)
        print(f"-- broker limits: {name}", flush=True)
        figures.update(fn())
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="reconnect fleet refusing packet")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pumproom-broker-") as tmp:
        figures = run(Path(tmp), args.quick, args.only)
    for k, v in figures.items():
        print(f"{k:45} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
