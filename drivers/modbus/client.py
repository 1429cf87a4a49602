"""``ModbusDriver``: the :class:`~drivers.base.Driver` for Modbus TCP and Modbus RTU.

Reading a plan
--------------
Each coalesced :class:`~drivers.modbus.plan.ReadRequest` is sent in turn (one at a time per
connection, see :mod:`drivers.modbus.link`). Outcomes:

* answered → every member decoded (:mod:`drivers.modbus.codec`);
* Modbus exception on a multi-point request → the request is split and its points are read one by
  one, so only the really unreadable points get BAD_VALUE, reason ``modbus:exception:<code>``.
  Those points are remembered: later reads plan around them (they are skipped, and no request
  bridges their addresses) and report the remembered reason without asking the device again.
  What was learned is forgotten every :attr:`ModbusDriver.reprobe_s` seconds and on every
  (re)connect, so a point that comes back is read again;
* timeout → COMM_FAIL, reason ``timeout``, for that unit id's points of this read only; its other
  requests in this read are skipped (on a shared RS-485 bus a dead unit would otherwise cost one
  timeout per request); other unit ids keep being read;
* a garbled answer (late reply, wrong length) → COMM_FAIL, reason ``garbled``, for that request;
* exception 05/06 (acknowledge / device busy, :data:`TRANSIENT_EXCEPTIONS`) → COMM_FAIL with reason
  ``modbus:exception:<code>`` for that request, nothing learned.

Per unit id a :class:`~drivers.modbus.health.UnitHealth` counts polls, successes, timeouts, CRC
errors and exceptions, and marks a unit offline after repeated timeouts (probed at a lower rate,
reason ``offline`` meanwhile, see :mod:`drivers.modbus.health`); a frame with a bad CRC or a garbled
one is COMM_FAIL with reason ``crc`` / ``garbled`` (RTU resends a bad-CRC request once first).

Modbus TCP ``connection_mode: per-poll`` opens the socket at the start of each read or write and
closes it at the end, so a device that accepts one TCP client can also be reached by a
technician's laptop between polls; the driver never holds more than one socket to a device.

``ConnectionLost`` is raised only when the transport is gone (TCP socket closed, serial port
vanished) and, on Modbus TCP, after :data:`TCP_MAX_CONSECUTIVE_TIMEOUTS` consecutive timeouts (a
socket that accepts but never answers; a TCP gateway's RS-485 side may still answer other unit ids,
so one unit's silence is not enough — three in a row across reads with no answer in between is).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from agent.core.model import ConnectError, ConnectionLost, Quality, Reading, Value, WriteError
from drivers.base import Driver, ReadPlan
from drivers.modbus import codec
from drivers.modbus.health import UnitHealth
from drivers.modbus.link import (
    ModbusCrcError,
    ModbusExceptionResponse,
    ModbusGarbled,
    ModbusLink,
    ModbusTimeout,
)
from drivers.modbus.plan import Break, Member, ModbusReadPlan, ReadRequest, plan_requests
from drivers.specs import DataType, ModbusPoint, ModbusRtuConnection, ModbusTcpConnection, Table

TCP_MAX_CONSECUTIVE_TIMEOUTS = 3
"""N: consecutive timeouts (no answer of any kind in between) after which a Modbus TCP connection
is declared lost."""

TRANSIENT_EXCEPTIONS = frozenset({5, 6})
"""Exception codes that say "not now" rather than "not this address": 05 ACKNOWLEDGE and
06 SERVER DEVICE BUSY (Modbus Application Protocol V1.1b3 §7). They give COMM_FAIL readings with
reason ``modbus:exception:<code>`` and teach the planner nothing."""

REPROBE_S = 60.0
"""Seconds after which points learned to be unreadable are tried again."""


class ModbusDriver(Driver):
    """Driver for one Modbus TCP connection or one RS-485 port (several unit ids).

    Args:
        spec: the connection.
        reprobe_s: how long learned-unreadable points are skipped before being tried again.
    """

    def __init__(
        self, spec: ModbusTcpConnection | ModbusRtuConnection, *, reprobe_s: float = REPROBE_S
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.reprobe_s = reprobe_s
        self._link = ModbusLink(spec)
        self._limits = dict(spec.limits)
        self._bad: dict[str, str] = {}  # point name → reason
        self._breaks: set[Break] = set()
        self._learned_at: float | None = None
        self._version = 0
        self._cache: dict[int, tuple[int, ModbusReadPlan, tuple[ReadRequest, ...]]] = {}
        self._consecutive_timeouts = 0
        self._units: dict[int, UnitHealth] = {}
        self._users = 0  # per-poll: reads/writes currently holding the socket
        self._open_lock = asyncio.Lock()
        self._per_poll = (
            isinstance(spec, ModbusTcpConnection) and spec.connection_mode == "per-poll"
        )

    # --- life cycle -----------------------------------------------------------------------

    def plan(self, points: Sequence[Any]) -> ModbusReadPlan:
        """Plan ``points`` with this connection's limits (see :mod:`drivers.modbus.plan`).

        Raises:
            ValueError: a point is not a :class:`~drivers.specs.ModbusPoint`, or cannot be read.
        """
        plan = ModbusReadPlan(points, self._limits)
        for p in plan.points:
            self._unit(p.unit_id, p.device)
        return plan

    def _unit(self, unit_id: int, device: str = "") -> UnitHealth:
        h = self._units.get(unit_id)
        if h is None:
            rtu = isinstance(self.spec, ModbusRtuConnection)
            h = self._units[unit_id] = UnitHealth(unit_id, device, self.name, shared_bus=rtu)
        elif device and device not in h.device.split(","):
            h.device = f"{h.device},{device}" if h.device else device
        return h

    async def connect(self) -> None:
        """Open the TCP socket or serial port; forget learned-unreadable points. In per-poll
        mode the socket opened here serves the first poll, which closes it.

        Raises:
            ConnectError: refused, port missing, or timed out.
        """
        await self._link.connect()
        self._forget()
        self._consecutive_timeouts = 0

    async def close(self) -> None:
        """Close the connection. Idempotent; never raises."""
        self._link.close()

    async def _open_for_poll(self) -> None:
        if not self._per_poll:
            return
        self._users += 1  # a read and a write may overlap; the last one out closes
        async with self._open_lock:  # one socket: never two opens at once
            if not self._link.connected:
                try:
                    await self._link.connect()
                except ConnectError as exc:
                    self._users -= 1
                    raise ConnectionLost(str(exc)) from exc

    def _end_poll(self) -> None:
        if self._per_poll:
            self._users -= 1
            if self._users == 0:
                self._link.close()

    def counters(self) -> dict[str, Any]:
        """Health counters of the port (or TCP connection) and of each unit id.

        Port: ``requests``, ``responses``, ``timeouts``, ``crc_errors``, ``garbled``,
        ``exceptions`` (code → count), ``reconnects`` (opens after the first; per-poll sockets
        are not reconnects), ``last_error``, ``last_error_age_s``, ``last_ok_age_s`` (seconds
        ago, ``None`` if never), ``ok`` (the last answer is newer than the last error; see
        :class:`~agent.core.health.Health`), ``unreadable_points``, plus
        ``noise_bytes``/``echoes_seen`` (RTU) or ``tid_mismatches``/``sockets_opened`` (TCP).
        ``devices``: device name → the unit's :meth:`~drivers.modbus.health.UnitHealth.snapshot`
        (polls, successes, timeouts, crc_errors, garbled, exceptions, skipped, offline, and the
        same last_error, ages and ok for that unit). The port's
        ``crc_errors`` counts every frame with a bad CRC (the resend included); a device's counts
        the requests lost to CRC errors after the resend.
        """
        link = self._link
        return {
            "requests": link.requests,
            "responses": link.responses,
            "timeouts": link.timeouts,
            "crc_errors": link.crc_errors,
            "exceptions": dict(link.exceptions),
            "garbled": link.garbled,
            "reconnects": 0 if self._per_poll else max(0, link.connects - 1),
            **link.health.snapshot(),
            "unreadable_points": len(self._bad),
            **link.port_counters(),
            "devices": {h.device or f"unit{u}": h.snapshot() for u, h in self._units.items()},
        }

    # --- reading --------------------------------------------------------------------------

    async def read(self, plan: ReadPlan) -> list[Reading]:
        """Read every point of ``plan``; one reading per point, in plan order.

        Raises:
            ConnectionLost: the transport is gone, or (TCP) too many consecutive timeouts.
            ValueError: ``plan`` was not made by a Modbus driver.
        """
        if not isinstance(plan, ModbusReadPlan):
            raise ValueError("not a Modbus read plan")
        if self._learned_at is not None and time.monotonic() - self._learned_at >= self.reprobe_s:
            self._forget()
        await self._open_for_poll()
        try:
            return await self._read(plan)
        finally:
            self._end_poll()

    async def _read(self, plan: ModbusReadPlan) -> list[Reading]:
        points = plan.points
        out: list[Reading | None] = [None] * len(points)
        requests = self._requests(plan)
        skipped: set[int] = set()
        probing: set[int] = set()
        for unit_id in dict.fromkeys(r.unit_id for r in requests):
            health = self._unit(unit_id)
            was_offline = health.offline
            if not health.due():
                skipped.add(unit_id)
            elif was_offline:
                probing.add(unit_id)
        dead_units: set[int] = set()
        for req in requests:
            health = self._unit(req.unit_id)
            if req.unit_id in skipped:
                self._fill(out, points, req.members, Quality.COMM_FAIL, "offline")
                continue
            if req.unit_id in dead_units:
                self._fill(out, points, req.members, Quality.COMM_FAIL, "timeout")
                continue
            try:
                block = await self._link.read(req.unit_id, req.table, req.address, req.count)
            except ModbusTimeout as exc:
                health.timed_out(str(exc))
                self._timed_out()
                (skipped if req.unit_id in probing else dead_units).add(req.unit_id)
                reason = "offline" if req.unit_id in probing else "timeout"
                self._fill(out, points, req.members, Quality.COMM_FAIL, reason)
                continue
            except ModbusGarbled as exc:
                self._answered_badly(health, exc)
                reason = "crc" if isinstance(exc, ModbusCrcError) else "garbled"
                self._fill(out, points, req.members, Quality.COMM_FAIL, reason)
                continue
            except ModbusExceptionResponse as exc:
                self._consecutive_timeouts = 0
                health.exception(exc.code)
                probing.discard(req.unit_id)
                if exc.code in TRANSIENT_EXCEPTIONS:
                    reason = f"modbus:exception:{exc.code}"
                    self._fill(out, points, req.members, Quality.COMM_FAIL, reason)
                    continue
                if not await self._split(plan, req, exc.code, out):
                    dead_units.add(req.unit_id)
                continue
            self._consecutive_timeouts = 0
            health.answered()
            probing.discard(req.unit_id)
            for m in req.members:
                out[m.index] = codec.decode_point(points[m.index], block, m.offset)
        for i, p in enumerate(points):
            if out[i] is None:
                out[i] = Reading(p.name, None, Quality.BAD_VALUE, self._bad.get(p.name, "unread"))
        return [r for r in out if r is not None]

    def _answered_badly(self, health: UnitHealth, exc: ModbusGarbled) -> None:
        self._consecutive_timeouts = 0
        health.failed("crc_errors" if isinstance(exc, ModbusCrcError) else "garbled", str(exc))

    def _requests(self, plan: ModbusReadPlan) -> tuple[ReadRequest, ...]:
        """The plan's requests with learned-unreadable points skipped (cached per version)."""
        if not self._bad and not self._breaks:
            return plan.requests
        cached = self._cache.get(id(plan))
        if cached is not None and cached[0] == self._version and cached[1] is plan:
            return cached[2]
        skip = {i for i, p in enumerate(plan.points) if p.name in self._bad}
        reqs = plan_requests(plan.points, plan.limits, skip=skip, breaks=self._breaks)
        self._cache[id(plan)] = (self._version, plan, reqs)
        return reqs

    async def _split(
        self, plan: ModbusReadPlan, req: ReadRequest, code: int, out: list[Reading | None]
    ) -> bool:
        """Read the members of a request that got exception ``code`` one extent at a time.

        Returns False when the unit timed out meanwhile (its remaining points are COMM_FAIL).
        """
        points = plan.points
        reason = f"modbus:exception:{code}"
        extents: dict[tuple[int, int], list[Member]] = {}
        for m in req.members:
            p = points[m.index]
            extents.setdefault((p.address, p.width), []).append(m)
        if len(extents) == 1:
            self._learn_bad(req, [points[m.index] for m in req.members], reason)
            self._fill(out, points, req.members, Quality.BAD_VALUE, reason)
            return True
        any_bad = False
        for (address, width), members in extents.items():
            try:
                block = await self._link.read(req.unit_id, req.table, address, width)
            except ModbusTimeout as exc:
                self._unit(req.unit_id).timed_out(str(exc))
                self._timed_out()
                self._fill_rest(out, points, req.members, "timeout")
                return False
            except ModbusGarbled as exc:
                self._answered_badly(self._unit(req.unit_id), exc)
                reason = "crc" if isinstance(exc, ModbusCrcError) else "garbled"
                self._fill(out, points, members, Quality.COMM_FAIL, reason)
                continue
            except ModbusExceptionResponse as exc:
                self._unit(req.unit_id).exceptions[exc.code] += 1
                any_bad = True
                r = f"modbus:exception:{exc.code}"
                self._learn_bad(req, [points[m.index] for m in members], r)
                self._fill(out, points, members, Quality.BAD_VALUE, r)
                continue
            self._unit(req.unit_id).successes += 1
            for m in members:
                out[m.index] = codec.decode_point(points[m.index], block, 0)
        if not any_bad:
            self._learn_unbridgeable(req, points)
        return True

    def _learn_bad(self, req: ReadRequest, bad: list[ModbusPoint], reason: str) -> None:
        for p in bad:
            self._bad[p.name] = reason
            for b in range(p.address, p.address + p.width + 1):
                self._breaks.add((req.unit_id, req.table, b))
        self._changed()

    def _learn_unbridgeable(self, req: ReadRequest, points: Sequence[ModbusPoint]) -> None:
        """Every point read alone but not together: never bridge this block's holes again (or,
        without holes, never join its points)."""
        used: set[int] = set()
        for m in req.members:
            p = points[m.index]
            used.update(range(p.address, p.address + p.width))
        holes = [a for a in range(req.address, req.address + req.count) if a not in used]
        cuts = holes or [points[m.index].address for m in req.members[1:]]
        for a in cuts:
            self._breaks.update({(req.unit_id, req.table, a), (req.unit_id, req.table, a + 1)})
        self._changed()

    def _changed(self) -> None:
        if self._learned_at is None:
            self._learned_at = time.monotonic()
        self._version += 1

    def _forget(self) -> None:
        self._bad.clear()
        self._breaks.clear()
        self._cache.clear()
        self._version += 1
        self._learned_at = None

    def _timed_out(self) -> None:
        self._consecutive_timeouts += 1
        if (
            isinstance(self.spec, ModbusTcpConnection)
            and self._consecutive_timeouts >= TCP_MAX_CONSECUTIVE_TIMEOUTS
        ):
            n = self._consecutive_timeouts
            self._link.health.error(f"{n} consecutive timeouts")
            raise ConnectionLost(f"{self.name}: {n} consecutive timeouts")

    @staticmethod
    def _fill(
        out: list[Reading | None],
        points: Sequence[ModbusPoint],
        members: Sequence[Member],
        quality: Quality,
        reason: str,
    ) -> None:
        for m in members:
            out[m.index] = Reading(points[m.index].name, None, quality, reason)

    def _fill_rest(
        self,
        out: list[Reading | None],
        points: Sequence[ModbusPoint],
        members: Sequence[Member],
        reason: str,
    ) -> None:
        self._fill(
            out, points, [m for m in members if out[m.index] is None], Quality.COMM_FAIL, reason
        )

    # --- writing --------------------------------------------------------------------------

    async def write(self, point: Any, value: Value) -> None:
        """Write ``value`` (engineering units) to a coil (FC05) or holding register(s) (FC06 for
        one register, FC16 for several; a bit in a register by read-modify-write FC03 + FC06).

        Raises:
            WriteError: not writable (``not_writable``), read-only table (``read_only``), value
                does not fit or is outside valid_min/valid_max (``range``), exception response
                (``modbus:exception:<code>``), no answer (``timeout``), garbled answer.
            ConnectionLost: the transport is gone, or (TCP) too many consecutive timeouts.
        """
        if not isinstance(point, ModbusPoint):
            raise WriteError(f"not a Modbus point: {point!r}", "not_modbus")
        if not point.writable:
            raise WriteError(f"{point.name} is not writable", "not_writable")
        if point.table in (Table.DISCRETE_INPUT, Table.INPUT_REGISTER):
            raise WriteError(f"{point.name}: {point.table} is read-only", "read_only")
        is_bit = point.table is Table.COIL or point.dtype is DataType.BOOL
        if is_bit and (value is None or value not in (0, 1)):
            raise WriteError(f"{point.name}: not a bool: {value!r}", "range")
        if not is_bit:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise WriteError(f"{point.name}: not a number: {value!r}", "range")
            if (point.valid_min is not None and value < point.valid_min) or (
                point.valid_max is not None and value > point.valid_max
            ):
                raise WriteError(f"{point.name}: {value} outside the valid range", "range")
            try:
                regs = codec.encode_registers(point, value)
            except ValueError as exc:
                raise WriteError(str(exc), "range") from exc
        await self._open_for_poll()
        try:
            uid, addr = point.unit_id, point.address
            if point.table is Table.COIL:
                await self._link.write_coil(uid, addr, bool(value))
            elif is_bit:
                current = (await self._link.read(uid, point.table, addr, 1))[0]
                new = codec.encode_bit(point, int(current), bool(value))
                await self._link.write_register(uid, addr, new)
            elif len(regs) == 1:
                await self._link.write_register(uid, addr, regs[0])
            else:
                await self._link.write_registers(uid, addr, regs)
        except ModbusTimeout as exc:
            self._timed_out()
            raise WriteError(f"{point.name}: {exc}", "timeout") from exc
        except ModbusExceptionResponse as exc:
            self._consecutive_timeouts = 0
            raise WriteError(f"{point.name}: {exc}", f"modbus:exception:{exc.code}") from exc
        except ModbusGarbled as exc:
            raise WriteError(f"{point.name}: {exc}", "garbled") from exc
        finally:
            self._end_poll()
        self._consecutive_timeouts = 0
