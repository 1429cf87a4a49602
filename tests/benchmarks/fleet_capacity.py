"""Fleet capacity: rooms per core of ``hil-sim fleet``, agents per machine, the broker's rate.

``python -m tests.benchmarks.fleet_capacity [--rooms 25,50,100,...] [--agents 1,4,8,16]
[--seconds S] [--skip-rooms] [--skip-agents] [--json PATH]``

1. Rooms per core. ``hil-sim fleet --rooms N`` (one asyncio thread: one core at most) runs
   while :mod:`tests.benchmarks.fleet_loadgen` polls every room with the agent's own reads
   (23 per room per second for config/example.yaml). A step is *on time* when ≥ 99 % of the
   reads are answered within 100 ms, *served* when none times out (the agent's 1 s: a late
   answer is a comm failure to it) and ≥ 95 % of the planned reads were answered (cycles that
   overrun their second send fewer). N grows until a step is not served; the figures are the
   largest N on time and the largest N served on this (shared) machine. Late plant ticks (a
   0.1 s tick missed whole) are reported beside them. Since other work shares the cores, the
   fleet's own CPU is the steadier figure: rooms per core by CPU = N × 100 % / the fleet's
   CPU % at the largest N on time (past it the fleet is starved: it gets less CPU than it
   needs, skips plant ticks, and its CPU no longer grows with N).
2. Agents per machine. N rooms, N real agents (``pumproom-agent run`` with a status file,
   :class:`~tests.benchmarks.harness.BenchAgent`) on the configs the fleet wrote, one private
   Mosquitto and a subscriber on ``pumproom/v1/#`` counting what the broker delivers. Figures
   per N: each agent's CPU (% of a core) and RSS (MiB), the fleet's and the broker's CPU, the
   CPU of all of these together and of the whole machine (others' work included), messages and
   bytes per second at the subscriber. N grows until these processes saturate the machine
   (≥ 90 % of all its CPUs) or an agent falls behind (the subscriber gets under 90 % of N=1's
   messages per agent).
3. OPC UA's cost (``--opcua-rooms``): a fleet idle without and with one OPC UA server per
   room: start time, RSS and CPU per OPC UA room.

Only loopback addresses. The machine is shared: the load average is printed with each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil

from tests.benchmarks.harness import BenchAgent, broker, load_average
from tests.procs import ROOT, _stop_process, wait_for

ON_TIME_FRAC = 0.99
STEP_S = 0.1
"""The fleet's plant tick (hil_sim.fleet.FleetOptions.step_s)."""


class FleetRun:
    """``hil-sim fleet`` as a subprocess on free ports."""

    def __init__(
        self, workdir: Path, rooms: int, broker_port: int = 1883, *extra: str, base_port: int = 0
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.out = workdir / "fleet"
        self.log = workdir / "fleet.log"
        args = [sys.executable, "-m", "hil_sim.cli", "fleet", "--rooms", str(rooms)]
        args += ["--out", str(self.out), "--base-port", str(base_port)]
        args += ["--status-base-port", "0", "--broker", f"mqtt://127.0.0.1:{broker_port}"]
        started = time.monotonic()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*args, *extra], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        wait_for(self._ready, 60 + rooms * 2.0, f"a fleet of {rooms} rooms")
        self.start_s = time.monotonic() - started
        self.ps = psutil.Process(self.proc.pid)
        self.manifest = self.out / "fleet.json"

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"fleet exited: {self.log.read_text()[-2000:]}"
        return "agent configs written" in self.log.read_text()

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def late_ticks(self) -> int:
        """Late plant ticks since start (the last status line's total, 0 before one)."""
        lines = [ln for ln in self.log.read_text().splitlines() if "in all)" in ln]
        return int(lines[-1].rsplit("(", 1)[1].split()[0]) if lines else 0

    def stop(self) -> None:
        _stop_process(self.proc, timeout_s=60)


def rooms_step(workdir: Path, rooms: int, seconds: float) -> dict[str, Any]:
    """One step of part 1: ``rooms`` rooms under the agents' polling for ``seconds``."""
    fleet = FleetRun(workdir, rooms)
    try:
        result = workdir / "loadgen.json"
        warmup = 3.0
        cmd = [sys.executable, "-m", "tests.benchmarks.fleet_loadgen", "--manifest"]
        cmd += [str(fleet.manifest), "--warmup-s", str(warmup), "--seconds", str(seconds)]
        cmd += ["--out", str(result)]
        gen = subprocess.Popen(cmd, cwd=ROOT)
        time.sleep(warmup)
        cpu0, late0, t0 = fleet.cpu_s(), fleet.late_ticks(), time.monotonic()
        gen.wait(seconds + 120)
        cpu1, t1 = fleet.cpu_s(), time.monotonic()
        time.sleep(5.5)  # one more status line, so the late ticks cover the window
        late = fleet.late_ticks() - late0
        figures = json.loads(result.read_text())
    finally:
        fleet.stop()
    figures |= {
        "fleet_cpu_pct": 100.0 * (cpu1 - cpu0) / (t1 - t0),
        "late_ticks": late,
        "late_tick_frac": late / ((t1 - t0 + 5.5) / STEP_S),
        "load_avg": load_average(),
    }
    figures["on_time"] = figures["on_time_frac"] >= ON_TIME_FRAC and figures["timeouts"] == 0
    planned = figures["reads_per_room_cycle"] * rooms  # per second: the example polls at 1 s
    figures["served"] = figures["timeouts"] == 0 and figures["answered_per_s"] >= 0.95 * planned
    return figures


