"""Load benchmarks: pipeline throughput, the typical pump room, many devices, soak.

Each function starts its own synthetic server, broker and agent in ``workdir`` and returns a
dict of figures (keys as in the issue's JSON, units in the key names) plus ``load_avg``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.benchmarks.harness import (
    BenchAgent,
    SynthServer,
    broker,
    float_points,
    load_average,
    rtu_device,
    tcp_device,
    write_config,
)


def _rate(w: Any, *keys: str) -> float:
    dt = w.end.get("t", 0) - w.start.get("t", 0)
    return w.delta(*keys) / dt if dt > 0 else 0.0


def pipeline(workdir: Path, seconds: float, points: int = 1000) -> dict[str, Any]:
    """One Modbus TCP device with ``points`` float32 points polled as fast as it goes.

    Figures: points/s from poll to PUBACK (samples acked in the buffer after their PUBACK),
    agent CPU seconds per 1,000 points, and points/s per core (points per agent CPU second).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    synth = SynthServer(workdir, {"tcp": [{"units": [1]}], "registers": 2 * points}).start()
    try:
        with broker(workdir) as mq:
            dev = tcp_device("plc", synth.tcp_ports[0], 1, float_points("f", points), 0.001)
            cfg = write_config(
                workdir,
                [dev],
                mq.port,
                "bench-pipeline",
                uplink={"batch_max_samples": 2000, "batch_interval_s": 0.05},
                buffer={"synchronous": "normal"},
            )
            agent = BenchAgent(workdir, cfg).start()
            try:
                agent.wait_status(
                    lambda s: s.get("store", {}).get("acked", 0) > 0, 30, "first PUBACK"
                )
                time.sleep(min(3.0, seconds / 3))  # warm-up
                w = agent.measure(seconds)
            finally:
                agent.stop()
    finally:
        synth.stop()
    acked = _rate(w, "store", "acked")
    polled = _rate(w, "ingest", "readings")
    cpu_per_s = w.cpu_s / w.seconds
    return {
        "pipeline_points_per_s": round(acked, 1),
        "pipeline_points_polled_per_s": round(polled, 1),
        "pipeline_cpu_pct_of_core": round(100 * cpu_per_s, 1),
        "pipeline_points_per_s_per_core": round(acked / cpu_per_s, 1) if cpu_per_s else None,
        "pipeline_cpu_s_per_1000_points": round(1000 * cpu_per_s / acked, 4) if acked else None,
        "pipeline_rss_mb": round(w.rss_mb, 1),
        "pipeline_load_avg": round(load_average(), 2),
    }


def typical_devices(tcp_ports: list[int], rtu_link: str, interval_s: float = 1.0) -> list[dict]:
    """About 200 points on 8 devices: 3 Modbus TCP (PLC 80, flow meter 20, power meter 40) and 5
    RTU units on one 19200-baud bus (12 points each)."""
    devs = [
        tcp_device("plc", tcp_ports[0], 1, float_points("plc", 80), interval_s),
        tcp_device("flow", tcp_ports[0], 2, float_points("flow", 20), interval_s),
        tcp_device("power", tcp_ports[1], 3, float_points("power", 40), interval_s),
    ]
    for k in range(5):
        devs.append(
            rtu_device(f"vfd{k}", rtu_link, 19200, 11 + k, float_points(f"vfd{k}", 12), interval_s)
        )
    return devs


TYPICAL_SPEC = {"tcp": [{"units": [1, 2]}, {"units": [3]}], "registers": 200}

ROOM_CONTROL = {"server": 0, "unit": 1, "pv": 180, "setpoint": 182, "initial_mpa": 0.40}
"""The synthetic server's pressure plant on the PLC (unit 1): outlet pressure at 180, the
cabinet setpoint register at 182 (float32, MPa; see :mod:`tests.benchmarks.synth_server`)."""


