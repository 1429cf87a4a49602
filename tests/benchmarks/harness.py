"""Benchmark plumbing: the synthetic server process, generated agent configs, the measured agent.

Everything runs on 127.0.0.1 on free ports (a private Mosquitto from :mod:`tests.procs`). The
agent is a separate process (:mod:`tests.benchmarks.agent_main`); its CPU time and RSS are read
with psutil, its internal counters from the status file the wrapper writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.procs import ROOT, Mosquitto, _stop_process, wait_for


def load_average() -> float:
    """1-minute load average of the machine (noted with every figure)."""
    return os.getloadavg()[0]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0–1) of ``values`` by nearest rank, or ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class SynthServer:
    """:mod:`tests.benchmarks.synth_server` as a subprocess; ``spec`` as documented there."""

    def __init__(self, workdir: Path, spec: dict[str, Any]) -> None:
        self.workdir = workdir
        self.spec = dict(spec)
        self.spec.setdefault("ready", str(workdir / "synth-ready.json"))
        self.spec.setdefault("changes", str(workdir / "synth-changes.txt"))
        self.spec.setdefault("writes", str(workdir / "synth-writes.txt"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.tcp_ports: list[int] = []

    def start(self) -> SynthServer:
        spec_path = self.workdir / "synth-spec.json"
        spec_path.write_text(json.dumps(self.spec))
        ready = Path(self.spec["ready"])
        ready.unlink(missing_ok=True)
        with open(self.workdir / "synth.log", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.benchmarks.synth_server", str(spec_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        wait_for(ready.exists, 30, "the synthetic Modbus server")
        self.tcp_ports = json.loads(ready.read_text())["tcp_ports"]
        return self

    def changes(self) -> dict[int, float]:
        """Ticker value → wall time (s) it was set."""
        out: dict[int, float] = {}
        path = Path(self.spec["changes"])
        if path.exists():
            for line in path.read_text().splitlines():
                value, t = line.split()
                out[int(value)] = float(t)
        return out

    def writes(self) -> list[tuple[float, int, int, str]]:
        """Master writes seen: (wall time s, unit id, address, values)."""
        path = Path(self.spec["writes"])
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            t, unit, address, values = line.split(" ", 3)
            out.append((float(t), int(unit), int(address), values))
        return out

    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None


# ---- agent configuration -------------------------------------------------------------------


def float_points(prefix: str, count: int, start: int = 0, interval_s: float | None = None) -> list:
    """``count`` float32 holding-register points ``{prefix}.{i}`` at addresses 2i (+start)."""
    pts = []
    for i in range(count):
        p: dict[str, Any] = {
            "name": f"{prefix}.{i}",
            "register": "holding",
            "address": start + 2 * i,
            "type": "float32",
            "unit": "MPa",
        }
        if interval_s is not None:
            p["poll_interval_s"] = interval_s
        pts.append(p)
    return pts


def tcp_device(name: str, port: int, unit: int, points: list, interval_s: float) -> dict:
    """A ``modbus-tcp`` device entry."""
    return {
        "name": name,
        "transport": "modbus-tcp",
        "host": "127.0.0.1",
        "port": port,
        "unit_id": unit,
        "timeout_s": 1.0,
        "poll_interval_s": interval_s,
        "max_read_registers": 125,
        "max_gap": 10,
        "points": points,
    }


def rtu_device(name: str, link: str, baud: int, unit: int, points: list, interval_s: float) -> dict:
    """A ``modbus-rtu`` device entry (8N1: a pty refuses parity)."""
    return {
        "name": name,
        "transport": "modbus-rtu",
        "port": link,
        "baudrate": baud,
        "parity": "N",
        "stopbits": 1,
        "bytesize": 8,
        "unit_id": unit,
        "timeout_s": 0.5,
        "poll_interval_s": interval_s,
        "max_read_registers": 125,
        "max_gap": 10,
        "points": points,
    }


def write_config(
    workdir: Path,
    devices: list[dict],
    broker_port: int,
    site: str,
    uplink: dict[str, Any] | None = None,
    buffer: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write an agent config (JSON is YAML) for ``devices``; returns its path."""
    cfg: dict[str, Any] = {
        "site": {"id": site, "gateway_id": "gw-bench"},
        "devices": devices,
        "uplink": {
            "broker": f"mqtt://127.0.0.1:{broker_port}",
            "keepalive_s": 10,
            **(uplink or {}),
        },
        "buffer": {"path": str(workdir / "buffer.sqlite"), **(buffer or {})},
        **(extra or {}),
    }
    path = workdir / "agent.yaml"
    path.write_text(json.dumps(cfg, indent=1))
    return path