def opcua_cost(workdir: Path, rooms: int, seconds: float) -> dict[str, Any]:
    """Part 3: what OPC UA adds: a fleet of ``rooms`` rooms without, then with ``--opcua``
    (idle: nobody polls), its start time, RSS and CPU."""
    out: dict[str, Any] = {"rooms": rooms}
    for label, extra in (("plain", ()), ("opcua", ("--opcua",))):
        base = 0
        if extra:  # OPC UA needs fixed ports: a block free now (base+i and base+1000+i)
            base = next(
                b for b in range(20000, 40000, 97) if all(_free(b + d) for d in _offsets(rooms))
            )
        fleet = FleetRun(workdir / label, rooms, 1883, *extra, base_port=base)
        try:
            time.sleep(3.0)
            cpu0, t0 = fleet.cpu_s(), time.monotonic()
            time.sleep(seconds)
            out[f"{label}_cpu_pct"] = 100.0 * (fleet.cpu_s() - cpu0) / (time.monotonic() - t0)
            out[f"{label}_rss_mb"] = fleet.ps.memory_info().rss / (1 << 20)
            out[f"{label}_start_s"] = fleet.start_s
        finally:
            fleet.stop()
    for key in ("cpu_pct", "rss_mb", "start_s"):
        out[f"per_opcua_room_{key}"] = (out[f"opcua_{key}"] - out[f"plain_{key}"]) / rooms
    out["load_avg"] = load_average()
    return out


