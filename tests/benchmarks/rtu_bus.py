"""RS-485 bus utilisation: achieved polls against the theoretical limit of the bus.

The synthetic server paces every RTU response at the configured baud rate with a turnaround
(``hil_sim.modbus.rtu``). The agent polls ``units`` units of ``points`` float32 points each as
fast as it goes (one FC 03 request per unit). The theoretical bus limit for one transaction is

    t_request + t_turnaround + t_response + t3.5

with ``t_x = bytes × bits per character / baud`` (8N1: 10 bits), request 8 bytes (unit, FC,
address, count, CRC), response ``5 + 2 × registers`` bytes (unit, FC, byte count, data, CRC), and
the silent interval t3.5 the master keeps before the next request (3.5 character times, fixed
1.75 ms above 19200 baud): Modbus over Serial Line V1.02 §2.5.1.1. Utilisation = achieved
transactions per second / (1 / that time).
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
    write_config,
)

BITS_PER_CHAR = 10
"""8N1: start + 8 data + stop (MSL §2.5.1)."""


def transaction_s(baud: int, registers: int, turnaround_s: float) -> float:
    """Theoretical shortest time of one FC 03 read of ``registers`` registers, seconds."""
    char = BITS_PER_CHAR / baud
    t35 = 0.00175 if baud > 19200 else 3.5 * char
    return (8 + 5 + 2 * registers) * char + turnaround_s + t35


def bus(
    workdir: Path,
    seconds: float,
    baud: int,
    units: int = 4,
    points: int = 16,
    turnaround_s: float = 0.002,
) -> dict[str, Any]:
    """Run one bus at ``baud``; returns achieved and theoretical transactions/s and their ratio."""
    workdir.mkdir(parents=True, exist_ok=True)
    link = str(workdir / "ttyBENCH1")
    unit_ids = [11 + k for k in range(units)]
    spec = {
        "rtu": [{"link": link, "baudrate": baud, "turnaround_s": turnaround_s, "units": unit_ids}],
        "registers": 2 * points,
    }
    synth = SynthServer(workdir, spec).start()
    try:
        with broker(workdir) as mq:
            devs = [
                rtu_device(f"u{u}", link, baud, u, float_points(f"u{u}", points), 0.001)
                for u in unit_ids
            ]
            cfg = write_config(workdir, devs, mq.port, f"bench-rtu-{baud}")
            agent = BenchAgent(workdir, cfg).start()
            try:
                agent.wait_status(lambda s: s.get("polls", 0) > 2, 30, "RTU polls")
                time.sleep(1.0)
                w = agent.measure(seconds)
            finally:
                agent.stop()
    finally:
        synth.stop()
    dt = w.end["t"] - w.start["t"]
    good_polls = w.delta("polls") - w.delta("polls_failed")
    achieved = good_polls * units / dt
    limit = 1.0 / transaction_s(baud, 2 * points, turnaround_s)
    return {
        f"rtu_{baud}_transactions_per_s": round(achieved, 2),
        f"rtu_{baud}_limit_per_s": round(limit, 2),
        f"rtu_{baud}_utilisation": round(achieved / limit, 3),
        f"rtu_{baud}_failed_polls": int(w.delta("polls_failed")),
        f"rtu_{baud}_load_avg": round(load_average(), 2),
    }
