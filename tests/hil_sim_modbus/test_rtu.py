"""ModbusRtuServer on a pty against pymodbus's AsyncModbusSerialClient and a raw pty master.

Note: the clients open the pty with parity "N": Linux ptys reject PARENB (tcsetattr EINVAL once
the other attributes are already set; pyserial issue #196). The server's own parity setting
only drives its pacing.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from hil_sim.modbus import Faults, ModbusRtuServer, RequestCounters
from hil_sim.modbus.rtu_framing import crc_bytes, crc_ok

from .conftest import make_bank

H = bytes.fromhex


def _adu(hexstr: str) -> bytes:
    return H(hexstr) + crc_bytes(H(hexstr))


async def _client(server: ModbusRtuServer, timeout_s: float = 1.0) -> AsyncModbusSerialClient:
    client = AsyncModbusSerialClient(
        server.link_path, baudrate=server.baudrate, parity="N", timeout=timeout_s, retries=0
    )
    assert await client.connect()
    return client


async def test_every_function_code_and_unit_fan_out(rtu_server, banks, counters) -> None:
    client = await _client(rtu_server)
    try:
        for unit in (1, 2):
            rr = await client.read_holding_registers(0, count=3, device_id=unit)
            assert rr.registers == [1000 * unit, 1000 * unit + 1, 1000 * unit + 2]
        rr = await client.read_input_registers(100, count=5, device_id=2)
        assert rr.registers == [100, 101, 102, 103, 104]
        rr = await client.read_discrete_inputs(0, count=4, device_id=1)
        assert rr.bits[:4] == [False, True, False, True]
        assert not (await client.write_coil(2, True, device_id=2)).isError()
        assert not (await client.write_coils(4, [True, True], device_id=2)).isError()
        rr = await client.read_coils(0, count=8, device_id=2)
        assert rr.bits[:8] == [False, False, True, False, True, True, False, False]
        assert not (await client.write_register(9, 42, device_id=1)).isError()
        assert not (await client.write_registers(30, [7, 8], device_id=1)).isError()
        assert banks[1].get("holding_register", 9, 1) == [42]
        assert banks[1].get("holding_register", 30, 2) == [7, 8]
        assert banks[2].get("holding_register", 9, 1) == [2009]
        assert banks[1].get("coil", 0, 8) == [False] * 8
        rr = await client.read_holding_registers(199, count=2, device_id=1)
        assert rr.isError() and rr.exception_code == 2
    finally:
        client.close()
    assert counters.snapshot() == {
        "rtu": {1: {3: 2, 2: 1, 6: 1, 16: 1}, 2: {3: 1, 4: 1, 5: 1, 15: 1, 1: 1}}
    }
    assert counters.errors() == {}


async def test_pacing_of_a_100_register_read_at_9600(tmp_path) -> None:
    server = ModbusRtuServer(
        str(tmp_path / "tty9600"), {1: make_bank(1)}, Faults(), RequestCounters(), baudrate=9600
    )
    await server.start()
    client = await _client(server)
    try:
        started = time.monotonic()
        rr = await client.read_holding_registers(0, count=100, device_id=1)
        elapsed = time.monotonic() - started
    finally:
        client.close()
        await server.stop()
    assert rr.registers == [1000 + a for a in range(100)]
    wire = (8 + 5 + 200) * 11 / 9600  # request + response ADU, 8E1 = 11 bits per character
    assert wire < elapsed < wire + 0.3


async def test_silent_unit_times_out_while_other_unit_answers(rtu_server, faults) -> None:
    faults.unit(2).silent = True
    client = await _client(rtu_server, timeout_s=0.3)
    try:
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(0, count=1, device_id=2)
        rr = await client.read_holding_registers(0, count=1, device_id=1)
        assert rr.registers == [1000]
    finally:
        client.close()


async def test_faulted_address_inside_a_block(rtu_server, faults) -> None:
    faults.unit(1).exceptions[("input_register", 120)] = 2
    client = await _client(rtu_server)
    try:
        rr = await client.read_input_registers(110, count=20, device_id=1)
        assert rr.isError() and rr.exception_code == 2
        rr = await client.read_input_registers(110, count=10, device_id=1)
        assert rr.registers == list(range(110, 120))
        rr = await client.read_input_registers(110, count=20, device_id=2)
        assert rr.registers == list(range(110, 130))
    finally:
        client.close()


async def test_delay(rtu_server, faults) -> None:
    faults.unit(1).delay_s = 0.2
    client = await _client(rtu_server)
    try:
        started = time.monotonic()
        assert (await client.read_coils(0, count=1, device_id=1)).bits[0] is False
        assert time.monotonic() - started >= 0.2
    finally:
        client.close()


async def test_broadcast_writes_all_units_without_answer(rtu_server, raw_serial, banks) -> None:
    raw_serial.write(_adu("00 06 0003 0777"))
    assert await raw_serial.read(wait_s=0.2) == []
    assert banks[1].get("holding_register", 3, 1) == [0x777]
    assert banks[2].get("holding_register", 3, 1) == [0x777]
    raw_serial.write(_adu("00 03 0003 0001"))  # a broadcast read is ignored
    assert await raw_serial.read(wait_s=0.2) == []


async def test_bad_crc_other_unit_and_unknown_function(rtu_server, raw_serial, counters) -> None:
    bad = bytearray(_adu("01 03 0000 0001"))
    bad[-2] ^= 0x55
    raw_serial.write(bytes(bad))
    assert await raw_serial.read(wait_s=0.2) == []
    raw_serial.write(_adu("07 03 0000 0001"))  # unit 7 is another device on the bus
    assert await raw_serial.read(wait_s=0.2) == []
    raw_serial.write(_adu("01 07"))  # read exception status: unsupported, ends by t3.5
    assert b"".join(c for _, c in await raw_serial.read()) == _adu("01 87 01")
    raw_serial.write(_adu("02 03 0000 0001"))
    assert b"".join(c for _, c in await raw_serial.read()) == _adu("02 03 02 07D0")
    assert counters.errors() == {"rtu": {"bad_crc": 1}}
    assert counters.snapshot() == {"rtu": {7: {3: 1}, 1: {7: 1}, 2: {3: 1}}}


async def test_echo_garbage_and_corrupt_crc(rtu_server, raw_serial, faults) -> None:
    request = _adu("01 03 0000 0001")
    answer = _adu("01 03 02 03E8")
    faults.unit(1).echo = True
    raw_serial.write(request)
    assert b"".join(c for _, c in await raw_serial.read()) == request + answer
    faults.unit(1).echo = False
    faults.unit(1).garbage_before = b"\x00\xff"
    raw_serial.write(request)
    assert b"".join(c for _, c in await raw_serial.read()) == b"\x00\xff" + answer
    faults.unit(1).garbage_before = b""
    faults.unit(1).corrupt_crc = 1.0
    raw_serial.write(request)
    got = b"".join(c for _, c in await raw_serial.read())
    assert got[:-2] == answer[:-2] and not crc_ok(got)


async def test_fragment_gap(rtu_server, raw_serial, faults) -> None:
    faults.unit(1).fragment_gap_s = 0.1
    raw_serial.write(_adu("01 03 0000 0004"))
    chunks = await raw_serial.read(idle=0.3)
    assert b"".join(c for _, c in chunks) == _adu("01 03 08 03E8 03E9 03EA 03EB")
    assert len(chunks) == 2 and chunks[1][0] - chunks[0][0] >= 0.09


async def test_late_reply_arrives_after_the_next_answer(rtu_server, raw_serial, faults) -> None:
    faults.unit(1).late_reply_s = 0.3
    raw_serial.write(_adu("01 03 0000 0001"))
    assert await raw_serial.read(wait_s=0.15) == []
    raw_serial.write(_adu("02 03 0000 0001"))
    first = b"".join(c for _, c in await raw_serial.read(wait_s=0.1))
    assert first == _adu("02 03 02 07D0")
    late = b"".join(c for _, c in await raw_serial.read(wait_s=0.5))
    assert late == _adu("01 03 02 03E8")


async def test_link_lifecycle(tmp_path) -> None:
    link = tmp_path / "ttyV0"
    os.symlink("/dev/pts/does-not-exist", link)  # stale link from a crashed run
    server = ModbusRtuServer(str(link), {}, Faults(), RequestCounters())
    await server.start()
    assert os.readlink(link) == server.pty_name
    await server.stop()
    assert not link.is_symlink() and not link.exists()
    link.write_text("not a link")
    with pytest.raises(FileExistsError):
        await ModbusRtuServer(str(link), {}, Faults(), RequestCounters()).start()
    assert link.read_text() == "not a link"


async def test_pymodbus_client_survives_server_restart_of_link(tmp_path) -> None:
    """A fresh server on the same link path serves a new client (no stale state in the pty)."""
    link = str(tmp_path / "ttyV1")
    for value in (1, 2):
        bank = make_bank(value)
        server = ModbusRtuServer(link, {5: bank}, Faults(), RequestCounters())
        await server.start()
        client = await _client(server)
        try:
            rr = await client.read_holding_registers(1, count=1, device_id=5)
            assert rr.registers == [1000 * value + 1]
        finally:
            client.close()
            await server.stop()
        await asyncio.sleep(0)