def room_control(remote: dict[str, Any] | None = None) -> tuple[list[dict], dict[str, Any]]:
    """The PLC points of :data:`ROOM_CONTROL` (outlet pressure polled every 0.2 s, the writable
    setpoint) and a ``control:`` section in cabinet (supervisory) mode on them: the agent's
    control loop writes the ramped setpoint, 200 ms period. ``remote`` updates
    ``control.remote``."""
    pv = {"name": "room.p_out", "register": "holding", "address": ROOM_CONTROL["pv"],
          "type": "float32", "unit": "MPa", "poll_interval_s": 0.2}  # fmt: skip
    sp = {"name": "room.setpoint", "register": "holding", "address": ROOM_CONTROL["setpoint"],
          "type": "float32", "unit": "MPa", "writable": True}  # fmt: skip
    section = {
        "mode": "supervisory",
        "period_s": 0.2,
        "setpoint_mpa": ROOM_CONTROL["initial_mpa"],
        "points": {"pv": "room.p_out", "setpoint": "room.setpoint"},
        "pumps": [{}],
        "remote": {"min_interval_s": 0.0, **(remote or {})},
    }
    return [pv, sp], section


def start_typical(
    workdir: Path,
    broker_port: int,
    site: str,
    ticker: dict | None = None,
    interval_s: float = 1.0,
    control: dict[str, Any] | None = None,
) -> tuple[SynthServer, Path]:
    """Start the synthetic typical pump room (polled every ``interval_s``, s); returns it and
    the agent config path. ``control`` (``control.remote`` settings, may be empty) adds the
    pressure plant and the agent's control loop of :func:`room_control`."""
    link = str(workdir / "ttyBENCH0")
    spec: dict[str, Any] = {
        **TYPICAL_SPEC,
        "rtu": [{"link": link, "baudrate": 19200, "units": [11, 12, 13, 14, 15]}],
    }
    if ticker:
        spec["ticker"] = ticker
    if control is not None:
        spec["control"] = ROOM_CONTROL
    synth = SynthServer(workdir, spec).start()
    devices = typical_devices(synth.tcp_ports, link, interval_s)
    if ticker:
        devices[0]["points"].append(
            {"name": "ticker", "register": "holding", "address": 190, "type": "uint16"}
        )
    extra: dict[str, Any] = {}
    if control is not None:
        points, extra["control"] = room_control(control)
        devices[0]["points"] += points
    cfg = write_config(workdir, devices, broker_port, site, extra=extra)
    return synth, cfg


def typical(workdir: Path, seconds: float) -> dict[str, Any]:
    """The typical pump room at 1 s: agent CPU (% of one core), RSS, threads, tasks."""
    workdir.mkdir(parents=True, exist_ok=True)
    with broker(workdir) as mq:
        synth, cfg = start_typical(workdir, mq.port, "bench-typical")
        try:
            agent = BenchAgent(workdir, cfg).start()
            try:
                agent.wait_status(lambda s: s.get("store", {}).get("acked", 0) > 0, 30, "PUBACK")
                time.sleep(3.0)
                w = agent.measure(seconds)
                threads = agent.threads()
            finally:
                agent.stop()
        finally:
            synth.stop()
    return {
        "typical_cpu_pct_of_core": round(w.cpu_pct_of_core, 2),
        "typical_rss_mb": round(w.rss_mb, 1),
        "typical_points_per_s": round(_rate(w, "ingest", "readings"), 1),
        "typical_threads": threads,
        "typical_tasks": w.end.get("tasks"),
        "typical_load_avg": round(load_average(), 2),
    }


