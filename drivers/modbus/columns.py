"""Columnar decoding of one read request's block: every plain point with one ``struct`` call.

Decoding point by point (:func:`drivers.modbus.codec.decode_point`) slices the block, packs and
unpacks each value and runs the engineering checks per point: about 2 µs a point, the biggest
share of the driver's CPU at 100 points every 100 ms (issue 17). Here a request's decoder is
built once: the block's registers are packed into bytes once per read, and ONE
``struct.unpack_from`` with a format covering the whole block (``x`` pad bytes over the gaps)
yields every *columnar* member's raw value. A member is columnar when its data type is numeric
and its byte and word order are both big (ABCD…, so the canonical bytes are the block's own
bytes) and it does not overlap the previous columnar member; every other member (bits, bools in a
register, little word or byte order, overlapping points) is decoded by :func:`decode_point` as
before. Members without scale, offset or valid range take a short path (a float is checked for
NaN/±∞ only); the rest go through :func:`drivers.values.to_engineering`, so the readings are the
same as :func:`decode_point` gives, value and type (tests/drivers/test_columns.py compares the
two over every data type and order).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from agent.core.model import Quality, Reading
from drivers.modbus.codec import STRUCT_FORMAT, decode_point
from drivers.modbus.plan import ReadRequest
from drivers.specs import DataType, ModbusPoint, Order
from drivers.values import to_engineering

MAX_FINITE = 1.7976931348623157e308
"""The largest finite double (IEEE 754 binary64); NaN fails every comparison with it."""

_GOOD = Quality.GOOD
_new = tuple.__new__
"""``_new(Reading, (…))``: a named tuple made without its Python-level ``__new__``."""

Block = Sequence[int] | Sequence[bool]
_Decode = Callable[[Sequence[ModbusPoint], Block, list[Reading | None]], None]
_CACHE: dict[int, tuple[ReadRequest, tuple[ModbusPoint, ...], _Decode]] = {}
"""id(request) → (request, the plan's points, its decoder); both are kept so the ids are never
reused while the entry lives. Requests are made once per plan (and per learned change)."""


def decode_request(
    points: Sequence[ModbusPoint], req: ReadRequest, block: Block, out: list[Reading | None]
) -> None:
    """Decode every member of ``req`` from its ``block`` into ``out[member.index]``.

    Args:
        points: the plan's points (``req.members`` index them).
        req: the request that was read.
        block: the registers (0–65535) or bits it returned, ``req.count`` of them.
        out: the plan's readings, filled in place.

    Raises:
        struct.error / IndexError: the block is too short or holds a value outside 0–65535 (as
            :func:`decode_point`).
    """
    entry = _CACHE.get(id(req))
    if entry is None or entry[0] is not req or entry[1] is not points:
        pts = tuple(points) if not isinstance(points, tuple) else points
        entry = _CACHE[id(req)] = (req, pts, _build(pts, req))
        if len(_CACHE) > 4096:  # plans come and go with reloads: keep the newest only
            for k in list(_CACHE)[:2048]:
                del _CACHE[k]
    entry[2](points, block, out)


def _columnar(p: ModbusPoint) -> bool:
    return (
        not p.table.is_bit
        and p.dtype is not DataType.BOOL
        and p.byte_order is Order.BIG
        and (p.word_order is Order.BIG or p.dtype.registers == 1)
    )


def _build(points: tuple[ModbusPoint, ...], req: ReadRequest) -> _Decode:
    """The decoder of ``req``: one struct over the columnar members, per point for the rest."""
    fmt = [">"]
    at = 0  # next register the format has not covered
    cols: list[tuple[int, str, bool, bool, ModbusPoint]] = []  # index, name, plain, float, point
    rest: list[tuple[int, int]] = []  # (index, offset) decoded point by point
    for m in sorted(req.members, key=lambda m: m.offset):
        p = points[m.index]
        if req.table.is_bit or not _columnar(p) or m.offset < at:
            rest.append((m.index, m.offset))
            continue
        if m.offset > at:
            fmt.append(f"{2 * (m.offset - at)}x")
        fmt.append(STRUCT_FORMAT[p.dtype][1])
        at = m.offset + p.dtype.registers
        plain = p.scale == 1.0 and p.offset == 0.0 and p.valid_min is None and p.valid_max is None
        is_float = p.dtype in (DataType.FLOAT32, DataType.FLOAT64)
        cols.append((m.index, p.name, plain, is_float, p))
    if not cols:
        return lambda pts, block, out: _rest(pts, block, out, rest)
    values = struct.Struct("".join(fmt))
    words = struct.Struct(f">{at}H")

    def decode(pts: Sequence[ModbusPoint], block: Block, out: list[Reading | None]) -> None:
        raw = values.unpack(words.pack(*block[:at]))
        for (i, name, plain, is_float, p), v in zip(cols, raw, strict=True):
            if plain and (not is_float or -MAX_FINITE <= v <= MAX_FINITE):
                out[i] = _new(Reading, (name, v, _GOOD, None, None))
            else:
                out[i] = to_engineering(p, v)
        if rest:
            _rest(pts, block, out, rest)

    return decode


def _rest(
    points: Sequence[ModbusPoint],
    block: Block,
    out: list[Reading | None],
    rest: list[tuple[int, int]],
) -> None:
    for i, offset in rest:
        out[i] = decode_point(points[i], block, offset)
