"""Table tests for Modbus decoding/encoding (drivers/modbus/codec.py)."""

from __future__ import annotations

import math
import struct

import pytest

from agent.core.model import Quality
from drivers.modbus.codec import (
    decode_point,
    decode_raw,
    encode_bit,
    encode_registers,
    to_engineering,
)
from drivers.specs import DataType, ModbusPoint, Order, Table

HR = Table.HOLDING_REGISTER
B, L = Order.BIG, Order.LITTLE


def pt(dtype, wo=B, bo=B, **kw):
    kw.setdefault("table", HR)
    return ModbusPoint(
        name="p", device="d", unit_id=1, address=0, dtype=dtype, word_order=wo, byte_order=bo, **kw
    )


DECODE = [
    # (id, dtype, word order, byte order, registers, expected raw value)
    ("float32 CDAB -12.5 [S54][S55]", DataType.FLOAT32, L, B, [0x0000, 0xC148], -12.5),
    ("float32 ABCD 1600.0 [S51]", DataType.FLOAT32, B, B, [0x44C8, 0x0000], 1600.0),
    ("float32 BADC", DataType.FLOAT32, B, L, [0xC844, 0x0000], 1600.0),
    ("float32 DCBA", DataType.FLOAT32, L, L, [0x0000, 0x48C1], -12.5),
    ("int16 negative", DataType.INT16, B, B, [0xFFFE], -2),
    ("uint16 max", DataType.UINT16, B, B, [0xFFFF], 65535),
    ("int16 byte-swapped", DataType.INT16, B, L, [0x0201], 0x0102),
    ("int32 ABCD", DataType.INT32, B, B, [0xFFFF, 0xFFFD], -3),
    ("int32 CDAB", DataType.INT32, L, B, [0x5678, 0x1234], 0x12345678),
    ("uint32 CDAB", DataType.UINT32, L, B, [0x0000, 0x8000], 0x80000000),
    ("uint32 BADC", DataType.UINT32, B, L, [0x3412, 0x7856], 0x12345678),
    ("int64 ABCD", DataType.INT64, B, B, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], -1),
    (
        "uint64 ABCD exact",
        DataType.UINT64,
        B,
        B,
        [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF],
        2**64 - 1,
    ),
    (
        "uint64 little words",
        DataType.UINT64,
        L,
        B,
        [0x0004, 0x0003, 0x0002, 0x0001],
        0x0001_0002_0003_0004,
    ),
    ("int64 DCBA", DataType.INT64, L, L, [0x0400, 0x0300, 0x0200, 0x0100], 0x0001_0002_0003_0004),
    ("float64 ABCD", DataType.FLOAT64, B, B, [0x4059, 0x0000, 0x0000, 0x0000], 100.0),
    ("float64 CDAB", DataType.FLOAT64, L, B, [0x0000, 0x0000, 0x0000, 0x4059], 100.0),
]


@pytest.mark.parametrize(
    ("dtype", "wo", "bo", "regs", "raw"), [c[1:] for c in DECODE], ids=[c[0] for c in DECODE]
)
def test_decode_and_round_trip(dtype, wo, bo, regs, raw):
    p = pt(dtype, wo, bo)
    got = decode_raw(p, regs)
    assert got == raw and type(got) is type(raw)
    assert encode_registers(p, raw) == regs
    r = decode_point(p, [0xAAAA, *regs, 0xBBBB], 1)
    assert r.quality is Quality.GOOD and r.value == raw


def test_64bit_integers_stay_exact_ints():
    p = pt(DataType.UINT64)
    big = 2**63 + 12345
    r = decode_point(p, encode_registers(p, big), 0)
    assert r.value == big and isinstance(r.value, int)


@pytest.mark.parametrize(
    ("regs", "bit", "expected"),
    [
        ([0b1000], 3, True),
        ([0b1000], 2, False),
        ([0x8000], 15, True),
        ([0x0000], None, False),
        ([0x0100], None, True),
    ],
)
def test_bit_in_register(regs, bit, expected):
    r = decode_point(pt(DataType.BOOL, bit=bit), regs, 0)
    assert r.value is expected


