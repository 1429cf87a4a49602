"""Fleet mode: N simulated pump rooms in one process, to load a central broker with N agents.

:class:`Fleet` runs the rooms of :mod:`hil_sim.fleet_rooms` (plants and device servers only: no
control port, no truth file, no scenario) on one asyncio loop and writes one agent config per
room (:mod:`hil_sim.fleet_config`). One loop ticks every plant (monotonic deadlines; a late tick
is counted and skipped, never queued) and yields to the servers between groups of rooms, so a
long tick never holds a Modbus request for the whole tick.

Ports: room *i* (1-based) serves Modbus TCP on ``base_port + i − 1`` and, with OPC UA on,
``base_port + 1000 + i − 1``; its agent's status page is ``status_base_port + i − 1``. One port
per room rather than one port with distinct unit ids: each room keeps the unit ids of the
example config (1–4, and 11–13, 21–22 behind its gateway: nine per room, so one port would stop
at 27 rooms of the 247 unit ids, Modbus Application Protocol V1.1b3 §4.4), a room's agent config
differs from the example only by its addresses, and, as on site, one room's connection faults
or a slow client never share a socket with another room's.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hil_sim.fleet_config import write_fleet_configs
from hil_sim.fleet_rooms import FleetRoom, room_specs

OPCUA_OFFSET = 1000
"""Room *i*'s OPC UA port is ``base_port + OPCUA_OFFSET + i − 1``."""
YIELD_EVERY = 4
"""Rooms stepped between two yields to the servers."""
FILES_PER_ROOM = 4
"""File descriptors a room needs: its listening socket, an agent's connection, a spare (and a
pty pair with ``--rtu``)."""


@dataclass
class FleetOptions:
    """Options of a fleet run (the CLI's flags).

    Attributes:
        rooms: number of rooms, ≥ 1.
        seed: seed of the room parameters and plants.
        base_port: first Modbus TCP port; 0: free ports chosen by the system (no OPC UA then).
        host: listen address (loopback).
        rtu_dir: serve each room's RS-485 units on a pty ``rtu_dir/room-NNN/ttyRTU0`` (None: on
            the room's TCP port, behind its gateway).
        opcua: run one OPC UA server per room.
        out: folder for the agent configs and ``fleet.json`` (None: write none).
        site_prefix: sites are ``<prefix>-001`` …
        broker: ``uplink.broker`` of the written configs.
        status_base_port: first agent status page port; None: status pages off.
        step_s: plant tick, s of wall time.
        speed: plant time per wall time.
        start_time_of_day_s: plant time of day at start, s since midnight.
        summary_every_s: status line period, s.
    """

    rooms: int
    seed: int = 0
    base_port: int = 16000
    host: str = "127.0.0.1"
    rtu_dir: Path | None = None
    opcua: bool = False
    out: Path | None = None
    site_prefix: str = "fleet"
    broker: str = "mqtt://127.0.0.1:1883"
    status_base_port: int | None = 18080
    step_s: float = 0.1
    speed: float = 1.0
    start_time_of_day_s: float = 10 * 3600.0
    summary_every_s: float = 5.0


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """One status line's figures: rooms up, Modbus requests per second (all rooms), CPU of the
    fleet process as % of one core, late plant ticks in the window and since start."""

    rooms_up: int
    rooms: int
    requests_per_s: float
    cpu_pct: float
    late_ticks: int
    late_ticks_total: int

    def line(self) -> str:
        """e.g. ``fleet: 16/16 rooms up, 310.2 req/s, cpu 21 % of a core, 0 late ticks``."""
        return (
            f"fleet: {self.rooms_up}/{self.rooms} rooms up, {self.requests_per_s:.1f} req/s, "
            f"cpu {self.cpu_pct:.0f} % of a core, {self.late_ticks} late ticks "
            f"({self.late_ticks_total} in all)"
        )


