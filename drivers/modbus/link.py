"""One Modbus connection (TCP socket or RS-485 port) over our own master transports, with
counters and one-request-at-a-time.

Requests are serialised by an :class:`asyncio.Lock`: never more than one outstanding request per
connection (an RS-485 bus is half-duplex with a single master, Modbus over Serial Line V1.02 §2.1;
on TCP it keeps a device's socket strictly request/response). The transports are
:class:`~drivers.modbus.rtu_port.RtuPort` and :class:`~drivers.modbus.tcp_port.TcpPort`; no
library exception leaves this module: failures are :class:`~agent.core.model.ConnectionLost`,
:class:`ModbusTimeout`, :class:`ModbusExceptionResponse` or :class:`ModbusGarbled`.

On RTU a frame with a bad CRC is retried once (line noise is usually a one-off); after every
failed RTU transaction the port waits its guard time and flushes (see ``rtu_port``).

Modbus TCP ``connection_mode: per-request``: every transaction opens its own socket and closes
it after the answer (or failure), inside the same lock, for devices that answer only the first
request of a connection. A socket that cannot be opened is :class:`ConnectionLost` for that
request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from agent.core.health import Health
from agent.core.model import ConnectError, ConnectionLost
from drivers.modbus import frames
from drivers.modbus.errors import (
    ModbusCrcError,
    ModbusExceptionResponse,
    ModbusGarbled,
    ModbusTimeout,
)
from drivers.modbus.rtu_port import RTU_OPEN_TIMEOUT_S, RtuPort, rtu_frame_gap_s
from drivers.modbus.tcp_port import TcpPort
from drivers.specs import ModbusRtuConnection, ModbusTcpConnection, Table

__all__ = [
    "RTU_OPEN_TIMEOUT_S",
    "ModbusCrcError",
    "ModbusExceptionResponse",
    "ModbusGarbled",
    "ModbusLink",
    "ModbusTimeout",
    "rtu_frame_gap_s",
]

log = logging.getLogger(__name__)

CRC_RETRIES = 1
"""Resends of an RTU request whose reply had a bad CRC."""


class ModbusLink:
    """One connection's transport plus counters.

    Attributes:
        spec: the connection spec.
        requests, responses, timeouts, garbled, crc_errors: transaction counters.
        exceptions: exception code → count.
        connects: successful opens.
        health: last error and last answer, with their times (:class:`~agent.core.health.Health`).
    """

    def __init__(self, spec: ModbusTcpConnection | ModbusRtuConnection) -> None:
        self.spec = spec
        self.port: RtuPort | TcpPort = (
            RtuPort(spec) if isinstance(spec, ModbusRtuConnection) else TcpPort(spec)
        )
        self._lock = asyncio.Lock()
        self._per_request = (
            isinstance(spec, ModbusTcpConnection) and spec.connection_mode == "per-request"
        )
        self.requests = 0
        self.responses = 0
        self.timeouts = 0
        self.garbled = 0
        self.crc_errors = 0
        self.exceptions: Counter[int] = Counter()
        self.connects = 0
        self.health = Health()

    @property
    def last_error(self) -> str | None:
        """Text of the last failure (recorded with its time in :attr:`health`)."""
        return self.health.last_error

    @property
    def connected(self) -> bool:
        """Whether the transport is open."""
        return self.port.is_open

    async def connect(self) -> None:
        """Open the transport (closing any old one first).

        Raises:
            ConnectError: refused, port missing, or not open in time.
        """
        try:
            await self.port.open()
        except Exception as exc:
            self.health.error(f"connect: {exc}")
            raise
        self.connects += 1

    def close(self) -> None:
        """Close the transport. Idempotent, never raises."""
        self.port.close()

    def port_counters(self) -> dict[str, Any]:
        """Transport-level counters (RTU: noise bytes, unexpected echoes; TCP: tid mismatches,
        sockets opened)."""
        p = self.port
        if isinstance(p, RtuPort):
            return {"noise_bytes": p.noise_bytes, "echoes_seen": p.echoes_seen}
        return {"tid_mismatches": p.tid_mismatches, "sockets_opened": p.opens}

    async def read(self, unit_id: int, table: Table, address: int, count: int) -> list[Any]:
        """Read ``count`` registers (ints 0–65535) or bits (bools) from PDU ``address``.

        Raises:
            ConnectionLost, ModbusTimeout, ModbusExceptionResponse, ModbusGarbled.
        """
        request = frames.read_request(unit_id, table, address, count)
        pdu = await self.transact(request)
        return frames.decode_read(request, pdu)

    async def write_coil(self, unit_id: int, address: int, value: bool) -> None:
        """FC05 write of one coil. Raises as :meth:`transact`."""
        await self.transact(frames.write_coil_request(unit_id, address, value))

    async def write_register(self, unit_id: int, address: int, value: int) -> None:
        """FC06 write of one holding register. Raises as :meth:`transact`."""
        await self.transact(frames.write_register_request(unit_id, address, value))

    async def write_registers(self, unit_id: int, address: int, values: list[int]) -> None:
        """FC16 write of consecutive holding registers. Raises as :meth:`transact`."""
        await self.transact(frames.write_registers_request(unit_id, address, values))

    async def transact(self, request: frames.Request) -> bytes:
        """Send one request and return its (non-exception) response PDU.

        Raises:
            ConnectionLost: not connected, or the transport failed.
            ModbusTimeout: no answer within ``timeout_s``.
            ModbusExceptionResponse: the device answered with an exception.
            ModbusGarbled: the answer did not match the request (ModbusCrcError: bad CRC twice).
        """
        async with self._lock:
            if not self._per_request:
                return await self._transact(request)
            try:
                await self.port.open()
            except ConnectError as exc:
                self.health.error(f"connect: {exc}")
                raise ConnectionLost(str(exc)) from exc
            try:
                return await self._transact(request)
            finally:
                self.port.close()

    async def _transact(self, request: frames.Request) -> bytes:
        if log.isEnabledFor(logging.DEBUG):
            address = int.from_bytes(request.pdu[1:3], "big")
            log.debug(
                "%s: unit %d fc %02X PDU address %d (0x%04X) count %d: %s",
                self.spec.name,
                request.unit_id,
                request.function,
                address,
                address,
                request.count,
                request.pdu.hex(" "),
            )
        attempts = 1 + (CRC_RETRIES if isinstance(self.port, RtuPort) else 0)
        for attempt in range(attempts):
            self.requests += 1
            try:
                pdu = await self.port.transact(request, self.spec.timeout_s)
            except ModbusTimeout:
                self.timeouts += 1
                self.health.error(f"timeout unit {request.unit_id}")
                await self._after_failure()
                raise
            except ModbusCrcError:
                self.crc_errors += 1
                self.health.error(f"crc error unit {request.unit_id}")
                await self._after_failure()
                if attempt + 1 < attempts:
                    continue
                raise
            except ModbusGarbled as exc:
                self.garbled += 1
                self.health.error(f"garbled unit {request.unit_id}: {exc}")
                await self._after_failure()
                raise
            except ConnectionLost as exc:
                self.health.error(str(exc))
                raise
            break
        self.responses += 1
        self.health.ok()
        code = frames.exception_code(pdu)
        if code is not None:
            self.exceptions[code] += 1
            self.health.error(f"exception {code} unit {request.unit_id}")
            raise ModbusExceptionResponse(code)
        return pdu

    async def _after_failure(self) -> None:
        if isinstance(self.port, RtuPort) and self.port.is_open:
            await self.port.after_failure()
