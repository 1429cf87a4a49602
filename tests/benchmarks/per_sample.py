"""Issue 17: CPU per sample through poll → decode → SQLite → PUBACK.

``python -m tests.benchmarks --only per_sample`` (or ``python -m tests.benchmarks.per_sample
[SECONDS]`` on its own). Each run starts a synthetic Modbus TCP server, a private Mosquitto and
the agent as its own process; one device of ``n`` float32 holding-register points polled every
100 ms (so 10·n points a second), default uplink and buffer settings (``synchronous: full``).

Figures (the issue's table):

* ``cpu_ms_per_1000_points``: agent CPU (all threads, user + system) per 1,000 points acked
  after their PUBACK, 100 points every 100 ms. Goal ≤ 8 ms.
* ``marginal_us_per_sample``: the extra CPU per extra sample between 100 and 1,000 points every
  100 ms, µs. Goal ≤ 4 µs.
* ``points_10k_polls_per_s``, ``points_10k_cpu_pct_of_core``, ``points_10k_rss_mib``: 10,000
  points every 100 ms. Goals: 10 polls/s, ≤ 50 % of a core, ≤ 80 MiB.

The synthetic server runs in its own process; its CPU is not counted.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.harness import (
    BenchAgent,
    SynthServer,
    broker,
    float_points,
    load_average,
    tcp_device,
    write_config,
)

INTERVAL_S = 0.1
"""Poll interval of every run, s (the issue's 100 ms)."""


def one(workdir: Path, points: int, seconds: float) -> dict[str, float]:
    """Run the agent on ``points`` float32 points every 100 ms for ``seconds`` (after warm-up).

    Returns ``cpu_s`` (agent CPU over the window), ``seconds``, ``acked`` (samples acked after
    PUBACK), ``polls`` (polls handed to ingest), ``rss_mib``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    synth = SynthServer(workdir, {"tcp": [{"units": [1]}], "registers": 2 * points}).start()
    try:
        with broker(workdir) as mq:
            dev = tcp_device("plc", synth.tcp_ports[0], 1, float_points("f", points), INTERVAL_S)
            cfg = write_config(workdir, [dev], mq.port, f"bench-ps{points}")
            agent = BenchAgent(workdir, cfg).start()
            try:
                agent.wait_status(
                    lambda s: s.get("store", {}).get("acked", 0) > 0, 60, "first PUBACK"
                )
                time.sleep(3.0)  # warm-up
                w = agent.measure(seconds)
            finally:
                agent.stop()
    finally:
        synth.stop()
    dt = w.end.get("t", 0) - w.start.get("t", 0) or w.seconds
    return {
        "cpu_s": w.cpu_s,
        "seconds": w.seconds,
        "acked": w.delta("store", "acked") * w.seconds / dt,
        "polls": w.delta("ingest", "polls") * w.seconds / dt,
        "rss_mib": w.rss_mb,
    }


def run(workdir: Path, seconds: float) -> dict[str, Any]:
    """The issue-17 figures (see the module docstring)."""
    small = one(workdir / "p100", 100, seconds)
    mid = one(workdir / "p1000", 1000, seconds)
    big = one(workdir / "p10k", 10_000, seconds)
    out: dict[str, Any] = {}
    if small["acked"]:
        out["cpu_ms_per_1000_points"] = round(1e6 * small["cpu_s"] / small["acked"], 2)
    rate_s = small["cpu_s"] / small["seconds"]
    rate_m = mid["cpu_s"] / mid["seconds"]
    d_samples = mid["acked"] / mid["seconds"] - small["acked"] / small["seconds"]
    if d_samples > 0:
        out["marginal_us_per_sample"] = round(1e6 * (rate_m - rate_s) / d_samples, 2)
    out["points_1000_cpu_pct_of_core"] = round(100 * rate_m, 1)
    out["points_10k_polls_per_s"] = round(big["polls"] / big["seconds"], 2)
    out["points_10k_acked_per_s"] = round(big["acked"] / big["seconds"], 1)
    out["points_10k_cpu_pct_of_core"] = round(100 * big["cpu_s"] / big["seconds"], 1)
    out["points_10k_rss_mib"] = round(big["rss_mib"], 1)
    out["per_sample_load_avg"] = round(load_average(), 2)
    return out


if __name__ == "__main__":
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    with tempfile.TemporaryDirectory(prefix="pumproom-ps-") as tmp:
        for k, v in run(Path(tmp), secs).items():
            print(f"{k:34} {v}")