class Fleet:
    """See the module docstring. ``await start()``, ``await run()`` until
    :meth:`request_stop`, ``await stop()``.

    Args:
        options: the run's options. Raises ValueError on impossible ones (ports past 65535,
            OPC UA with free ports).
        announce: called with human lines (rooms ready, status lines).
    """

    def __init__(self, options: FleetOptions, announce: Callable[[str], None] = print) -> None:
        o = options
        specs = room_specs(o.rooms, o.seed)
        if o.base_port and o.base_port + OPCUA_OFFSET * o.opcua + o.rooms - 1 > 65535:
            raise ValueError(f"--base-port {o.base_port} leaves no port for room {o.rooms}")
        if o.opcua and not o.base_port:
            raise ValueError("OPC UA needs --base-port (its endpoint names its port)")
        if o.opcua and o.rooms > OPCUA_OFFSET:
            raise ValueError(f"at most {OPCUA_OFFSET} rooms with OPC UA")
        self.options = o
        self.announce = announce
        self.rooms = [
            FleetRoom(
                spec,
                o.host,
                o.base_port + spec.index - 1 if o.base_port else 0,
                o.start_time_of_day_s,
                rtu_link=(
                    str(o.rtu_dir / f"room-{spec.index:03d}" / "ttyRTU0") if o.rtu_dir else None
                ),
                opcua_port=o.base_port + OPCUA_OFFSET + spec.index - 1 if o.opcua else None,
            )
            for spec in specs
        ]
        self.manifest: Path | None = None
        self.late_ticks = 0
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Start every room's servers, then write the configs. Raises OSError (naming the room)
        when a port or link cannot be taken, after stopping the rooms already up."""
        try:
            for room in self.rooms:
                await room.start()
            o = self.options
            if o.out is not None:
                self.manifest = write_fleet_configs(
                    o.out,
                    self.rooms,
                    site_prefix=o.site_prefix,
                    broker=o.broker,
                    status_base_port=o.status_base_port,
                )
        except BaseException:
            await self.stop()
            raise
        first, last = self.rooms[0], self.rooms[-1]
        self.announce(
            f"fleet ready: {len(self.rooms)} rooms, Modbus TCP {first.host}:{first.tcp_port}"
            + (f"..{last.tcp_port}" if last is not first else "")
            + (", RTU on ptys" if self.options.rtu_dir else ", RS-485 units behind each gateway")
            + (", OPC UA on" if self.options.opcua else ", no OPC UA")
        )
        if self.manifest is not None:
            self.announce(f"agent configs written: {self.manifest.parent}/room-*/agent.yaml")

    def request_stop(self) -> None:
        """Make :meth:`run` return (safe from a signal handler)."""
        self._stop.set()

    def requests_total(self) -> int:
        """Modbus requests served by every room since start."""
        return sum(room.counters.total() for room in self.rooms)

    async def run(self) -> None:
        """Tick every plant every ``step_s`` × ``speed`` and print a status line every
        ``summary_every_s`` until :meth:`request_stop`."""
        loop = asyncio.get_running_loop()
        o = self.options
        next_tick = loop.time()
        window_start, window_late = loop.time(), self.late_ticks
        cpu0, requests0 = time.process_time(), self.requests_total()
        while not self._stop.is_set():
            next_tick += o.step_s
            now = loop.time()
            if next_tick < now:  # overrun: skip the missed ticks, never queue them
                self.late_ticks += 1
                next_tick = now + o.step_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - now)):
                    await self._stop.wait()
            if self._stop.is_set():
                break
            await self._tick(o.step_s * o.speed)
            now = loop.time()
            if now - window_start >= o.summary_every_s:
                cpu1, requests1 = time.process_time(), self.requests_total()
                status = FleetStatus(
                    rooms_up=sum(room.up for room in self.rooms),
                    rooms=len(self.rooms),
                    requests_per_s=(requests1 - requests0) / (now - window_start),
                    cpu_pct=100.0 * (cpu1 - cpu0) / (now - window_start),
                    late_ticks=self.late_ticks - window_late,
                    late_ticks_total=self.late_ticks,
                )
                self.announce(status.line())
                window_start, window_late = now, self.late_ticks
                cpu0, requests0 = cpu1, requests1

    async def _tick(self, dt_s: float) -> None:
        step = self.options.step_s
        for k, room in enumerate(self.rooms):
            room.advance(dt_s, step)
            if k % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        for room in self.rooms:
            if room.opcua is not None:
                await room.opcua.update()

    async def stop(self) -> None:
        """Stop every room (idempotent)."""
        for room in self.rooms:
            await room.stop()


def _enough_files(needed: int) -> None:
    """Raise the soft limit of open files to ``needed`` (up to the hard limit, as any process
    may). Raises ValueError when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed or soft == resource.RLIM_INFINITY:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ValueError(f"{needed} open files needed, the hard limit is {hard} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def serve(options: FleetOptions, announce: Callable[[str], None] = print) -> None:
    """Run a fleet until SIGTERM or SIGINT (Ctrl-C), then stop every room cleanly.

    Raises ValueError on impossible options, OSError when a room cannot start."""
    fleet = Fleet(options, announce)
    _enough_files(options.rooms * FILES_PER_ROOM + 64)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, fleet.request_stop)
    try:
        await fleet.start()
        await fleet.run()
    finally:
        await fleet.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        announce(f"hil-sim fleet stopped ({fleet.requests_total()} Modbus requests served)")
