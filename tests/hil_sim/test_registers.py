"""Register encoding tables and the RegisterMap against a real RegisterBank."""

from __future__ import annotations

import pytest

from hil_sim.devices.registers import LimitedBank, MapPoint, RegisterMap, decode, encode
from hil_sim.modbus.slave import ModbusError, RegisterBank

HR = "holding_register"


@pytest.mark.parametrize(
    ("point", "value", "registers"),
    [
        # The Chinese mag-meter example: 00 00 C1 48 word-swapped is −12.5 ([S55]).
        (MapPoint("f", HR, 0, "float32", word_order="little"), -12.5, [0x0000, 0xC148]),
        (MapPoint("f", HR, 0, "float32"), -12.5, [0xC148, 0x0000]),
        (MapPoint("f", HR, 0, "float32", byte_order="little"), 1600.0, [0xC844, 0x0000]),
        (MapPoint("i", HR, 0, "int16", scale=0.0001), -0.0123, [0xFF85]),
        (MapPoint("i", HR, 0, "int32", word_order="little"), -2, [0xFFFE, 0xFFFF]),
        (MapPoint("u", HR, 0, "uint32", scale=0.01), 1234.56, [0x0001, 0xE240]),
        (MapPoint("u", HR, 0, "uint64"), 2**40 + 5, [0, 0x0100, 0, 5]),
        (MapPoint("d", HR, 0, "float64"), 1.0, [0x3FF0, 0, 0, 0]),
        (MapPoint("s", HR, 0, "uint16"), 70000, [0xFFFF]),  # saturates like a device
    ],
)
def test_encode_table(point: MapPoint, value: float, registers: list[int]) -> None:
    assert encode(point, value) == registers


def test_decode_inverts_encode_after_quantisation() -> None:
    p = MapPoint("p", HR, 0, "int16", scale=0.0001)
    assert decode(p, encode(p, 0.40004)) == 4000 * 0.0001
    q = MapPoint("q", HR, 0, "float32", word_order="little")
    assert decode(q, encode(q, 8.25)) == 8.25


def test_register_map_bits_blocks_and_writes() -> None:
    bank = RegisterBank(1)
    written: list[tuple[str, float]] = []

    def on_write(point: MapPoint, value: float) -> None:
        if value > 1.0:
            raise ModbusError(3)
        written.append((point.name, value))

    rmap = RegisterMap(
        bank,
        [
            MapPoint("a", HR, 10, "bool", bit=0),
            MapPoint("b", HR, 10, "bool", bit=3),
            MapPoint("sp", HR, 12, "uint16", scale=0.01, writable=True),
            MapPoint("c", "coil", 0, "bool", writable=True),
        ],
        blocks=[(HR, 8, 15)],
        on_write=on_write,
    )
    rmap.publish({"a": True, "b": True, "sp": 0.4})
    assert bank.read_registers(HR, 8, 8) == [0, 0, 0b1001, 0, 40, 0, 0, 0]
    rmap.publish({"a": False})
    assert rmap.served() == {"a": False, "b": True, "sp": 0.4, "c": False}
    with pytest.raises(ModbusError) as exc:
        bank.read_registers(HR, 16, 1)  # outside the block
    assert exc.value.code == 2
    with pytest.raises(ModbusError):
        bank.write_registers(10, [1])  # read-only
    bank.write_registers(12, [45])
    assert written == [("sp", 0.45)]
    with pytest.raises(ModbusError) as exc:
        bank.write_registers(12, [500])
    assert exc.value.code == 3
    rmap.stuck.add("sp")
    rmap.publish({"sp": 0.1})
    assert rmap.served()["sp"] == 5.0  # stuck at the last register value


def test_limited_bank_refuses_long_reads() -> None:
    bank = LimitedBank(11, 16)
    bank.define(HR, 0, [0] * 20)
    assert len(bank.read_registers(HR, 0, 16)) == 16
    with pytest.raises(ModbusError) as exc:
        bank.read_registers(HR, 0, 17)
    assert exc.value.code == 3
