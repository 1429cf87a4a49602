"""One Modbus connection (TCP socket or RS-485 port) over pymodbus 3.16, with our own timeouts.

pymodbus's own machinery is switched off so that the driver owns reconnects and timeouts:
``retries=0`` (no resend), ``reconnect_delay=0`` (no background reconnect task), and pymodbus's
internal timeout is set longer than ours, so :func:`asyncio.wait_for` with the connection's
``timeout_s`` always fires first. Requests are serialised by an :class:`asyncio.Lock`: one request
at a time per connection (an RS-485 bus is half-duplex with a single master, Modbus over Serial
Line V1.02 §2.1).

No pymodbus exception leaves this module: they become :class:`~agent.model.ConnectionLost`,
:class:`ModbusTimeout`, :class:`ModbusExceptionResponse` or :class:`ModbusGarbled`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from agent.model import ConnectError, ConnectionLost
from drivers.specs import ModbusRtuConnection, ModbusTcpConnection, Table

RTU_OPEN_TIMEOUT_S = 3.0
"""Bound on opening a serial port (the spec has no connect timeout for RTU)."""


def rtu_frame_gap_s(spec: ModbusRtuConnection) -> float:
    """Silent interval t3.5 the master keeps between frames on an RS-485 bus, seconds.

    3.5 character times, fixed at 1.75 ms above 19200 baud (Modbus over Serial Line V1.02
    §2.5.1.1). A character is start bit + data bits + parity bit (if any) + stop bits.
    """
    if spec.baudrate > 19200:
        return 0.00175
    bits = 1 + spec.bytesize + (0 if spec.parity.upper() == "N" else 1) + spec.stopbits
    return 3.5 * bits / spec.baudrate


_READ_FN = {
    Table.COIL: "read_coils",  # FC 01
    Table.DISCRETE_INPUT: "read_discrete_inputs",  # FC 02
    Table.HOLDING_REGISTER: "read_holding_registers",  # FC 03
    Table.INPUT_REGISTER: "read_input_registers",  # FC 04
}


class ModbusTimeout(Exception):
    """No answer within the connection's ``timeout_s`` (internal to ``drivers/``)."""


class ModbusExceptionResponse(Exception):
    """The device answered with a Modbus exception response (internal to ``drivers/``).

    Attributes:
        code: exception code (Modbus Application Protocol V1.1b3 §7: 1 illegal function,
            2 illegal data address, 3 illegal data value, 4 server device failure, …).
    """

    def __init__(self, code: int) -> None:
        super().__init__(f"modbus exception {code}")
        self.code = code


class ModbusGarbled(Exception):
    """An answer arrived but did not match the request (late reply, wrong unit id or length)."""


