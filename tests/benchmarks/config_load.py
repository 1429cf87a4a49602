"""Config load + check time for a large site: ``python -m tests.benchmarks --only config``.

Writes a site of ``devices`` Modbus TCP devices with ``points_per_device`` float32 points each
(word order little, unit, scale, description: the shape of a real point list), then times
:func:`agent.config.load_config` on it (strict YAML with positions, schema, whole-config
checks) in this process, ``runs`` times. Target (issue 17): 10,000 points in ≤ 1 s, read as
CPU time (``time.process_time``): wall time on the shared 2-core machine measures the other
developers' load as much as ours. Then times ``pumproom-agent check`` on the same file as its
own process, ``runs`` times (CPU of the child, from ``getrusage``): what a user waits for,
interpreter start-up and imports included, with the bytecode cached as an installed package
has it (a warm-up run writes it under the work folder, whatever ``PYTHONDONTWRITEBYTECODE``
says: compiling the agent's sources costs ~0.1 s more on every start).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def write_site(path: Path, devices: int = 20, points_per_device: int = 500) -> int:
    """Write the site YAML to ``path``; returns the number of points."""
    out = ["site:\n  id: big-site\n  gateway_id: gw-big\n", "devices:\n"]
    for d in range(devices):
        out.append(
            f"  - name: dev{d}\n    transport: modbus-tcp\n    host: 127.0.0.1\n"
            f"    port: 15020\n    unit_id: {d % 247 + 1}\n    poll_interval_s: 1.0\n    points:\n"
        )
        out += [
            f"      - {{name: d{d}.p{i}, register: holding, address: {i * 2}, type: float32, "
            f'word_order: little, unit: MPa, scale: 1.0, description: "point {i}"}}\n'
            for i in range(points_per_device)
        ]
    out.append(f"uplink:\n  broker: mqtt://127.0.0.1:1883\nbuffer:\n  path: {path}.sqlite\n")
    path.write_text("".join(out), encoding="utf-8")
    return devices * points_per_device


def run(work: Path, runs: int = 5) -> dict[str, Any]:
    """Figures: ``config_load_10k_points_s`` (wall, median of ``runs``), the best run, and the
    median CPU time of this process (steadier on a shared machine)."""
    from agent.config import load_config

    work.mkdir(parents=True, exist_ok=True)
    site = work / "site.yaml"
    n = write_site(site)
    times, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        cfg = load_config(site)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert sum(len(d.points) for d in cfg.devices) == n
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")  # bytecode as an installed package has
    _cli_cpu(site, n, env)  # warm-up: writes the bytecode
    cli = [_cli_cpu(site, n, env) for _ in range(runs)]
    print(
        f"   config: {n} points, load + check median {statistics.median(times):.3f} s, "
        f"best {min(times):.3f} s, CPU median {statistics.median(cpu):.3f} s; "
        f"pumproom-agent check CPU median {statistics.median(cli):.3f} s"
    )
    return {
        "config_load_10k_points_s": round(statistics.median(times), 3),
        "config_load_10k_points_best_s": round(min(times), 3),
        "config_load_10k_points_cpu_s": round(statistics.median(cpu), 3),
        "config_check_cli_10k_points_cpu_s": round(statistics.median(cli), 3),
    }


def _cli_cpu(site: Path, n: int, env: dict[str, str]) -> float:
    """CPU seconds (user + system) of one ``pumproom-agent check -c site`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check", "-c", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0 or f"{n} points" not in out.stdout:
        raise RuntimeError(f"pumproom-agent check failed ({out.returncode}): {out.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