def many_devices(
    workdir: Path, seconds: float, devices: int = 100, points: int = 20
) -> dict[str, Any]:
    """``devices`` Modbus TCP devices (each its own server port) of ``points`` points at 1 s."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {"tcp": [{"units": [1]} for _ in range(devices)], "registers": 2 * points}
    synth = SynthServer(workdir, spec).start()
    try:
        with broker(workdir) as mq:
            devs = [
                tcp_device(f"dev{k}", port, 1, float_points(f"dev{k}", points), 1.0)
                for k, port in enumerate(synth.tcp_ports)
            ]
            cfg = write_config(workdir, devs, mq.port, "bench-many")
            agent = BenchAgent(workdir, cfg).start()
            try:
                agent.wait_status(lambda s: s.get("store", {}).get("acked", 0) > 0, 30, "PUBACK")
                time.sleep(3.0)
                w = agent.measure(seconds)
            finally:
                agent.stop()
    finally:
        synth.stop()
    return {
        "many_devices_cpu_pct_of_core": round(w.cpu_pct_of_core, 2),
        "many_devices_rss_mb": round(w.rss_mb, 1),
        "many_devices_points_per_s": round(_rate(w, "ingest", "readings"), 1),
        "many_devices_poll_lateness_p50_ms": _r(w.end.get("lateness_p50_ms")),
        "many_devices_poll_lateness_p99_ms": _r(w.end.get("lateness_p99_ms")),
        "many_devices_load_avg": round(load_average(), 2),
    }


def soak(workdir: Path, seconds: float, sample_every_s: float = 60.0) -> dict[str, Any]:
    """The typical load for ``seconds``: RSS and task count every ``sample_every_s``.

    ``soak_rss_growth_mb_per_h`` is the least-squares slope of RSS over the SECOND HALF of the
    run (t >= seconds / 2), i.e. after a warm-up; the slope over the whole run (samples after
    the first) and over the first half are reported beside it. A real leak has the same slope
    in both halves; warm-up (allocator pools and free lists filling) a smaller one in the
    second. The 1.5 MB/h once measured here was a real leak although tracemalloc's traced
    bytes stayed flat: reference cycles (a ctypes class and CDLL per clock-sync check, every
    10 s) that only a full GC frees, and the agent rarely runs one. Find such things with
    :mod:`tests.benchmarks.memprobe` (``PUMPROOM_BENCH_GC_COLLECT=1
    PUMPROOM_BENCH_MALLOCSTATS_S=60`` lists cyclic garbage by type in the agent's log).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[float, float, int]] = []
    with broker(workdir) as mq:
        synth, cfg = start_typical(workdir, mq.port, "bench-soak")
        try:
            agent = BenchAgent(workdir, cfg).start()
            try:
                agent.wait_status(lambda s: s.get("store", {}).get("acked", 0) > 0, 30, "PUBACK")
                t0 = time.monotonic()
                while True:
                    now = time.monotonic() - t0
                    rows.append((now, agent.rss_mb(), int(agent.status().get("tasks", 0))))
                    if now >= seconds:
                        break
                    time.sleep(min(sample_every_s, seconds - now + 0.01))
            finally:
                agent.stop()
        finally:
            synth.stop()
    whole = rows[1:] if len(rows) > 2 else rows
    half = rows[-1][0] / 2
    second = [r for r in rows if r[0] >= half]
    first = [r for r in rows if r[0] <= half]

    def per_h(part: list[tuple[float, float, int]]) -> float:
        return round(3600 * _slope([r[0] for r in part], [r[1] for r in part]), 2)

    return {
        "soak_seconds": round(rows[-1][0], 1),
        "soak_rss_mb": [round(r[1], 2) for r in rows],
        "soak_tasks": [r[2] for r in rows],
        "soak_rss_growth_mb_per_h": per_h(second if len(second) >= 2 else whole),
        "soak_rss_growth_whole_run_mb_per_h": per_h(whole),
        "soak_rss_growth_first_half_mb_per_h": per_h(first if len(first) >= 2 else whole),
        "soak_rss_growth_note": (
            f"growth fitted over the second half (t >= {half:.0f} s, after warm-up); "
            "whole-run and first-half slopes beside it. Equal slopes = leak; a smaller "
            "second-half slope = allocator warm-up (see tests/benchmarks/memprobe.py)"
        ),
        "soak_task_growth": rows[-1][2] - rows[0][2],
        "soak_load_avg": round(load_average(), 2),
    }


def _slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)
