"""Every word/byte order of 32- and 64-bit values, packed side by side in one coalesced block and
read over Modbus TCP: each point is decoded from its own slice, never by reordering the block;
64-bit integers stay exact Python ints."""

from __future__ import annotations

import itertools

import pytest

from agent.core.model import Quality
from drivers import create
from drivers.modbus.codec import encode_registers
from drivers.specs import DataType, Order
from hil_sim.modbus import RegisterBank
from tests.drivers.conftest import HR, mp
from tests.faults_field.conftest import tcp_spec

VALUES = {
    DataType.INT32: -123456789,
    DataType.UINT32: 0xDEADBEEF,
    DataType.FLOAT32: -12.5,
    DataType.INT64: -(2**63) + 12345,
    DataType.UINT64: 2**64 - 2,  # not representable as a float: must stay exact
    DataType.FLOAT64: 3.141592653589793,
}
ORDERS = list(itertools.product(Order, Order))  # (word, byte): ABCD, BADC, CDAB, DCBA


def points():
    out, address = [], 0
    for dtype, (wo, bo) in itertools.product(VALUES, ORDERS):
        out.append(mp(f"{dtype}_{wo}_{bo}", 9, HR, address, dtype, wo, bo))
        address += dtype.registers
    return out


async def test_all_orders_in_one_block(tcp_server):
    pts = points()
    regs: list[int] = []
    for p in pts:
        regs += encode_registers(p, VALUES[p.dtype])
    bank = RegisterBank(9)
    bank.define("holding_register", 0, regs)
    tcp_server.slaves[9] = bank
    drv = create(tcp_spec(tcp_server))
    await drv.connect()
    try:
        plan = drv.plan(pts)
        assert plan.request_count == 1  # 72 registers, one coalesced read
        for p, r in zip(pts, await drv.read(plan), strict=True):
            assert r.quality is Quality.GOOD
            expected = VALUES[p.dtype]
            if isinstance(expected, int):
                assert type(r.value) is int and r.value == expected, p.name
            else:
                assert r.value == pytest.approx(expected, rel=1e-7), p.name
    finally:
        await drv.close()
