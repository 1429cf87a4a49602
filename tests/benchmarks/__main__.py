"""``python -m tests.benchmarks [--quick] [--json PATH] [--only NAME ...] [--soak-s S]``

Runs every benchmark against real processes on loopback (synthetic Modbus server, private
Mosquitto, the agent as its own process), prints a table of figures against the targets of
issue 6 and writes them as JSON (``--json``, default ``benchmarks.json``). ``--quick`` runs
each benchmark briefly (about 5 minutes in all); the full run takes about 20 minutes, most of
it the soak (``--soak-s``, default 600 s) and the side-by-side with the ThingsBoard gateway
(``peer``: root, and PyPI once for the peer's venv; see :mod:`tests.benchmarks.peer`). After the
table of issue 6's targets comes the table of issue 17's figures (:mod:`tests.benchmarks.issue17`).
Not part of the CI test run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.benchmarks import alarms as alarms_bench
from tests.benchmarks import broker_limits, config_load, latency, loads, per_sample, rtu_bus, wire

try:  # the buffer benchmarks of the other helper, when present
    from tests.benchmarks import buffer as buffer_bench  # type: ignore[attr-defined]
except ImportError:
    buffer_bench = None
from tests.benchmarks import store_bench
from tests.benchmarks.issue17 import table as issue17_table
from tests.benchmarks.peer import __main__ as peer

# (JSON key, target description, check) — the targets of issue 6.
TARGETS: list[tuple[str, str, Callable[[float], bool]]] = [
    ("pipeline_points_per_s_per_core", ">= 20000 (aim 100000)", lambda v: v >= 20000),
    ("pipeline_cpu_s_per_1000_points", "<= 0.05", lambda v: v <= 0.05),
    ("typical_cpu_pct_of_core", "< 2 %", lambda v: v < 2),
    ("typical_rss_mb", "< 60 MB", lambda v: v < 60),
    ("many_devices_cpu_pct_of_core", "(report)", lambda v: True),
    ("many_devices_poll_lateness_p99_ms", "(report)", lambda v: True),
    ("rtu_bus_utilisation", ">= 0.90", lambda v: v >= 0.9),
    ("buffer_ingest_samples_per_s", "(report)", lambda v: True),
    ("backlog_drain_samples_per_s", ">= 20000", lambda v: v >= 20000),
    ("backlog_24h_drain_s", "< 300 s", lambda v: v < 300),
    ("buffer_bytes_per_sample", "< 40 B", lambda v: v < 40),
    ("uplink_bytes_per_sample", "(report)", lambda v: True),
    ("soak_rss_growth_mb_per_h", "< 1 MB/h", lambda v: v < 1),
    ("change_to_subscriber_p99_ms", "< 1100 ms (1 s poll + 100)", lambda v: v < 1100),
    ("poll_to_subscriber_p99_ms", "(report)", lambda v: True),
    ("command_to_ack_p99_ms", "(report)", lambda v: True),
    ("command_to_write_p50_ms", "< 50 ms (p99 is the target)", lambda v: v < 50),
    ("command_to_write_p99_ms", "< 50 ms", lambda v: v < 50),
    ("start_to_first_sample_s", "< 2 s", lambda v: v < 2),
    ("config_load_10k_points_s", "<= 1 s (issue 17)", lambda v: v <= 1),
    ("wire_json_bytes_per_value", "(report; v1 JSON, 69.9 before)", lambda v: True),
    ("wire_json_zlib_bytes_per_value", "(report; v1 JSON + zlib)", lambda v: True),
    ("wire_cbor_bytes_per_value", "<= 12 B (issue 17, cbor)", lambda v: v <= 12),
    ("wire_cbor_zlib_bytes_per_value", "<= 3 B (issue 17, cbor+zlib)", lambda v: v <= 3),
    ("wire_noisy_cbor_bytes_per_value", "<= 12 B (noisy float32)", lambda v: v <= 12),
    ("wire_noisy_cbor_zlib_bytes_per_value", "(report; noisy, + zlib)", lambda v: True),
    ("alarm_cpu_pct_of_core", "< 2 % (typical room budget)", lambda v: v < 2),
    ("alarm_cause_to_subscriber_p99_ms", "(report; 1 s poll)", lambda v: True),
    ("reconnect_p50_s", "<= 1 s (issue 12)", lambda v: v <= 1),
    ("reconnect_p99_s", "<= 3 s (issue 12)", lambda v: v <= 3),
    ("refusing_cpu_pct_of_core", "< 5 % (issue 12)", lambda v: v < 5),
    ("packet_limit_reconnects_per_min", "0 (issue 12)", lambda v: v == 0),
    ("refusing_then_allowed_lost", "0 (issue 12)", lambda v: v == 0),
    ("packet_limit_lost", "0 (issue 12)", lambda v: v == 0),
]


def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    q = args.quick
    t = 5.0 if q else 30.0
    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("config", lambda: config_load.run(work / "config", 3 if q else 5)),
        ("broker", lambda: broker_limits.run(work / "broker", q)),
        ("pipeline", lambda: loads.pipeline(work / "pipeline", t)),
        ("per_sample", lambda: per_sample.run(work / "per_sample", 8.0 if q else 20.0)),
        ("typical", lambda: loads.typical(work / "typical", t)),
        ("wire", lambda: wire.run(work / "wire", 5.0 if q else 15.0)),
        ("many", lambda: loads.many_devices(work / "many", t)),
        ("rtu", lambda: _rtu(work, 5.0 if q else 20.0)),
        ("buffer", lambda: _buffer(work / "buffer", t, q)),
        ("latency", lambda: latency.run(work / "latency", 8.0 if q else 40.0, 8 if q else 25)),
        ("alarms", lambda: alarms_bench.run(work / "alarms", 10 if q else 40)),
        (
            "peer",
            lambda: peer.figures(["--rounds", "2" if q else "3", "--seconds", str(max(t, 10.0))]),
        ),
        (
            "soak",
            lambda: loads.soak(
                work / "soak",
                args.soak_s if args.soak_s is not None else (15.0 if q else 600.0),
                3.0 if q else 60.0,
            ),
        ),
    ]
    figures: dict[str, Any] = {"quick": q, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for name, fn in plan:
        if args.only and name not in args.only:
            continue
        t0 = time.monotonic()
        print(f"-- {name} (load average {os.getloadavg()[0]:.2f}) ...", flush=True)
        try:
            figures.update(fn())
        except Exception as exc:  # one failing benchmark must not hide the others
            figures[f"{name}_error"] = repr(exc)
            print(f"   {name} failed: {exc!r}", flush=True)
        print(f"   {name} took {time.monotonic() - t0:.1f} s", flush=True)
    return figures


def _rtu(work: Path, seconds: float) -> dict[str, Any]:
    out = {}
    for baud in (9600, 19200):
        out.update(rtu_bus.bus(work / f"rtu{baud}", seconds, baud))
    out["rtu_bus_utilisation"] = min(out["rtu_9600_utilisation"], out["rtu_19200_utilisation"])
    return out


def _buffer(work: Path, seconds: float, quick: bool) -> dict[str, Any]:
    return store_bench.run(work, seconds, backlog=1_000_000 if quick else 5_000_000)


def table(figures: dict[str, Any]) -> str:
    """The figures against the targets, one line each."""
    lines = [f"{'figure':40} {'value':>12}  {'target':28} ok"]
    for key, target, ok in TARGETS:
        v = figures.get(key)
        mark = "-" if not isinstance(v, int | float) else ("yes" if ok(v) else "NO")
        lines.append(f"{key:40} {v if v is not None else 'n/a':>12}  {target:28} {mark}")
    lines.append("")
    lines.append("other figures:")
    shown = {k for k, _, _ in TARGETS}
    for k, v in figures.items():
        if k not in shown:
            lines.append(f"  {k}: {v}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 even when a target is missed)."""
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs, under 3 minutes in all")
    ap.add_argument("--json", default="benchmarks.json", help="where to write the figures")
    ap.add_argument(
        "--only",
        nargs="*",
        help="config broker pipeline per_sample typical wire many rtu buffer latency alarms soak",
    )
    ap.add_argument("--soak-s", type=float, default=None, help="soak duration, s (600)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pumproom-bench-") as tmp:
        figures = _run(args, Path(tmp))
    figures["total_s"] = round(time.monotonic() - t0, 1)
    figures["load_avg_end"] = round(os.getloadavg()[0], 2)
    print(table(figures))
    print(issue17_table(figures))
    Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
