"""Pure Modbus PDU handling: decode a request PDU, call a :class:`~hil_sim.modbus.slave.Slave`,
build the response PDU or exception PDU. No I/O, no clock.

Follows the Modbus Application Protocol Specification V1.1b3 (MAP):

* supported function codes: 01 read coils, 02 read discrete inputs, 03 read holding registers,
  04 read input registers, 05 write single coil, 06 write single register, 15 (0x0F) write
  multiple coils, 16 (0x10) write multiple registers; anything else answers exception 1;
* checks in the order of the MAP §6 state diagrams: function code (exception 1), then quantity,
  byte count and value (exception 3: FC01/02 1..2000 bits, FC03/04 1..125 registers, FC15
  1..1968 bits, FC16 1..123 registers, FC05 value 0x0000 or 0xFF00), then address + quantity
  within 0..65535 (exception 2), then execution (the slave's :class:`ModbusError`, or 4 for any
  other failure). A PDU whose length does not match its function code answers exception 3.
* an exception response is ``function_code | 0x80, code`` (MAP §7).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from hil_sim.modbus.faults import UnitFaults
from hil_sim.modbus.slave import (
    COIL,
    DISCRETE_INPUT,
    HOLDING_REGISTER,
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    ILLEGAL_FUNCTION,
    INPUT_REGISTER,
    SERVER_DEVICE_FAILURE,
    ModbusError,
    Slave,
)

log = logging.getLogger(__name__)

READ_COILS = 0x01
READ_DISCRETE_INPUTS = 0x02
READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
WRITE_SINGLE_COIL = 0x05
WRITE_SINGLE_REGISTER = 0x06
WRITE_MULTIPLE_COILS = 0x0F
WRITE_MULTIPLE_REGISTERS = 0x10
WRITE_FUNCTIONS = frozenset(
    {WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS}
)

#: function code -> (table, max quantity) for the four reads (MAP §6.1-§6.4)
_READS = {
    READ_COILS: (COIL, 2000),
    READ_DISCRETE_INPUTS: (DISCRETE_INPUT, 2000),
    READ_HOLDING_REGISTERS: (HOLDING_REGISTER, 125),
    READ_INPUT_REGISTERS: (INPUT_REGISTER, 125),
}
MAX_WRITE_COILS = 0x07B0  # 1968, MAP §6.11
MAX_WRITE_REGISTERS = 0x7B  # 123, MAP §6.12
COIL_ON = 0xFF00  # MAP §6.5
COIL_OFF = 0x0000

#: returned by :func:`request_pdu_length` for a function code whose length is not known here
UNKNOWN_LENGTH = -1


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded, validated request.

    Attributes:
        function_code: 1, 2, 3, 4, 5, 6, 15 or 16.
        table: the table it touches (``"coil"``, ``"discrete_input"``, ...).
        address: first 0-based address.
        count: number of bits or registers.
        values: values to write (bools for coils, uint16 ints for registers); empty for reads.
    """

    function_code: int
    table: str
    address: int
    count: int
    values: tuple = ()

    @property
    def is_write(self) -> bool:
        """True for FC05, FC06, FC15, FC16."""
        return self.function_code in WRITE_FUNCTIONS


def exception_response(function_code: int, code: int) -> bytes:
    """The exception PDU ``function_code | 0x80, code`` (MAP §7)."""
    return bytes(((function_code | 0x80) & 0xFF, code))


