"""Modbus master-side PDUs and RTU framing: build requests, check and parse responses. Pure.

Sources: Modbus Application Protocol V1.1b3 ("MAP") §6 (function codes 01–06, 15, 16 and their
response layouts) and §7 (exception responses: function code | 0x80, one exception code byte);
Modbus over Serial Line V1.02 ("MSL") §2.5.1 (RTU frame: unit id, PDU, CRC-16 low byte first) and
§6.2.2 (CRC-16, polynomial 0xA001 reflected, initial value 0xFFFF).

A :class:`Request` knows the exact length and shape of the answer it expects, which is what lets
the RTU master (no transaction id on a serial line) reject a late reply to an earlier request: the
unit id, function code and byte count must all match (:meth:`Request.check`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from drivers.specs import Table

READ_FC = {
    Table.COIL: 0x01,
    Table.DISCRETE_INPUT: 0x02,
    Table.HOLDING_REGISTER: 0x03,
    Table.INPUT_REGISTER: 0x04,
}
"""Read function code per table (MAP §6.1–6.4)."""

WRITE_SINGLE_COIL = 0x05  # MAP §6.5
WRITE_SINGLE_REGISTER = 0x06  # MAP §6.6
WRITE_MULTIPLE_REGISTERS = 0x10  # MAP §6.12


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC = _crc_table()


def crc16(data: bytes) -> bytes:
    """CRC-16/MODBUS of ``data`` as the two bytes to append, low byte first (MSL §6.2.2)."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC[(crc ^ b) & 0xFF]
    return crc.to_bytes(2, "little")


class ResponseMismatch(ValueError):
    """A response that is well formed but does not answer this request (wrong unit id, function
    code or byte count: a late reply to an earlier request, or another device's frame)."""


@dataclass(frozen=True, slots=True)
class Request:
    """One Modbus request PDU and what its answer must look like.

    Attributes:
        unit_id: unit id (slave address) 0–247.
        pdu: function code + data, as sent.
        count: registers or bits asked for (reads), else 0.
    """

    unit_id: int
    pdu: bytes
    count: int = 0

    @property
    def function(self) -> int:
        """The function code."""
        return self.pdu[0]

    def response_pdu_length(self) -> int:
        """Length of a normal (non-exception) response PDU (MAP §6)."""
        fc = self.function
        if fc in (0x01, 0x02):
            return 2 + (self.count + 7) // 8
        if fc in (0x03, 0x04):
            return 2 + 2 * self.count
        return 5  # 05, 06, 15, 16: function code + 4 bytes

    def rtu_frame(self) -> bytes:
        """The RTU ADU: unit id + PDU + CRC (MSL §2.5.1)."""
        adu = bytes((self.unit_id,)) + self.pdu
        return adu + crc16(adu)

    def check(self, unit_id: int, pdu: bytes) -> None:
        """Check that ``pdu`` from ``unit_id`` answers this request.

        Raises:
            ResponseMismatch: wrong unit id, function code, byte count or length.
        """
        if unit_id != self.unit_id:
            raise ResponseMismatch(f"unit id {unit_id}, expected {self.unit_id}")
        if not pdu:
            raise ResponseMismatch("empty PDU")
        if pdu[0] == self.function | 0x80:
            if len(pdu) != 2:
                raise ResponseMismatch(f"exception response of {len(pdu)} bytes")
            return
        if pdu[0] != self.function:
            raise ResponseMismatch(f"function {pdu[0]:#04x}, expected {self.function:#04x}")
        if len(pdu) != self.response_pdu_length():
            raise ResponseMismatch(f"{len(pdu)} bytes, expected {self.response_pdu_length()}")
        if self.function in (0x01, 0x02, 0x03, 0x04) and pdu[1] != len(pdu) - 2:
            raise ResponseMismatch(f"byte count {pdu[1]}, expected {len(pdu) - 2}")
        if self.function in (0x05, 0x06, 0x0F, 0x10) and pdu[1:3] != self.pdu[1:3]:
            raise ResponseMismatch("write response for another address")


def read_request(unit_id: int, table: Table, address: int, count: int) -> Request:
    """FC 01/02/03/04: read ``count`` bits or registers from PDU ``address``."""
    return Request(unit_id, struct.pack(">BHH", READ_FC[table], address, count), count)


def write_coil_request(unit_id: int, address: int, value: bool) -> Request:
    """FC 05: ON is 0xFF00, OFF 0x0000 (MAP §6.5)."""
    return Request(unit_id, struct.pack(">BHH", WRITE_SINGLE_COIL, address, 0xFF00 if value else 0))


def write_register_request(unit_id: int, address: int, value: int) -> Request:
    """FC 06: one holding register (MAP §6.6)."""
    return Request(unit_id, struct.pack(">BHH", WRITE_SINGLE_REGISTER, address, value))


def write_registers_request(unit_id: int, address: int, values: list[int]) -> Request:
    """FC 16: consecutive holding registers (MAP §6.12)."""
    n = len(values)
    body = struct.pack(f">BHHB{n}H", WRITE_MULTIPLE_REGISTERS, address, n, 2 * n, *values)
    return Request(unit_id, body)


def exception_code(pdu: bytes) -> int | None:
    """The exception code if ``pdu`` is an exception response (MAP §7), else None."""
    return pdu[1] if pdu and pdu[0] & 0x80 and len(pdu) >= 2 else None


def decode_read(request: Request, pdu: bytes) -> list[int] | list[bool]:
    """Registers (ints 0–65535) or bits (bools) of a checked, non-exception read response."""
    data = pdu[2:]
    if request.function in (0x01, 0x02):
        return [bool(data[i // 8] >> (i % 8) & 1) for i in range(request.count)]
    return list(struct.unpack(f">{request.count}H", data))


def rtu_response_length(buf: bytes | bytearray, start: int) -> int | None:
    """Length of the RTU response frame starting at ``buf[start]``, from its function code and
    byte count, or None while those bytes have not arrived (or the function code is unknown)."""
    if len(buf) < start + 2:
        return None
    fc = buf[start + 1]
    if fc & 0x80:
        return 5
    if fc in (0x01, 0x02, 0x03, 0x04):
        if len(buf) < start + 3:
            return None
        return 5 + buf[start + 2]
    if fc in (0x05, 0x06, 0x0F, 0x10):
        return 8
    return None
