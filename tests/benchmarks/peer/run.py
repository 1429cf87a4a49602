"""The side-by-side run: one synthetic Modbus server, one Mosquitto, the stand-in, the counter;
then each gateway in turn (ours, the peer with memory storage, the peer with SQLite storage),
interleaved over rounds, each a fresh process measured over a window after its warm-up.

Everything listens on 127.0.0.1; :mod:`tests.benchmarks.peer.__main__` runs this inside a
network namespace that has only loopback.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.benchmarks.harness import SynthServer, broker, float_points, tcp_device, write_config
from tests.benchmarks.peer import peer_gw
from tests.benchmarks.peer.counter import Counter
from tests.benchmarks.peer.cpu import Run, schedule, tree_cpu_s
from tests.benchmarks.peer.standin import SessionLimitsStandIn
from tests.procs import ROOT, wait_for

OURS = "ours"


def _start_ours(
    workdir: Path, broker_port: int, modbus_port: int, points: int, poll_s: float
) -> subprocess.Popen[bytes]:
    """Our agent (``python -m agent run``, the real command, no benchmark wrapper) on
    ``points`` float32 points of unit 1 every ``poll_s`` s, default uplink and buffer."""
    dev = tcp_device("plc", modbus_port, 1, float_points("f", points), poll_s)
    cfg = write_config(workdir, [dev], broker_port, "bench-peer")
    with open(workdir / "agent.log", "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "-c", str(cfg), "--log-level", "warning"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes], what: str) -> None:
    """SIGTERM, then SIGKILL after 20 s (the peer's shutdown joins many threads)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            print(f"   {what} did not stop within 20 s of SIGTERM: killed", flush=True)
            proc.kill()
            proc.wait(5)


def measure_one(
    subject: str,
    rnd: int,
    workdir: Path,
    counter: Counter,
    start: subprocess.Popen[bytes],
    warmup_s: float,
    seconds: float,
) -> Run:
    """Wait for the first values of the just-started ``start`` (60 s, else ``AssertionError``
    with the end of its log), warm up, then measure CPU of its process tree and the values the
    counter got over ``seconds``."""
    v_start = counter.values

    def flowing() -> bool:
        if start.poll() is not None:
            logs = [p for p in workdir.rglob("*.log")] + [workdir / "peer.out"]
            tail = "".join(p.read_text()[-1500:] for p in logs if p.exists())
            raise AssertionError(f"{subject} exited with {start.returncode}: {tail}")
        return counter.values > v_start

    wait_for(flowing, 60, f"the first values of {subject}", step_s=0.1)
    time.sleep(warmup_s)
    c0, v0, b0, t0 = tree_cpu_s(start.pid), counter.values, counter.payload_bytes, time.monotonic()
    time.sleep(seconds)
    c1, v1, b1, t1 = tree_cpu_s(start.pid), counter.values, counter.payload_bytes, time.monotonic()
    return Run(subject, rnd, t1 - t0, c1 - c0, v1 - v0, b1 - b0)


def side_by_side(
    workdir: Path,
    peer_python: Path,
    rounds: int,
    seconds: float,
    warmup_s: float,
    storages: Sequence[str] = peer_gw.STORAGES,
    points: int = 100,
    poll_s: float = 0.1,
) -> list[Run]:
    """Every (round, subject) of :func:`~tests.benchmarks.peer.cpu.schedule` measured; prints
    each run as it ends. ``storages`` names the peer's storage modes to run."""
    workdir.mkdir(parents=True, exist_ok=True)
    synth = SynthServer(workdir, {"tcp": [{"units": [1]}], "registers": 2 * points}).start()
    runs: list[Run] = []
    try:
        with broker(workdir) as mq:
            standin = SessionLimitsStandIn(mq.port).start()
            counter = Counter(mq.port).start()
            try:
                for rnd, subject in schedule([OURS, *storages], rounds):
                    d = workdir / f"{subject}-{rnd}"
                    d.mkdir()
                    if subject == OURS:
                        proc = _start_ours(d, mq.port, synth.tcp_ports[0], points, poll_s)
                    else:
                        conf = peer_gw.write_config(
                            d, mq.port, synth.tcp_ports[0], subject, points, round(poll_s * 1000)
                        )
                        proc = peer_gw.start(peer_python, conf, d)
                    try:
                        r = measure_one(subject, rnd, d, counter, proc, warmup_s, seconds)
                    finally:
                        _stop(proc, subject)
                    runs.append(r)
                    print(
                        f"   round {rnd} {subject:7} {r.cpu_ms_per_1000 or float('nan'):7.1f} ms "
                        f"CPU/1000 values, {r.values_per_s:7.1f} values/s, "
                        f"{r.cpu_pct_of_core:5.1f} % of a core, "
                        f"{r.bytes_per_value or float('nan'):5.1f} payload bytes/value",
                        flush=True,
                    )
                    if subject != OURS:
                        shutil.rmtree(d / "data", ignore_errors=True)
                spot = {
                    k: counter.last.get(k)
                    for k in ("f.0", "f0", f"f.{points - 1}", f"f{points - 1}")
                }
                print(f"   latest values (ours f.N, peer fN; the server holds 1001 + N): {spot}")
                print(f"   the stand-in answered {standin.answered} getSessionLimits requests")
                if counter.errors or standin.errors:
                    print(f"   counter/stand-in errors: {(counter.errors + standin.errors)[:5]}")
            finally:
                counter.stop()
                standin.stop()
    finally:
        synth.stop()
    return runs