def request_pdu_length(head: bytes) -> int | None:
    """Length of the request PDU that starts with ``head`` (for RTU frame-end detection).

    Returns the PDU length in bytes, None if more bytes are needed to know it, or
    :data:`UNKNOWN_LENGTH` for a function code this module does not know (the RTU framer then
    relies on the t3.5 silent interval).
    """
    if not head:
        return None
    fc = head[0]
    if fc in _READS or fc in (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER):
        return 5
    if fc in (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        return None if len(head) < 6 else 6 + head[5]
    return UNKNOWN_LENGTH


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _unpack_bits(data: bytes, count: int) -> tuple[bool, ...]:
    return tuple(bool(data[i // 8] >> (i % 8) & 1) for i in range(count))


def _check_address(address: int, count: int) -> None:
    if address + count > 0x10000:
        raise ModbusError(ILLEGAL_DATA_ADDRESS)


def decode_request(pdu: bytes) -> Request:
    """Decode and validate a request PDU (function code + data).

    Raises:
        ModbusError: 1 unknown function code, 3 bad length/quantity/byte count/value, 2 address
            range beyond 65535.
    """
    if not pdu:
        raise ModbusError(ILLEGAL_DATA_VALUE)
    fc = pdu[0]
    if fc in _READS:
        table, max_count = _READS[fc]
        if len(pdu) != 5:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= max_count:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        _check_address(address, count)
        return Request(fc, table, address, count)
    if fc in (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER):
        if len(pdu) != 5:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        address, value = struct.unpack(">HH", pdu[1:5])
        if fc == WRITE_SINGLE_REGISTER:
            return Request(fc, HOLDING_REGISTER, address, 1, (value,))
        if value not in (COIL_ON, COIL_OFF):
            raise ModbusError(ILLEGAL_DATA_VALUE)
        return Request(fc, COIL, address, 1, (value == COIL_ON,))
    if fc in (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        if len(pdu) < 6:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        address, count, byte_count = struct.unpack(">HHB", pdu[1:6])
        data = pdu[6:]
        if fc == WRITE_MULTIPLE_COILS:
            ok = 1 <= count <= MAX_WRITE_COILS and byte_count == (count + 7) // 8
        else:
            ok = 1 <= count <= MAX_WRITE_REGISTERS and byte_count == 2 * count
        if not ok or len(data) != byte_count:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        _check_address(address, count)
        if fc == WRITE_MULTIPLE_COILS:
            return Request(fc, COIL, address, count, _unpack_bits(data, count))
        values = struct.unpack(f">{count}H", data)
        return Request(fc, HOLDING_REGISTER, address, count, values)
    raise ModbusError(ILLEGAL_FUNCTION)


def execute(slave: Slave, request: Request) -> bytes:
    """Run a decoded request on ``slave``; return the normal response PDU.

    Raises:
        ModbusError: from the slave, or 4 (server device failure) if the slave returned the
            wrong number of values.
    """
    fc, address, count = request.function_code, request.address, request.count
    if fc in (READ_COILS, READ_DISCRETE_INPUTS):
        bits = list(slave.read_bits(request.table, address, count))
        if len(bits) != count:
            raise ModbusError(SERVER_DEVICE_FAILURE)
        packed = _pack_bits(bits)
        return bytes((fc, len(packed))) + packed
    if fc in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
        regs = list(slave.read_registers(request.table, address, count))
        if len(regs) != count or any(not 0 <= r <= 0xFFFF for r in regs):
            raise ModbusError(SERVER_DEVICE_FAILURE)
        return bytes((fc, 2 * count)) + struct.pack(f">{count}H", *regs)
    if fc in (WRITE_SINGLE_COIL, WRITE_MULTIPLE_COILS):
        slave.write_bits(address, list(request.values))
    else:
        slave.write_registers(address, list(request.values))
    if fc == WRITE_SINGLE_COIL:
        return struct.pack(">BHH", fc, address, COIL_ON if request.values[0] else COIL_OFF)
    if fc == WRITE_SINGLE_REGISTER:
        return struct.pack(">BHH", fc, address, request.values[0])
    return struct.pack(">BHH", fc, address, count)


def handle_request(slave: Slave, pdu: bytes, faults: UnitFaults | None = None) -> bytes:
    """Decode ``pdu``, apply injected address exceptions from ``faults``, execute on ``slave``
    and return the response PDU -- or the exception PDU. Never raises for protocol errors; an
    unexpected exception from the slave is logged and answers exception 4."""
    fc = pdu[0] if pdu else 0
    try:
        request = decode_request(pdu)
        if faults is not None and faults.exceptions:
            code = faults.exception_for(request.table, request.address, request.count)
            if code is not None:
                raise ModbusError(code)
        return execute(slave, request)
    except ModbusError as exc:
        return exception_response(fc, exc.code)
    except Exception:
        log.exception("slave %s failed on PDU %s", getattr(slave, "unit_id", "?"), pdu.hex())
        return exception_response(fc, SERVER_DEVICE_FAILURE)