def _offsets(rooms: int) -> list[int]:
    return [*range(rooms), *range(1000, 1000 + rooms)]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Counter:
    """A subscriber on ``pumproom/v1/#`` counting messages and payload bytes (paho thread)."""

    def __init__(self, port: int) -> None:
        self.messages = 0
        self.bytes = 0
        self.sites: set[str] = set()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fleet-counter")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("pumproom/v1/#", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(10), "counter not subscribed"

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages += 1
            self.bytes += len(msg.payload)
            if "/telemetry" in msg.topic:
                self.sites.add(msg.topic.split("/")[2])

    def read(self) -> tuple[int, int]:
        with self._lock:
            return self.messages, self.bytes

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def agents_step(workdir: Path, n: int, seconds: float) -> dict[str, Any]:
    """One step of part 2: ``n`` agents on ``n`` fleet rooms and a private broker."""
    with broker(workdir) as mq:
        fleet = FleetRun(workdir, n, broker_port=mq.port)
        counter = Counter(mq.port)
        agents: list[BenchAgent] = []
        try:
            rooms = json.loads(fleet.manifest.read_text())["rooms"]
            for room in rooms:
                folder = Path(room["config"]).parent
                agents.append(BenchAgent(folder, Path(room["config"])).start())
            wait_for(lambda: len(counter.sites) == n, 60 + 10 * n, f"telemetry from all {n} agents")
            time.sleep(5.0)  # past the start-up burst
            mosq = psutil.Process(mq.proc.pid) if mq.proc else None
            procs = [a.ps for a in agents if a.ps] + [fleet.ps] + ([mosq] if mosq else [])
            procs.append(psutil.Process())  # this process: the counting subscriber
            before = [sum(p.cpu_times()[:2]) for p in procs]
            m0, b0, t0 = *counter.read(), time.monotonic()
            psutil.cpu_percent(None)
            time.sleep(seconds)
            machine = psutil.cpu_percent(None)
            m1, b1, t1 = *counter.read(), time.monotonic()
            cpu = [
                100.0 * (sum(p.cpu_times()[:2]) - c) / (t1 - t0)
                for p, c in zip(procs, before, strict=True)
            ]
            rss = sorted(a.rss_mb() for a in agents)
            agent_cpu = sorted(cpu[:n])
        finally:
            for a in agents:
                a.stop()
            counter.stop()
            fleet.stop()
    return {
        "agents": n,
        "agent_cpu_pct_median": agent_cpu[n // 2],
        "agent_cpu_pct_max": agent_cpu[-1],
        "agent_rss_mb_median": rss[n // 2],
        "agent_rss_mb_max": rss[-1],
        "fleet_cpu_pct": cpu[n],
        "broker_cpu_pct": cpu[n + 1] if mosq else float("nan"),
        "ours_cpu_pct": sum(cpu),
        "machine_cpu_pct": machine,
        "msgs_per_s": (m1 - m0) / (t1 - t0),
        "msgs_per_s_per_agent": (m1 - m0) / (t1 - t0) / n,
        "kbytes_per_s": (b1 - b0) / (t1 - t0) / 1000.0,
        "load_avg": load_average(),
    }


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description="Fleet capacity (see the module docstring).")
    ap.add_argument("--rooms", type=_ints, default=_ints("25,50,100,150,200,300,400"))
    ap.add_argument("--agents", type=_ints, default=_ints("1,4,8,16"))
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per step")
    ap.add_argument("--skip-rooms", action="store_true")
    ap.add_argument("--skip-agents", action="store_true")
    ap.add_argument("--opcua-rooms", type=int, default=5, help="part 3's fleet; 0: skip it")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args()
    report: dict[str, Any] = {"cpus": os.cpu_count(), "rooms": [], "agents": []}
    with tempfile.TemporaryDirectory(prefix="fleet-capacity-") as tmp:
        if not a.skip_rooms:
            print("rooms  reads/s  on-time  p50 ms  p99 ms  timeouts  fleet cpu  late  load")
            for n in a.rooms:
                f = rooms_step(Path(tmp) / f"rooms-{n}", n, a.seconds)
                report["rooms"].append(f)
                print(
                    f"{n:5d}  {f['answered_per_s']:7.0f}  {100 * f['on_time_frac']:6.2f}%  "
                    f"{f['p50_ms']:6.1f}  {f['p99_ms']:6.1f}  {f['timeouts']:8d}  "
                    f"{f['fleet_cpu_pct']:7.0f} %  {f['late_ticks']:4d}  {f['load_avg']:.2f}"
                    f"  {'on time' if f['on_time'] else 'served' if f['served'] else 'FAIL'}"
                    f" (loadgen cpu {f['loadgen_cpu_pct']:.0f} %)",
                    flush=True,
                )
                if not f["served"]:
                    break
            on_time = [f for f in report["rooms"] if f["on_time"]]
            served = [f["rooms"] for f in report["rooms"] if f["served"]]
            best = on_time[-1] if on_time else None
            report["rooms_on_time"] = best["rooms"] if best else 0
            report["rooms_served"] = max(served, default=0)
            report["rooms_per_core_by_cpu"] = (
                best["rooms"] * 100.0 / best["fleet_cpu_pct"] if best else 0.0
            )
            print(
                f"largest fleet on time: {report['rooms_on_time']} rooms; served (no read "
                f"timed out): {report['rooms_served']} rooms; rooms per core by the fleet's "
                f"CPU: {report['rooms_per_core_by_cpu']:.0f}"
            )
        if not a.skip_agents:
            print("agents  cpu/agent med/max %  rss/agent med/max MiB  fleet %  broker %  "
                  "ours %  machine %  msgs/s  msgs/s/agent  kB/s  load")  # fmt: skip
            base: float | None = None
            for n in a.agents:
                f = agents_step(Path(tmp) / f"agents-{n}", n, a.seconds)
                report["agents"].append(f)
                print(
                    f"{n:6d}  {f['agent_cpu_pct_median']:7.1f} / {f['agent_cpu_pct_max']:5.1f}"
                    f"  {f['agent_rss_mb_median']:9.1f} / {f['agent_rss_mb_max']:6.1f}"
                    f"  {f['fleet_cpu_pct']:7.1f}  {f['broker_cpu_pct']:7.2f}"
                    f"  {f['ours_cpu_pct']:6.0f}  {f['machine_cpu_pct']:8.0f}  {f['msgs_per_s']:6.1f}"
                    f"  {f['msgs_per_s_per_agent']:12.2f}  {f['kbytes_per_s']:5.1f}"
                    f"  {f['load_avg']:.2f}",
                    flush=True,
                )
                base = base if base is not None else f["msgs_per_s_per_agent"]
                behind = f["msgs_per_s_per_agent"] < 0.9 * base
                if f["ours_cpu_pct"] >= 90.0 * (os.cpu_count() or 1) or behind:
                    why = "machine saturated" if not behind else "agents fall behind"
                    print(f"stopped at {n} agents: {why}")
                    break
        if a.opcua_rooms:
            f = opcua_cost(Path(tmp) / "opcua", a.opcua_rooms, a.seconds)
            report["opcua"] = f
            print(
                f"OPC UA, {a.opcua_rooms} idle rooms: without {f['plain_rss_mb']:.0f} MiB, "
                f"{f['plain_cpu_pct']:.1f} % cpu, start {f['plain_start_s']:.1f} s; with "
                f"{f['opcua_rss_mb']:.0f} MiB, {f['opcua_cpu_pct']:.1f} % cpu, start "
                f"{f['opcua_start_s']:.1f} s; per OPC UA room +{f['per_opcua_room_rss_mb']:.1f} "
                f"MiB, +{f['per_opcua_room_cpu_pct']:.2f} % of a core, "
                f"+{f['per_opcua_room_start_s']:.2f} s start (load {f['load_avg']:.2f})"
            )
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
