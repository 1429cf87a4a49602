"""``ModbusDriver``: the :class:`~drivers.base.Driver` for Modbus TCP and Modbus RTU.

Reading a plan (:mod:`drivers.modbus.reader`)
----------------------------------------------
Each coalesced :class:`~drivers.modbus.plan.ReadRequest` is sent in turn (one at a time per
connection, see :mod:`drivers.modbus.link`). Outcomes:

* answered → every member decoded (:mod:`drivers.modbus.codec`);
* Modbus exception on a multi-point request → the request is split and its points are read one by
  one, so only the really unreadable points get BAD_VALUE, reason ``modbus:exception:<code>``.
  What that teaches is remembered (:mod:`drivers.modbus.learned`): later reads plan around those
  points and report the remembered reason without asking the device again. Each learned item is
  re-probed on its own, ``reprobe_s`` after it was learned, at most
  :data:`~drivers.modbus.learned.REPROBE_PER_READ` items (one request each) per read; everything
  learned is forgotten on every (re)connect;
* exception 0x0A / 0x0B (gateway path unavailable / gateway target failed to respond,
  :data:`~drivers.modbus.health.GATEWAY_EXCEPTIONS`) → the UNIT is unreachable behind its gateway:
  COMM_FAIL with reason ``modbus:exception:<code>`` for its points of this read, its other
  requests in the read skipped, nothing learned, never split; after repeated failures the unit
  is offline (below);
* timeout → COMM_FAIL, reason ``timeout``, for that unit id's points of this read only; its other
  requests in this read are skipped (on a shared RS-485 bus or behind a TCP gateway a dead unit
  would otherwise cost one timeout per request); other unit ids keep being read;
* a garbled answer (late reply, wrong length) → COMM_FAIL, reason ``garbled``, for that request;
* exception 05/06 (acknowledge / device busy, :data:`TRANSIENT_EXCEPTIONS`) → COMM_FAIL with reason
  ``modbus:exception:<code>`` for that request, nothing learned.

Per unit id a :class:`~drivers.modbus.health.UnitHealth` counts polls, successes, timeouts, CRC
errors and exceptions, and marks a unit offline after repeated reads without an answer (timeout,
or 0x0A/0x0B from its gateway): it is then probed slowly (one request every second read, and on
Modbus TCP every :data:`~drivers.modbus.health.PROBE_INTERVAL_S` at most; reason ``offline``
meanwhile), and a
probe is sent after every other unit's requests of the read, so a dead unit never delays the
readings of the live ones (see :mod:`drivers.modbus.health`). A frame with a bad CRC or a garbled
one is COMM_FAIL with reason ``crc`` / ``garbled`` (RTU resends a bad-CRC request once first).

Modbus TCP ``connection_mode``: ``persistent`` keeps one socket; ``per-poll`` opens the socket
at the start of each read or write and closes it at the end, so a device that accepts one TCP
client can also be reached by a technician's laptop between polls (the driver never holds more
than one socket to a device, and a read or write cancelled at any point, even while the socket
opens, releases its hold); ``per-request`` opens a socket for every single request (devices that
answer once per connection, see :mod:`drivers.modbus.link`).

``ConnectionLost`` is raised only when the transport is gone (TCP socket closed, serial port
vanished) and, on Modbus TCP, after :data:`TCP_MAX_CONSECUTIVE_TIMEOUTS` consecutive timeouts (a
socket that accepts but never answers; a TCP gateway's RS-485 side may still answer other unit ids,
so one unit's silence is not enough — three in a row across reads with no answer in between is).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agent.core.model import ConnectError, ConnectionLost, Reading, Value, WriteError
from drivers.base import Driver, ReadPlan
from drivers.modbus import codec
from drivers.modbus.health import PROBE_INTERVAL_S, UnitHealth
from drivers.modbus.learned import REPROBE_S, LearnedMap
from drivers.modbus.link import ModbusExceptionResponse, ModbusGarbled, ModbusLink, ModbusTimeout
from drivers.modbus.plan import ModbusReadPlan
from drivers.modbus.reader import TCP_MAX_CONSECUTIVE_TIMEOUTS, TRANSIENT_EXCEPTIONS, PlanReader
from drivers.specs import DataType, ModbusPoint, ModbusRtuConnection, ModbusTcpConnection, Table

__all__ = ["REPROBE_S", "TCP_MAX_CONSECUTIVE_TIMEOUTS", "TRANSIENT_EXCEPTIONS", "ModbusDriver"]


class ModbusDriver(Driver):
    """Driver for one Modbus TCP connection or one RS-485 port (several unit ids).

    Args:
        spec: the connection.
        reprobe_s: how long a learned-unreadable item is skipped before being tried again, s.
        probe_interval_s: least time between two probes of an offline unit, s; default
            :data:`~drivers.modbus.health.PROBE_INTERVAL_S` on Modbus TCP (a dead unit behind a
            gateway), 0 on RTU (probed every ``PROBE_EVERY`` reads, as before: the control loop
            wants a drive back quickly, and a bus's timeouts are short).
    """

    def __init__(
        self,
        spec: ModbusTcpConnection | ModbusRtuConnection,
        *,
        reprobe_s: float = REPROBE_S,
        probe_interval_s: float | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self._link = ModbusLink(spec)
        self._limits = dict(spec.limits)
        self._learned = LearnedMap(reprobe_s)
        self._units: dict[int, UnitHealth] = {}
        if probe_interval_s is None:
            tcp = isinstance(spec, ModbusTcpConnection)
            probe_interval_s = PROBE_INTERVAL_S if tcp else 0.0
        self._reader = PlanReader(spec, self._link, self._unit, self._learned, probe_interval_s)
        self._users = 0  # per-poll: reads/writes currently holding the socket
        self._open_lock = asyncio.Lock()
        mode = spec.connection_mode if isinstance(spec, ModbusTcpConnection) else "persistent"
        self._per_poll = mode == "per-poll"
        self._per_request = mode == "per-request"

    @property
    def reprobe_s(self) -> float:
        """Seconds a learned-unreadable item is skipped before it is re-probed."""
        return self._learned.reprobe_s

    @reprobe_s.setter
    def reprobe_s(self, value: float) -> None:
        self._learned.reprobe_s = value

    @property
    def probe_interval_s(self) -> float:
        """Least time between two probes of an offline unit, s."""
        return self._reader.probe_interval_s

    @probe_interval_s.setter
    def probe_interval_s(self, value: float) -> None:
        self._reader.probe_interval_s = value

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
        mode the socket opened here serves the first poll, which closes it; in per-request mode
        it only proves the device reachable and is closed at once.

        Raises:
            ConnectError: refused, port missing, or timed out.
        """
        await self._link.connect()
        if self._per_request:
            self._link.close()
        self._reader.reset()

    async def close(self) -> None:
        """Close the connection. Idempotent; never raises."""
        self._link.close()

    @contextlib.asynccontextmanager
    async def _socket(self) -> AsyncIterator[None]:
        """Hold the per-poll socket for one read or write (opening it if needed); the last
        holder out closes it. Every exit path releases the hold, cancellation included (a hold
        that leaked would pin the socket for good and lock a single-client device's other
        clients out). A no-op for persistent and per-request connections.

        Raises:
            ConnectionLost: the socket could not be opened.
        """
        if not self._per_poll:
            yield
            return
        self._users += 1  # a read and a write may overlap; the last one out closes
        try:
            async with self._open_lock:  # one socket: never two opens at once
                if not self._link.connected:
                    try:
                        await self._link.connect()
                    except ConnectError as exc:
                        raise ConnectionLost(str(exc)) from exc
            yield
        finally:
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
            "reconnects": 0 if self._per_poll or self._per_request else max(0, link.connects - 1),
            **link.health.snapshot(),
            "unreadable_points": len(self._learned.bad),
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
        if not plan.points:
            return []
        async with self._socket():
            return await self._reader.read(plan)

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
        if point.write_only and is_bit and point.table is not Table.COIL:
            # a bit of a register is written by read-modify-write, impossible without a read
            raise WriteError(f"{point.name}: a write-only register bit cannot be written", "range")
        regs: list[int] = []
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
        async with self._socket():
            await self._write(point, value, is_bit, regs)
        self._reader.answered()

    async def _write(self, point: ModbusPoint, value: Value, is_bit: bool, regs: list[int]) -> None:
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
            self._reader.timed_out()
            raise WriteError(f"{point.name}: {exc}", "timeout") from exc
        except ModbusExceptionResponse as exc:
            self._reader.answered()
            raise WriteError(f"{point.name}: {exc}", f"modbus:exception:{exc.code}") from exc
        except ModbusGarbled as exc:
            raise WriteError(f"{point.name}: {exc}", "garbled") from exc
