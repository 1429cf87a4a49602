"""Soak test of the field-hardened drivers (not run by pytest).

    python -m tests.soak_faults --minutes 30 [--report-s 60]

Starts the simulator's real Modbus servers -- one RS-485 bus on a pty with three units, two
Modbus TCP devices on loopback (one of them single-client, polled in per-poll mode, behind a
"gateway" that never echoes transaction ids) -- and the OPC UA analyser server, and polls them
with the drivers every 0.5 s while a scripted fault scenario runs in a 120 s cycle:

* RTU unit 1: 2 % CRC corruption all the time, late replies for 10 s per cycle;
* RTU unit 2: fragmented replies (gap 20 ms) and line noise before replies;
* RTU unit 3: off the bus 30 s per cycle (must go offline and come back);
* TCP cabinet: connection resets (5 %) for 30 s, exception 2 on one register (its point is
  BAD by design: the cabinet's expected GOOD share is 14/15), delays;
* TCP meter (single client, per-poll, lenient tid): wrong transaction id always;
* OPC UA: restarted once per cycle, its address space loading 3 s late; half of its points by
  subscription, half polled.

Every ``--report-s`` seconds it prints, per device, the share of GOOD readings in the interval
and overall, then process CPU %, RSS and the number of asyncio tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter

import psutil

from agent.core.model import Backoff, ConnectError, ConnectionLost, Quality
from drivers import create
from drivers.specs import ModbusRtuConnection, ModbusTcpConnection, OpcUaConnection, OpcUaPoint
from hil_sim.modbus import Faults, ModbusRtuServer, ModbusTcpServer, RequestCounters
from tests.drivers.conftest import make_bank, typed_points

CYCLE_S = 120.0
POLL_S = 0.5


class Tally:
    """GOOD / total readings per device, for the interval and overall."""

    def __init__(self) -> None:
        self.good: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.good_all: Counter[str] = Counter()
        self.total_all: Counter[str] = Counter()

    def add(self, device: str, readings) -> None:
        n, g = len(readings), sum(r.quality is Quality.GOOD for r in readings)
        self.good[device] += g
        self.total[device] += n
        self.good_all[device] += g
        self.total_all[device] += n

    def line(self) -> str:
        parts = []
        for d in sorted(self.total_all):
            now = self.good[d] / self.total[d] if self.total[d] else float("nan")
            overall = self.good_all[d] / self.total_all[d]
            parts.append(f"{d}={now:.3f}/{overall:.3f}")
        self.good.clear()
        self.total.clear()
        return " ".join(parts)


async def poll_forever(spec, groups, tally: Tally, stop: asyncio.Event) -> None:
    """Connect with backoff and read every group every POLL_S; count GOOD readings per device."""
    drv = create(spec)
    plans = [(dev, drv.plan(points)) for dev, points in groups]
    backoff = Backoff(initial_s=0.5, cap_s=5.0)
    connected = False
    next_t = time.monotonic()
    try:
        while not stop.is_set():
            next_t += POLL_S
            if not connected:
                try:
                    await drv.connect()
                    connected = True
                    backoff.reset()
                except ConnectError:
                    for dev, plan in plans:
                        tally.add(dev, [_Bad()] * len(plan.points))
                    await asyncio.sleep(backoff.next())
                    next_t = time.monotonic()
                    continue
            for dev, plan in plans:
                try:
                    tally.add(dev, await drv.read(plan))
                except ConnectionLost:
                    connected = False
                    await drv.close()
                    tally.add(dev, [_Bad()] * len(plan.points))
            delay = next_t - time.monotonic()
            if delay < 0:
                next_t = time.monotonic()  # overrun: skip, never queue ticks
            await asyncio.sleep(max(0.0, delay))
    finally:
        await drv.close()
        print(f"# {spec.name} counters: {drv.counters()}", flush=True)


class _Bad:
    quality = Quality.COMM_FAIL


async def scenario(
    rtu_faults: Faults, tcp_faults: Faults, meter_faults: Faults, opcua, stop: asyncio.Event
) -> None:
    """Scripted faults, repeating every CYCLE_S seconds."""
    t0 = time.monotonic()
    u1, u2, u3 = rtu_faults.unit(1), rtu_faults.unit(2), rtu_faults.unit(3)
    u1.corrupt_crc = 0.02
    u2.fragment_gap_s = 0.02
    u2.garbage_before = b"\x00\xff\x13"
    cab = tcp_faults.unit(1)
    cab.exceptions[("holding_register", 4)] = 2  # one unreadable register inside a block
    meter = meter_faults.unit(2)
    meter.wrong_tid = True
    restarted_in_cycle = -1
    while not stop.is_set():
        t = (time.monotonic() - t0) % CYCLE_S
        cycle = int((time.monotonic() - t0) // CYCLE_S)
        u1.late_reply_s = 0.5 if 10 <= t < 20 else 0.0
        u3.silent = 40 <= t < 70
        cab.reset = 0.05 if 60 <= t < 90 else 0.0
        cab.delay_s = 0.05 if 90 <= t < 100 else 0.0
        if opcua is not None and t >= 100 and restarted_in_cycle != cycle:
            restarted_in_cycle = cycle
            await opcua.restart(down_s=2.0, load_delay_s=3.0)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


async def main(minutes: float, report_s: float) -> None:
    import socket

    from hil_sim.devices.opcua_server import NAMESPACE_URI, UA_POINTS, OpcUaFacade
    from hil_sim.plant import Plant

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        ua_port = sock.getsockname()[1]
    proc = psutil.Process()
    proc.cpu_percent()
    stop = asyncio.Event()
    tmp = tempfile.mkdtemp(prefix="soak-")
    link = os.path.join(tmp, "ttyRS485")
    rtu_faults, tcp_faults, counters = Faults(seed=1), Faults(seed=2), RequestCounters()
    meter_faults = Faults(seed=3)
    meter_faults.single_client = True
    rtu = ModbusRtuServer(
        link, {u: make_bank(u) for u in (1, 2, 3)}, rtu_faults, counters, 19200, "N"
    )
    tcp = ModbusTcpServer("127.0.0.1", 0, {1: make_bank(1)}, tcp_faults, counters)
    meter_tcp = ModbusTcpServer("127.0.0.1", 0, {2: make_bank(2)}, meter_faults, counters)
    opcua = OpcUaFacade(Plant(), "127.0.0.1", ua_port)
    await rtu.start()
    await tcp.start()
    await meter_tcp.start()
    await opcua.start()
    rtu_spec = ModbusRtuConnection("rtu-bus", link, 19200, "N", timeout_s=0.3, guard_s=0.05)
    cab_spec = ModbusTcpConnection("cabinet", "127.0.0.1", tcp.port, 0.5, 1.0)
    # the meter accepts one client: per-poll sockets; its gateway never echoes transaction ids
    meter_spec = ModbusTcpConnection(
        "meter", "127.0.0.1", meter_tcp.port, 0.5, 1.0, connection_mode="per-poll", lenient_tid=True
    )
    ua_spec = OpcUaConnection(
        "analyser", opcua.endpoint, timeout_s=1.0, connect_timeout_s=2.0, publish_interval_s=0.25
    )
    ua_points = [  # every other point by subscription, the rest polled
        OpcUaPoint(
            p.name,
            "analyser",
            f"ns=2;s={p.node}",
            namespace_uri=NAMESPACE_URI,
            mode="subscribe" if i % 2 else "poll",
        )
        for i, p in enumerate(UA_POINTS)
    ]
    tally = Tally()
    tasks = [
        asyncio.create_task(
            poll_forever(rtu_spec, [(f"rtu{u}", typed_points(u)) for u in (1, 2, 3)], tally, stop)
        ),
        asyncio.create_task(poll_forever(cab_spec, [("cabinet", typed_points(1))], tally, stop)),
        asyncio.create_task(poll_forever(meter_spec, [("meter", typed_points(2))], tally, stop)),
        asyncio.create_task(poll_forever(ua_spec, [("analyser", ua_points)], tally, stop)),
        asyncio.create_task(scenario(rtu_faults, tcp_faults, meter_faults, opcua, stop)),
    ]
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < minutes * 60:
            await asyncio.sleep(min(report_s, max(0.1, minutes * 60 - (time.monotonic() - t0))))
            print(
                f"t={time.monotonic() - t0:7.0f}s good(interval/overall): {tally.line()} | "
                f"cpu={proc.cpu_percent():.1f}% rss={proc.memory_info().rss / 2**20:.1f}MiB "
                f"tasks={len(asyncio.all_tasks())} fds={proc.num_fds()}",
                flush=True,
            )
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await opcua.stop()
        await tcp.stop()
        await meter_tcp.stop()
        await rtu.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--report-s", type=float, default=60.0)
    args = ap.parse_args()
    asyncio.run(main(args.minutes, args.report_s))