# ---- the measured agent -------------------------------------------------------------------


@dataclass
class Window:
    """Figures of the agent over a measured interval."""

    seconds: float
    cpu_s: float
    rss_mb: float
    start: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_pct_of_core(self) -> float:
        return 100.0 * self.cpu_s / self.seconds

    def delta(self, *keys: str) -> float:
        """Difference of a nested status counter, e.g. ``delta("store", "acked")``."""
        a: Any = self.start
        b: Any = self.end
        for k in keys:
            a, b = a.get(k, 0) if a else 0, b.get(k, 0) if b else 0
        return float(b - a)


class BenchAgent:
    """The agent on ``config`` as a subprocess, with psutil and the status file."""

    def __init__(self, workdir: Path, config: Path, status_period_s: float = 1.0) -> None:
        self.workdir = workdir
        self.config = config
        self.status_path = workdir / "agent-status.json"
        self.log = workdir / "agent.log"
        self.status_period_s = status_period_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.started_at = 0.0

    def start(self) -> BenchAgent:
        env = {
            **os.environ,
            "PUMPROOM_BENCH_STATUS": str(self.status_path),
            "PUMPROOM_BENCH_STATUS_S": str(self.status_period_s),
        }
        args = [sys.executable, "-m", "tests.benchmarks.agent_main", "run", "-c", str(self.config)]
        args += ["--log-level", os.environ.get("BENCH_AGENT_LOG", "warning")]
        self.status_path.unlink(missing_ok=True)
        with open(self.log, "ab") as out:
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env
            )
        self.ps = psutil.Process(self.proc.pid)
        return self

    def status(self) -> dict[str, Any]:
        """The latest status snapshot ({} before the first one)."""
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait_status(self, predicate: Any, timeout_s: float, what: str) -> dict[str, Any]:
        """Wait until the status satisfies ``predicate``; fails if the agent died."""

        def check() -> dict[str, Any] | None:
            assert self.proc is not None and self.proc.poll() is None, (
                f"agent exited: {self.log.read_text()[-2000:]}"
            )
            st = self.status()
            return st if st and predicate(st) else None

        return wait_for(check, timeout_s, what, step_s=0.1)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the agent process so far (all its threads)."""
        assert self.ps is not None
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss_mb(self) -> float:
        """Resident set size, MiB."""
        assert self.ps is not None
        return self.ps.memory_info().rss / (1 << 20)

    def threads(self) -> int:
        assert self.ps is not None
        return self.ps.num_threads()

    def measure(self, seconds: float) -> Window:
        """CPU, RSS and status counters over the next ``seconds``."""
        st0, cpu0, t0 = self.status(), self.cpu_s(), time.monotonic()
        time.sleep(seconds)
        # wait for a status written after the interval, so counters cover it
        t_end_wall = time.time()
        cpu1, t1 = self.cpu_s(), time.monotonic()
        st1 = self.wait_status(
            lambda s: s.get("t", 0) >= t_end_wall - 0.01, self.status_period_s * 3 + 2, "status"
        )
        return Window(t1 - t0, cpu1 - cpu0, self.rss_mb(), st0, st1)

    def stop(self) -> int | None:
        code = _stop_process(self.proc, signal.SIGTERM, 30)
        self.proc = None
        return code


@contextmanager
def broker(workdir: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto on a free loopback port for the ``with`` block.

    ``set_tcp_nodelay true`` (mosquitto.conf(5)): without it Nagle's algorithm on the broker's
    socket holds a small PUBLISH until the previous segment is ACKed, and the receiver's delayed
    ACK (40 ms on Linux) shows up in every command round trip. ``BENCH_MOSQ_NODELAY=0`` turns
    it off to see the difference.
    """
    nodelay = os.environ.get("BENCH_MOSQ_NODELAY", "1") != "0"
    m = Mosquitto(workdir, extra_conf="set_tcp_nodelay true\n" if nodelay else "").start()
    try:
        yield m
    finally:
        m.stop()
