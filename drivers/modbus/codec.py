"""Modbus value decoding and encoding. Pure: no I/O.

Registers are 16-bit unsigned integers as they come off the wire. A multi-register value is first
put into canonical big-endian byte order (ABCD / ABCDEFGH) and then unpacked with :mod:`struct`:

* word order ``big``: most significant word first (ABCD) — e.g. MFE600C flow, registers
  0x44C8, 0x0000 → 0x44C80000 = 1600.0 (Microsensor MFE600C manual pp.16–19 [S51], domain.md §4.0);
* word order ``little``: least significant word first (CDAB, "float inverse" in Chinese meter
  manuals) — registers 0x0000, 0xC148 → 0xC1480000 = −12.5 (Microsensor MFE600H manual p.26 [S54];
  RS485 电磁水表 example [S55]);
* byte order ``little`` swaps the two bytes within each register, giving BADC (with big word order)
  and DCBA (with little word order). The 64-bit types follow the same two rules over four words.

Engineering value = raw × scale + offset. With scale 1 and offset 0 the raw number is kept as it is,
so 64-bit integers stay exact Python ints.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

from agent.core.model import Reading, Value
from drivers.specs import DataType, ModbusPoint, Order
from drivers.values import to_engineering

STRUCT_FORMAT: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}
"""Big-endian :mod:`struct` format per numeric data type (``bool`` is handled as a bit)."""

_INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


def registers_to_bytes(registers: Sequence[int], word_order: Order, byte_order: Order) -> bytes:
    """Put registers as read into canonical big-endian bytes (ABCD…).

    Args:
        registers: 16-bit register values, in address order.
        word_order: order of the words on the device.
        byte_order: order of the two bytes inside each register on the device.
    """
    words = list(registers)
    if word_order is Order.LITTLE:
        words.reverse()
    out = bytearray()
    for w in words:
        hi, lo = (w >> 8) & 0xFF, w & 0xFF
        out += bytes((lo, hi)) if byte_order is Order.LITTLE else bytes((hi, lo))
    return bytes(out)


def bytes_to_registers(data: bytes, word_order: Order, byte_order: Order) -> list[int]:
    """Inverse of :func:`registers_to_bytes`: canonical big-endian bytes → registers to write."""
    words = []
    for k in range(0, len(data), 2):
        hi, lo = data[k], data[k + 1]
        if byte_order is Order.LITTLE:
            hi, lo = lo, hi
        words.append((hi << 8) | lo)
    if word_order is Order.LITTLE:
        words.reverse()
    return words


def decode_raw(point: ModbusPoint, words: Sequence[int] | Sequence[bool]) -> int | float | bool:
    """Decode the raw (unscaled) value of ``point`` from its own slice of a block.

    Args:
        point: the point.
        words: for coils / discrete inputs, one bool; otherwise ``point.dtype.registers``
            registers (0–65535), in address order.

    Raises:
        ValueError: wrong number of words for the data type.
    """
    if point.table.is_bit:
        return bool(words[0])
    if point.dtype is DataType.BOOL:
        reg = int(words[0])
        return bool((reg >> point.bit) & 1) if point.bit is not None else reg != 0
    n = point.dtype.registers
    if len(words) != n:
        raise ValueError(f"{point.name}: {point.dtype} needs {n} registers, got {len(words)}")
    data = registers_to_bytes([int(w) for w in words], point.word_order, point.byte_order)
    value: int | float = struct.unpack(STRUCT_FORMAT[point.dtype], data)[0]
    return value


_Decoder = Callable[[Sequence[int] | Sequence[bool], int], int | float | bool]
_DECODERS: dict[int, tuple[ModbusPoint, _Decoder]] = {}
"""id(point) → (point, its decoder); the point is kept so that its id is never reused."""


def _make_decoder(point: ModbusPoint) -> _Decoder:
    """A function (block, offset) → raw value of ``point``, equal to :func:`decode_raw` of its
    slice but without building intermediate lists and bytes per call: with big byte order
    the registers are packed as ``>nH`` in canonical (ABCD…) word order and unpacked at once."""
    if point.table.is_bit:
        return lambda block, offset: bool(block[offset])
    if point.dtype is DataType.BOOL:
        bit = point.bit
        if bit is None:
            return lambda block, offset: int(block[offset]) != 0
        return lambda block, offset: bool((int(block[offset]) >> bit) & 1)
    n = point.dtype.registers
    if point.byte_order is not Order.BIG:
        return lambda block, offset: decode_raw(point, block[offset : offset + n])
    words = struct.Struct(f">{n}H")
    value = struct.Struct(STRUCT_FORMAT[point.dtype])
    pack, unpack = words.pack, value.unpack
    if n == 1:
        if point.dtype is DataType.UINT16:
            return lambda block, offset: int(block[offset])
        return lambda block, offset: unpack(pack(block[offset]))[0]
    if point.word_order is Order.LITTLE:
        return lambda block, offset: unpack(pack(*reversed(block[offset : offset + n])))[0]
    return lambda block, offset: unpack(pack(*block[offset : offset + n]))[0]


def decode_point(point: ModbusPoint, block: Sequence[int] | Sequence[bool], offset: int) -> Reading:
    """Decode ``point`` from a request's ``block`` of registers or bits starting at ``offset``.

    The decoder of each point is built once and kept (points are immutable specs).

    Raises:
        struct.error / IndexError: the block is too short or holds a value outside 0–65535.
    """
    entry = _DECODERS.get(id(point))
    if entry is None or entry[0] is not point:
        entry = _DECODERS[id(point)] = (point, _make_decoder(point))
    return to_engineering(point, entry[1](block, offset))


def to_raw(point: ModbusPoint, value: Value) -> int | float:
    """Engineering value → raw number: ``(value − offset) / scale``, rounded for integer types.

    Raises:
        ValueError: ``value`` is not a finite number, or does not fit the data type.
    """
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{point.name}: not a finite number: {value!r}")
    raw: int | float = value
    if point.scale != 1.0 or point.offset != 0.0:
        raw = (value - point.offset) / point.scale
    if point.dtype in _INT_RANGE:
        lo, hi = _INT_RANGE[point.dtype]
        raw = round(raw)
        if not lo <= raw <= hi:
            raise ValueError(f"{point.name}: raw value {raw} outside {point.dtype} {lo}..{hi}")
    elif point.dtype is DataType.FLOAT32 and abs(raw) > 3.4028234663852886e38:
        raise ValueError(f"{point.name}: {raw} overflows float32")
    return raw


def encode_registers(point: ModbusPoint, value: Value) -> list[int]:
    """Engineering value → registers to write (FC06 for one, FC16 for several), in address order.

    Raises:
        ValueError: the point is a bit, or the value does not fit (see :func:`to_raw`).
    """
    if point.table.is_bit or point.dtype is DataType.BOOL:
        raise ValueError(f"{point.name}: a bit point is written with encode_bit / a coil write")
    data = struct.pack(STRUCT_FORMAT[point.dtype], to_raw(point, value))
    return bytes_to_registers(data, point.word_order, point.byte_order)


def encode_bit(point: ModbusPoint, register: int, value: bool) -> int:
    """Read-modify-write of a bit-in-register point: ``register`` with bit ``point.bit`` set to
    ``value``. Without ``bit`` the whole register becomes 1 or 0.
    """
    if point.bit is None:
        return 1 if value else 0
    mask = 1 << point.bit
    return (register | mask) if value else (register & ~mask & 0xFFFF)