class ModbusLink:
    """A pymodbus client for one connection spec, with counters.

    Attributes:
        spec: the connection spec.
        counters: ``requests``, ``responses``, ``timeouts``, ``exceptions`` (code → count),
            ``garbled``, ``connects``, ``last_error``, ``last_ok`` (``time.monotonic()`` of the last
            answered request, or ``None``).
    """

    def __init__(self, spec: ModbusTcpConnection | ModbusRtuConnection) -> None:
        self.spec = spec
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self.requests = 0
        self.responses = 0
        self.timeouts = 0
        self.garbled = 0
        self.exceptions: Counter[int] = Counter()
        self.connects = 0
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self._gap_s = rtu_frame_gap_s(spec) if isinstance(spec, ModbusRtuConnection) else 0.0
        self._quiet_until = 0.0

    @property
    def connected(self) -> bool:
        """Whether the transport is open."""
        return self._client is not None and self._client.connected

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        spec = self.spec
        if isinstance(spec, ModbusTcpConnection):
            lib_timeout = max(spec.timeout_s, spec.connect_timeout_s) + 5.0
            return AsyncModbusTcpClient(
                spec.host,
                port=spec.port,
                name=spec.name,
                timeout=lib_timeout,
                retries=0,
                reconnect_delay=0,
                reconnect_delay_max=0,
            )
        return AsyncModbusSerialClient(
            spec.port,
            name=spec.name,
            baudrate=spec.baudrate,
            bytesize=spec.bytesize,
            parity=spec.parity,
            stopbits=spec.stopbits,
            timeout=max(spec.timeout_s, RTU_OPEN_TIMEOUT_S) + 5.0,
            retries=0,
            reconnect_delay=0,
            reconnect_delay_max=0,
        )

    async def connect(self) -> None:
        """Open the transport.

        Raises:
            ConnectError: refused, port missing, or not open within ``connect_timeout_s``
                (TCP) / :data:`RTU_OPEN_TIMEOUT_S` (RTU).
        """
        self.close()
        spec = self.spec
        timeout = (
            spec.connect_timeout_s if isinstance(spec, ModbusTcpConnection) else RTU_OPEN_TIMEOUT_S
        )
        client = self._make_client()
        client.set_max_no_responses(1_000_000_000)  # our code decides when silence means lost
        self._client = client
        try:
            ok = await asyncio.wait_for(client.connect(), timeout)
        except TimeoutError as exc:
            self.close()
            self.last_error = "connect timeout"
            raise ConnectError(f"{spec.name}: connect timed out after {timeout} s") from exc
        except Exception as exc:  # pymodbus, OSError, SerialException, termios.error, ...
            self.close()
            self.last_error = f"connect: {exc!r}"
            raise ConnectError(f"{spec.name}: {exc!r}") from exc
        if not ok or not client.connected:
            self.close()
            self.last_error = "connect refused"
            raise ConnectError(f"{spec.name}: could not connect")
        self.connects += 1

    def close(self) -> None:
        """Close the transport. Idempotent, never raises."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # a close must never raise; the library's are not typed
                self.last_error = f"close: {exc}"

    async def read(self, unit_id: int, table: Table, address: int, count: int) -> list[Any]:
        """Read ``count`` registers (ints 0–65535) or bits (bools) from ``address``.

        Raises:
            ConnectionLost, ModbusTimeout, ModbusExceptionResponse, ModbusGarbled.
        """
        response = await self.call(_READ_FN[table], unit_id, address, count=count)
        values = list(response.bits if table.is_bit else response.registers)
        if len(values) < count:
            self.garbled += 1
            raise ModbusGarbled(f"asked {count}, got {len(values)}")
        return values[:count]

    async def call(self, fn: str, unit_id: int, *args: Any, **kwargs: Any) -> Any:
        """Send one request (pymodbus client method ``fn``) to ``unit_id`` and return the response.

        Raises:
            ConnectionLost: not connected, or the transport closed.
            ModbusTimeout: no answer within ``timeout_s``.
            ModbusExceptionResponse: the device answered with an exception.
            ModbusGarbled: the answer did not match the request.
        """
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                raise ConnectionLost(f"{self.spec.name}: not connected")
            if self._gap_s:
                wait = self._quiet_until - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self.requests += 1
            try:
                response = await asyncio.wait_for(
                    getattr(client, fn)(*args, device_id=unit_id, **kwargs), self.spec.timeout_s
                )
            except TimeoutError:
                self.timeouts += 1
                self.last_error = f"timeout unit {unit_id}"
                if not client.connected:
                    raise ConnectionLost(f"{self.spec.name}: transport closed") from None
                raise ModbusTimeout(
                    f"unit {unit_id}: no answer in {self.spec.timeout_s} s"
                ) from None
            except ConnectionException as exc:
                self.last_error = f"connection: {exc}"
                raise ConnectionLost(f"{self.spec.name}: {exc}") from exc
            except ModbusIOException as exc:
                if not client.connected:
                    self.last_error = f"connection: {exc}"
                    raise ConnectionLost(f"{self.spec.name}: {exc}") from exc
                self.garbled += 1
                self.last_error = f"garbled: {exc}"
                raise ModbusGarbled(str(exc)) from exc
            except Exception as exc:  # ModbusException, OSError, SerialException: transport broken
                self.last_error = f"connection: {exc!r}"
                raise ConnectionLost(f"{self.spec.name}: {exc!r}") from exc
            finally:
                self._quiet_until = time.monotonic() + self._gap_s
            self.responses += 1
            self.last_ok = time.monotonic()
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                self.exceptions[code] += 1
                self.last_error = f"exception {code} unit {unit_id}"
                raise ModbusExceptionResponse(code)
            return response
