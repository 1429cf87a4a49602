"""Shared fixtures for driver tests: a real hil_sim Modbus slave bank with every data type."""

from __future__ import annotations

from drivers.modbus.codec import encode_registers
from drivers.specs import DataType, ModbusPoint, Order, Table
from tests.leaks import no_leaks  # noqa: F401  (autouse: fails tests that leak tasks or threads)

HR, IR, CO, DI = Table.HOLDING_REGISTER, Table.INPUT_REGISTER, Table.COIL, Table.DISCRETE_INPUT
B, L = Order.BIG, Order.LITTLE


def mp(name, unit, table, address, dtype, wo=B, bo=B, **kw):
    """A writable-by-default Modbus point on device ``dev<unit>``."""
    kw.setdefault("writable", table in (HR, CO))
    return ModbusPoint(
        name=name,
        device=f"dev{unit}",
        unit_id=unit,
        table=table,
        address=address,
        dtype=dtype,
        word_order=wo,
        byte_order=bo,
        **kw,
    )


def typed_points(unit: int) -> list[ModbusPoint]:
    """Every data type and order, packed in holding registers 0..27, plus input registers,
    coils and discrete inputs."""
    u = f"u{unit}."
    return [
        mp(u + "f32_abcd", unit, HR, 0, DataType.FLOAT32),
        mp(u + "f32_cdab", unit, HR, 2, DataType.FLOAT32, L),
        mp(u + "i16", unit, HR, 4, DataType.INT16),
        mp(u + "u16_scaled", unit, HR, 5, DataType.UINT16, scale=0.01),
        mp(u + "i32_badc", unit, HR, 6, DataType.INT32, B, L),
        mp(u + "u32_dcba", unit, HR, 8, DataType.UINT32, L, L),
        mp(u + "i64", unit, HR, 10, DataType.INT64),
        mp(u + "u64_cdab", unit, HR, 14, DataType.UINT64, L),
        mp(u + "f64_cdab", unit, HR, 18, DataType.FLOAT64, L),
        mp(u + "bit3", unit, HR, 22, DataType.BOOL, bit=3),
        mp(u + "bit5", unit, HR, 22, DataType.BOOL, bit=5),
        mp(u + "ir_f32", unit, IR, 0, DataType.FLOAT32, L),
        mp(u + "coil0", unit, CO, 0, DataType.BOOL),
        mp(u + "coil7", unit, CO, 7, DataType.BOOL),
        mp(u + "di1", unit, DI, 1, DataType.BOOL),
    ]


VALUES = {
    "f32_abcd": 1600.0,
    "f32_cdab": -12.5,
    "i16": -300,
    "u16_scaled": 42.5,
    "i32_badc": -123456,
    "u32_dcba": 4000000000,
    "i64": -(2**62) - 7,
    "u64_cdab": 2**64 - 3,
    "f64_cdab": 1.0e-3,
    "bit3": True,
    "bit5": False,
    "ir_f32": 3.25,
    "coil0": True,
    "coil7": False,
    "di1": True,
}


def make_bank(unit: int):
    """A RegisterBank holding :data:`VALUES` at the addresses of :func:`typed_points`."""
    from hil_sim.modbus import RegisterBank

    bank = RegisterBank(unit)
    regs = [0] * 24
    for p in typed_points(unit):
        key = p.name.split(".", 1)[1]
        if p.table is HR and p.dtype is not DataType.BOOL:
            regs[p.address : p.address + p.width] = encode_registers(p, VALUES[key])
    regs[22] = 0b1000  # bit3 set, bit5 clear
    bank.define("holding_register", 0, regs, writable=True)
    ir = encode_registers(mp("x", unit, HR, 0, DataType.FLOAT32, L), VALUES["ir_f32"])
    bank.define("input_register", 0, ir)
    bank.define("coil", 0, [True] + [False] * 7, writable=True)
    bank.define("discrete_input", 0, [False, True, False])
    return bank
