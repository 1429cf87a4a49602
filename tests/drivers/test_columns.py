"""Columnar block decoding (drivers/modbus/columns.py) gives exactly the readings of point-by-point
decoding (drivers/modbus/codec.decode_point): every data type, word and byte order, gaps,
overlapping points, bits in registers, scale/offset/range, NaN and ±∞, coils."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from agent.core.model import Reading
from drivers.modbus.codec import decode_point
from drivers.modbus.columns import decode_request
from drivers.modbus.plan import Member, ReadRequest
from drivers.specs import DataType, ModbusPoint, Order, Table

HR = Table.HOLDING_REGISTER
NUMERIC = [t for t in DataType if t is not DataType.BOOL]
SPECIAL_F32 = [0x7FC0_0000, 0x7F80_0000, 0xFF80_0000, 0x8000_0000, 0x0000_0001]
"""float32 NaN, +∞, −∞, −0.0 and the smallest subnormal, as 32-bit patterns."""


def _key(r: Reading | None) -> tuple[Any, ...]:
    assert r is not None
    return (r.point, type(r.value).__name__, repr(r.value), r.quality, r.reason)


def _points(rng: random.Random, n: int, table: Table = HR) -> list[ModbusPoint]:
    pts, addr = [], 0
    for i in range(n):
        kw: dict[str, Any] = {}
        if table.is_bit:
            dtype = DataType.BOOL
        else:
            dtype = rng.choice([*NUMERIC, DataType.FLOAT32, DataType.FLOAT32, DataType.BOOL])
            kw["word_order"] = rng.choice([Order.BIG, Order.BIG, Order.LITTLE])
            kw["byte_order"] = rng.choice([Order.BIG, Order.BIG, Order.LITTLE])
            if dtype is DataType.BOOL:
                kw["bit"] = rng.choice([None, 0, 7, 15])
            elif rng.random() < 0.2:
                kw["scale"], kw["offset"] = rng.choice([(0.01, 0.0), (1.0, -40.0), (0.1, 2.5)])
            elif rng.random() < 0.1:
                kw["valid_min"], kw["valid_max"] = -100.0, 100.0
        gap = rng.choice([0, 0, 0, 1, 3])
        if pts and rng.random() < 0.1:  # overlaps the previous point
            addr = max(0, addr - 1)
        else:
            addr += gap
        pts.append(ModbusPoint(name=f"p{i}", device="d", unit_id=1, table=table, address=addr,
                               dtype=dtype, **kw))  # fmt: skip
        addr += 1 if dtype is DataType.BOOL else dtype.registers
    return pts


def _block(rng: random.Random, count: int, table: Table) -> list[Any]:
    if table.is_bit:
        return [rng.random() < 0.5 for _ in range(count)]
    regs = [rng.randrange(0, 1 << 16) for _ in range(count)]
    for k in range(0, count - 1, 7):  # special float32 patterns here and there
        special = rng.choice(SPECIAL_F32)
        regs[k], regs[k + 1] = special >> 16, special & 0xFFFF
    return regs


def _request(pts: list[ModbusPoint], table: Table) -> ReadRequest:
    start = min(p.address for p in pts)
    end = max(p.address + (1 if p.dtype is DataType.BOOL else p.dtype.registers) for p in pts)
    members = tuple(Member(i, p.address - start) for i, p in enumerate(pts))
    return ReadRequest(1, table, start, end - start, members)


@pytest.mark.parametrize("seed", range(40))
def test_columnar_equals_point_by_point(seed: int) -> None:
    rng = random.Random(seed)
    table = Table.COIL if seed % 10 == 9 else HR
    pts = tuple(_points(rng, rng.randrange(1, 60), table))
    req = _request(list(pts), table)
    for _ in range(3):  # the decoder is built once and reused
        block = _block(rng, req.count, table)
        got: list[Reading | None] = [None] * len(pts)
        decode_request(pts, req, block, got)
        want = [decode_point(p, block, m.offset) for p, m in zip(pts, req.members, strict=True)]
        assert [_key(r) for r in got] == [_key(r) for r in want]


def test_a_short_block_raises_as_point_by_point_decoding_does() -> None:
    pts = tuple(_points(random.Random(1), 10))
    req = _request(list(pts), HR)
    with pytest.raises((struct.error, IndexError)):
        decode_request(pts, req, [0] * (req.count - 2), [None] * len(pts))
