"""``python -m tests.benchmarks.peer [--rounds N] [--seconds S] [--warmup S] [--storage ...]
[--json PATH]``: our agent side by side with the ThingsBoard IoT Gateway 3.8.5 (issue 17).

Both gateways poll the same 100 float32 holding registers every 100 ms from the same synthetic
Modbus TCP server and publish to the same Mosquitto, where one counter subscriber counts the
values delivered. Runs are interleaved (ours, peer memory, peer SQLite, ours, ...), each gateway
a fresh process, measured after a warm-up: CPU time of its process tree from ``/proc/<pid>/stat``
(utime + stime of the process and its live children, + cutime + cstime of reaped ones) and the
values the counter got over the same window. Printed: each run, then per subject the median (and
range) of CPU ms per 1000 values, values/s, % of a core, and the ratio ours / peer.

The peer is installed at run time into its own venv (:mod:`tests.benchmarks.peer.peer_gw`), and
since it calls home at start-up, everything (simulator, broker, stand-in, counter, both
gateways) runs inside a network namespace with only loopback: this command as root creates
``pumproom-peer-<pid>`` (``ip netns add``), brings ``lo`` up, re-runs itself inside with
``--inside`` and deletes the namespace afterwards. Without root or ``ip netns`` it stops with
the reason (the peer is never run with the machine's network).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.benchmarks.peer import peer_gw
from tests.benchmarks.peer.cpu import flat, summarise
from tests.benchmarks.peer.run import OURS, side_by_side
from tests.procs import ROOT


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per run (30)")
    ap.add_argument("--warmup", type=float, default=5.0, help="warm-up after first values (5)")
    ap.add_argument(
        "--storage",
        nargs="+",
        choices=peer_gw.STORAGES,
        default=peer_gw.STORAGES,
        help="the peer's storage modes (both)",
    )
    ap.add_argument("--venv", type=Path, default=peer_gw.DEFAULT_VENV, help="the peer's venv")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--workdir", type=Path, help="keep logs and configs here (default: a temp dir)")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({r.returncode}): {r.stderr.strip()}")


def in_namespace(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Run this command with ``--inside`` in a fresh loopback-only network namespace; returns
    the figures it wrote. Raises ``RuntimeError`` when the namespace cannot be made (not root,
    no ``ip``) or the inner run fails."""
    if os.geteuid() != 0:
        raise RuntimeError("the side-by-side needs root for `ip netns add` (the peer calls home)")
    name = f"pumproom-peer-{os.getpid()}"
    _ip("netns", "add", name)
    try:
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        with tempfile.TemporaryDirectory(prefix="pumproom-peer-") as tmp:
            out = Path(tmp) / "figures.json"
            cmd = [
                "ip",
                "netns",
                "exec",
                name,
                sys.executable,
                "-m",
                "tests.benchmarks.peer",
                *argv,
                "--inside",
                "--json",
                str(out),
            ]
            r = subprocess.run(cmd, cwd=ROOT)
            if r.returncode or not out.exists():
                raise RuntimeError(f"the side-by-side inside {name} failed ({r.returncode})")
            return dict(json.loads(out.read_text()))
    finally:
        _ip("netns", "del", name)


def inside(args: argparse.Namespace) -> dict[str, Any]:
    """The run itself (already in the namespace): every run, the summary, the figures."""
    nets = sorted(p.name for p in Path("/sys/class/net").iterdir())
    print(f"-- side by side, network interfaces here: {nets}", flush=True)
    python = peer_gw.ensure_venv(args.venv)
    with tempfile.TemporaryDirectory(prefix="pumproom-peer-") as tmp:
        runs = side_by_side(
            args.workdir or Path(tmp), python, args.rounds, args.seconds, args.warmup, args.storage
        )
    summary = summarise(runs, OURS)
    print("\nsubject  CPU ms/1000 values, median (range)  values/s  % core  B/value  ours/subject")
    for subject, f in summary.items():
        n = {k: float("nan") if v is None else v for k, v in f.items()}
        cpu = f"{n['cpu_ms_per_1000']:8.1f} ({n['cpu_ms_per_1000_min']:.1f}-"
        cpu += f"{n['cpu_ms_per_1000_max']:.1f})"
        print(
            f"{subject:8} {cpu:33} {n['values_per_s']:8.1f} {n['cpu_pct_of_core']:7.1f} "
            f"{n['bytes_per_value']:8.1f}  {n['ratio']:.3f}"
        )
    figures: dict[str, Any] = flat(summary, OURS)
    figures["peer_runs"] = [vars(r) | {"cpu_ms_per_1000": r.cpu_ms_per_1000} for r in runs]
    figures["peer_interfaces"] = nets
    figures["peer_load_avg"] = round(os.getloadavg()[0], 2)
    print(f"load average at the end: {figures['peer_load_avg']}")
    return figures


def figures(argv: list[str]) -> dict[str, Any]:
    """For the benchmark runner: the figures of ``python -m tests.benchmarks.peer ARGV``
    (prepares the peer's venv here, outside the namespace, where PyPI is reachable)."""
    args = _args(argv)
    peer_gw.ensure_venv(args.venv)
    return in_namespace(args, argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _args(argv)
    if args.inside:
        figs = inside(args)
    else:
        peer_gw.ensure_venv(args.venv)  # needs PyPI: before entering the namespace
        figs = in_namespace(args, [a for a in argv if a != "--json" and a != str(args.json)])
    if args.json:
        args.json.write_text(json.dumps(figs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
