"""The agents' Modbus polling of every fleet room, without the agents: ``python -m
tests.benchmarks.fleet_loadgen --manifest fleet.json --seconds S --out RESULT.json``.

The requests are the agent's own: room 1's written config is loaded and planned with the
agent's config loader and read planner (``agent.config`` → ``drivers.modbus.plan``), so every
room gets, every poll interval, exactly the reads one agent would send it (the configs differ
only by their addresses). Each room has one TCP connection (all its units share the room's
port, as the agent's one connection does) and, like the agent's poller, sends one request at a
time and waits for its answer; cycles start every poll interval at a random phase per room, a
cycle that overruns starts the next one at once (the agent skips a tick instead: no easier).

Prints nothing; writes a JSON result: requests sent and answered in the measured window,
latency percentiles (ms), answers within :data:`ON_TIME_S`, timeouts (no answer within the
agent's ``timeout_s`` of 1 s, config/example.yaml), exception answers, this process's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.config.loader import load_config
from agent.config.plan import connections
from drivers.modbus.plan import ModbusReadPlan
from drivers.specs import ModbusPoint, ModbusTcpConnection, Table

ON_TIME_S = 0.1
"""An answer within this of its request is on time (a tenth of the 1 s poll interval)."""
TIMEOUT_S = 1.0
"""No answer within this is a timeout (the example config's ``timeout_s``)."""
FC = {
    Table.COIL: 1,
    Table.DISCRETE_INPUT: 2,
    Table.HOLDING_REGISTER: 3,
    Table.INPUT_REGISTER: 4,
}
"""Read function codes per table (Modbus Application Protocol V1.1b3 §6.1–6.4)."""
MBAP = struct.Struct(">HHHB")


def agent_requests(config: Path) -> list[tuple[float, list[tuple[int, int, int, int]]]]:
    """Per poll interval (s), the reads the agent sends each cycle: ``(unit, fc, address,
    count)``. Raises ConfigError on a bad config."""
    site = load_config(config)
    out = []
    for plan in connections(site.devices):
        if not isinstance(plan.spec, ModbusTcpConnection):
            continue
        for interval, specs in plan.groups.items():
            points = [p for p in specs if isinstance(p, ModbusPoint)]
            reads = ModbusReadPlan(points, dict(plan.spec.limits)).requests
            out.append((interval, [(r.unit_id, FC[r.table], r.address, r.count) for r in reads]))
    return out


@dataclass
class Stats:
    """What the generator saw in the measured window."""

    sent: int = 0
    answered: int = 0
    on_time: int = 0
    timeouts: int = 0
    exceptions: int = 0
    reconnects: int = 0
    latencies_ms: list[float] = field(default_factory=list)


async def _room(
    port: int,
    cycles: list[tuple[float, list[bytes]]],
    stats: Stats,
    measuring: asyncio.Event,
    rng: random.Random,
) -> None:
    """Poll one room forever (cancelled at the end)."""
    interval, frames = cycles[0]  # the example polls everything at 1 s: one group
    await asyncio.sleep(rng.uniform(0.0, interval))
    tid = 0
    next_cycle = time.monotonic()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while True:
        if writer is None:
            async with asyncio.timeout(TIMEOUT_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert reader is not None
        counting = measuring.is_set()
        try:
            for frame in frames:
                tid = (tid + 1) & 0xFFFF
                sent_at = time.monotonic()
                writer.write(MBAP.pack(tid, 0, len(frame), frame[0]) + frame[1:])  # unit + PDU
                stats.sent += counting
                try:
                    async with asyncio.timeout(TIMEOUT_S):
                        head = await reader.readexactly(MBAP.size)
                        pdu = await reader.readexactly(MBAP.unpack(head)[2] - 1)
                except TimeoutError:
                    stats.timeouts += counting
                    raise
                if counting:
                    latency = time.monotonic() - sent_at
                    stats.answered += 1
                    stats.on_time += latency <= ON_TIME_S
                    stats.exceptions += bool(pdu[0] & 0x80)
                    stats.latencies_ms.append(latency * 1000.0)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            stats.reconnects += 1
            writer.close()
            reader = writer = None
        next_cycle += interval
        await asyncio.sleep(max(0.0, next_cycle - time.monotonic()))


def _frames(reads: list[tuple[int, int, int, int]]) -> list[bytes]:
    """Unit id byte + PDU per read (the MBAP header is added per send)."""
    return [bytes([u]) + struct.pack(">BHH", fc, a, c) for u, fc, a, c in reads]


async def generate(manifest: Path, warmup_s: float, seconds: float) -> dict[str, float]:
    """Poll every room of ``manifest`` for ``warmup_s`` + ``seconds``; figures of the last
    ``seconds``."""
    rooms = json.loads(manifest.read_text())["rooms"]  # noqa: ASYNC240 (before the polling)
    cycles = [(i, _frames(r)) for i, r in agent_requests(Path(rooms[0]["config"]))]
    stats, measuring, rng = Stats(), asyncio.Event(), random.Random(1)
    ports = [int(r["modbus_tcp"].rsplit(":", 1)[1]) for r in rooms]
    tasks = [asyncio.create_task(_room(p, cycles, stats, measuring, rng)) for p in ports]
    await asyncio.sleep(warmup_s)
    measuring.set()
    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    measuring.clear()
    cpu1, t1 = time.process_time(), time.monotonic()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, OSError, TimeoutError):
            await task
    lat = sorted(stats.latencies_ms) or [float("nan")]
    return {
        "rooms": len(rooms),
        "reads_per_room_cycle": len(cycles[0][1]),
        "seconds": t1 - t0,
        "sent_per_s": stats.sent / (t1 - t0),
        "answered_per_s": stats.answered / (t1 - t0),
        "on_time_frac": stats.on_time / stats.sent if stats.sent else 0.0,
        "timeouts": stats.timeouts,
        "exceptions": stats.exceptions,
        "reconnects": stats.reconnects,
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "max_ms": lat[-1],
        "loadgen_cpu_pct": 100.0 * (cpu1 - cpu0) / (t1 - t0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    result = asyncio.run(generate(a.manifest, a.warmup_s, a.seconds))
    a.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