def test_coils_and_discrete_inputs():
    block = [False, True, False]
    for table in (Table.COIL, Table.DISCRETE_INPUT):
        r = decode_point(pt(DataType.BOOL, table=table), block, 1)
        assert r.value is True and r.quality is Quality.GOOD


SCALE = [
    # (id, dtype, regs, scale, offset, vmin, vmax, value, quality, reason)
    (
        "INVT freq 0.01 Hz [S73]",
        DataType.UINT16,
        [5000],
        0.01,
        0.0,
        None,
        None,
        50.0,
        Quality.GOOD,
        None,
    ),
    ("offset", DataType.INT16, [0xFFF6], 0.1, 20.0, None, None, 19.0, Quality.GOOD, None),
    ("range low", DataType.INT16, [0xFFF6], 1.0, 0.0, 0.0, None, None, Quality.BAD_VALUE, "range"),
    ("range high", DataType.UINT16, [101], 1.0, 0.0, None, 100.0, None, Quality.BAD_VALUE, "range"),
    (
        "edge of range is valid",
        DataType.UINT16,
        [100],
        1.0,
        0.0,
        0.0,
        100.0,
        100,
        Quality.GOOD,
        None,
    ),
    (
        "nan",
        DataType.FLOAT32,
        [0x7FC0, 0x0000],
        1.0,
        0.0,
        None,
        None,
        None,
        Quality.BAD_VALUE,
        "nan",
    ),
    (
        "+inf",
        DataType.FLOAT32,
        [0x7F80, 0x0000],
        1.0,
        0.0,
        None,
        None,
        None,
        Quality.BAD_VALUE,
        "inf",
    ),
    (
        "-inf scaled",
        DataType.FLOAT32,
        [0xFF80, 0x0000],
        2.0,
        0.0,
        None,
        None,
        None,
        Quality.BAD_VALUE,
        "-inf",
    ),
]


@pytest.mark.parametrize(
    ("dtype", "regs", "scale", "offset", "vmin", "vmax", "value", "quality", "reason"),
    [c[1:] for c in SCALE],
    ids=[c[0] for c in SCALE],
)
def test_scale_offset_and_checks(dtype, regs, scale, offset, vmin, vmax, value, quality, reason):
    p = pt(dtype, scale=scale, offset=offset, valid_min=vmin, valid_max=vmax)
    r = decode_point(p, regs, 0)
    assert (r.quality, r.reason) == (quality, reason)
    if value is None:
        assert r.value is None
    else:
        assert r.value == pytest.approx(value)


def test_a_scaled_integer_that_is_exactly_zero_is_plus_zero():
    # 3 × 0.3 − 0.9 is −1.1e−16 in doubles; the engineering value is exactly 0, sent as 0.0
    r = decode_point(pt(DataType.UINT16, scale=0.3, offset=-0.9), [3], 0)
    assert repr(r.value) == "0.0"


def test_encode_applies_inverse_scale_and_rounds():
    p = pt(DataType.UINT16, scale=0.01)  # INVT 2001H frequency setpoint, 0.01 Hz [S70]
    assert encode_registers(p, 42.5) == [4250]
    p = pt(DataType.FLOAT32, L, scale=0.5, offset=1.0)
    regs = encode_registers(p, 3.0)
    assert struct.unpack(">f", struct.pack(">HH", regs[1], regs[0]))[0] == 4.0


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (DataType.UINT16, -1),
        (DataType.UINT16, 65536),
        (DataType.INT16, 40000),
        (DataType.FLOAT32, math.nan),
        (DataType.INT32, None),
        (DataType.FLOAT32, 1e39),
    ],
)
def test_encode_refuses_what_does_not_fit(dtype, value):
    with pytest.raises(ValueError):
        encode_registers(pt(dtype), value)


def test_encode_bit_read_modify_write():
    p = pt(DataType.BOOL, bit=4)
    assert encode_bit(p, 0x8001, True) == 0x8011
    assert encode_bit(p, 0xFFFF, False) == 0xFFEF
    assert encode_bit(pt(DataType.BOOL), 0x1234, True) == 1
    with pytest.raises(ValueError):
        encode_registers(p, True)


def test_bools_are_not_scaled():
    assert to_engineering(pt(DataType.BOOL, scale=10.0), True).value is True
