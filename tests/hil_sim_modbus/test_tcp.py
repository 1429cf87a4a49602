"""ModbusTcpServer against pymodbus's own AsyncModbusTcpClient and a raw socket master."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from hil_sim.modbus import Faults, ModbusTcpServer, RequestCounters

from .conftest import make_bank

H = bytes.fromhex


async def _client(server: ModbusTcpServer, timeout_s: float = 1.0) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=timeout_s, retries=0)
    assert await client.connect()
    return client


def _mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


async def _read_adu(reader: asyncio.StreamReader, wait_s: float = 1.0) -> tuple[int, int, bytes]:
    head = await asyncio.wait_for(reader.readexactly(7), wait_s)
    tid, protocol, length, unit = struct.unpack(">HHHB", head)
    assert protocol == 0
    pdu = await asyncio.wait_for(reader.readexactly(length - 1), wait_s)
    return tid, unit, pdu


async def test_every_function_code(tcp_server, banks) -> None:
    client = await _client(tcp_server)
    try:
        rr = await client.read_holding_registers(0, count=3, device_id=2)
        assert rr.registers == [2000, 2001, 2002]
        rr = await client.read_input_registers(100, count=50, device_id=1)
        assert rr.registers == list(range(100, 150))
        rr = await client.read_discrete_inputs(0, count=16, device_id=1)
        assert rr.bits[:16] == [a % 2 == 1 for a in range(16)]
        assert not (await client.write_coil(5, True, device_id=1)).isError()
        assert not (await client.write_coils(8, [True, False, True], device_id=1)).isError()
        rr = await client.read_coils(0, count=12, device_id=1)
        assert rr.bits[:12] == [False] * 5 + [True, False, False, True, False, True, False]
        assert not (await client.write_register(7, 0xBEEF, device_id=2)).isError()
        assert not (await client.write_registers(20, [1, 2, 3], device_id=2)).isError()
        rr = await client.read_holding_registers(7, count=1, device_id=2)
        assert rr.registers == [0xBEEF]
        assert banks[2].get("holding_register", 20, 3) == [1, 2, 3]
        assert banks[1].get("holding_register", 20, 3) == [1020, 1021, 1022]  # other unit intact
    finally:
        client.close()


async def test_exceptions_and_counters(tcp_server, faults, counters) -> None:
    faults.unit(1).exceptions[("holding_register", 10)] = 2
    client = await _client(tcp_server)
    try:
        rr = await client.read_holding_registers(5, count=10, device_id=1)
        assert rr.isError() and rr.exception_code == 2
        rr = await client.read_holding_registers(0, count=10, device_id=1)
        assert rr.registers == [1000 + a for a in range(10)]
        rr = await client.read_holding_registers(11, count=10, device_id=1)
        assert not rr.isError()
        rr = await client.read_holding_registers(195, count=10, device_id=1)  # 200.. unmapped
        assert rr.isError() and rr.exception_code == 2
        rr = await client.write_register(0, 1, device_id=9)  # no such unit
        assert rr.isError() and rr.exception_code == 0x0B
        rr = await client.read_input_registers(0, count=1, device_id=2)
        assert rr.isError() and rr.exception_code == 2
    finally:
        client.close()
    assert counters.snapshot() == {"tcp": {1: {3: 4}, 9: {6: 1}, 2: {4: 1}}}
    counters.reset()
    assert counters.snapshot() == {}


async def test_quantity_out_of_range_and_unknown_function(tcp_server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_server.port)
    try:
        cases = [
            (H("03 0000 007E"), H("83 03")),
            (H("01 0000 07D1"), H("81 03")),
            (H("10 0000 007C F8") + bytes(246), H("90 03")),  # 124 regs cannot fit 260 B
            (H("0F 0000 07B1 F7") + bytes(247), H("8F 03")),
            (H("11"), H("91 01")),  # report server id: not supported
            (H("03 0000 007D"), H("03 FA") + struct.pack(">125H", *range(1000, 1125))),
        ]
        for tid, (request, response) in enumerate(cases, start=100):
            writer.write(_mbap(tid, 1, request))
            assert await _read_adu(reader) == (tid, 1, response)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_pipelined_and_split_requests(tcp_server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_server.port)
    try:
        burst = b"".join(_mbap(tid, 1, H("03") + struct.pack(">HH", tid, 1)) for tid in (1, 2, 3))
        writer.write(burst)  # three requests in one segment
        for tid in (1, 2, 3):
            assert await _read_adu(reader) == (tid, 1, H("03 02") + struct.pack(">H", 1000 + tid))
        request = _mbap(0xABCD, 2, H("04 0064 0001"))
        for piece in (request[:3], request[3:8], request[8:]):  # split across segments
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        assert await _read_adu(reader) == (0xABCD, 2, H("04 02 0064"))
    finally:
        writer.close()
        await writer.wait_closed()


async def test_bad_protocol_id_is_dropped(tcp_server, counters) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_server.port)
    try:
        bad = struct.pack(">HHHB", 1, 7, 6, 1) + H("03 0000 0001")
        writer.write(bad + _mbap(2, 1, H("03 0000 0001")))
        assert await _read_adu(reader) == (2, 1, H("03 02 03E8"))
        writer.write(struct.pack(">HHHB", 3, 0, 900, 1))  # impossible length: connection closed
        assert await asyncio.wait_for(reader.read(), 1.0) == b""
    finally:
        writer.close()
        await writer.wait_closed()
    assert counters.errors() == {"tcp": {"bad_mbap": 2}}


async def test_concurrent_clients(tcp_server, counters) -> None:
    clients = [await _client(tcp_server) for _ in range(5)]
    try:

        async def poll(client: AsyncModbusTcpClient, unit: int) -> list[int]:
            values = []
            for _ in range(10):
                rr = await client.read_holding_registers(unit, count=1, device_id=1 + unit % 2)
                values += rr.registers
            return values

        results = await asyncio.gather(*(poll(c, i) for i, c in enumerate(clients)))
    finally:
        for client in clients:
            client.close()
    for i, values in enumerate(results):
        assert values == [1000 * (1 + i % 2) + i] * 10
    assert counters.snapshot() == {"tcp": {1: {3: 30}, 2: {3: 20}}}


async def test_silent_and_delayed_units(tcp_server, faults) -> None:
    faults.unit(2).silent = True
    faults.unit(1).delay_s = 0.2
    client = await _client(tcp_server, timeout_s=0.4)
    try:
        started = time.monotonic()
        rr = await client.read_holding_registers(0, count=1, device_id=1)
        assert rr.registers == [1000]
        assert time.monotonic() - started >= 0.2
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(0, count=1, device_id=2)
    finally:
        client.close()
    faults.clear()
    client = await _client(tcp_server)
    try:
        assert (await client.read_holding_registers(0, count=1, device_id=2)).registers == [2000]
    finally:
        client.close()


async def test_wrong_tid_and_late_reply(tcp_server, faults) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_server.port)
    try:
        faults.unit(1).wrong_tid = True
        writer.write(_mbap(0xFFFF, 1, H("03 0000 0001")))
        assert await _read_adu(reader) == (0, 1, H("03 02 03E8"))
        faults.unit(1).wrong_tid = False
        faults.unit(1).late_reply_s = 0.3
        writer.write(_mbap(5, 1, H("03 0000 0001")))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(1), 0.15)
        faults.unit(1).late_reply_s = 0.0
        writer.write(_mbap(6, 1, H("03 0001 0001")))  # served at once, before the late one
        assert await _read_adu(reader) == (6, 1, H("03 02 03E9"))
        assert await _read_adu(reader) == (5, 1, H("03 02 03E8"))
    finally:
        writer.close()
        await writer.wait_closed()


async def test_single_client_refuses_second_connection(tcp_server, faults, counters) -> None:
    faults.single_client = True
    first = await _client(tcp_server)
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_server.port)
    try:
        assert await asyncio.wait_for(reader.read(), 1.0) == b""
        assert (await first.read_holding_registers(0, count=1, device_id=1)).registers == [1000]
    finally:
        writer.close()
        await writer.wait_closed()
        first.close()
    assert counters.errors() == {"tcp": {"refused_client": 1}}


async def test_stop_closes_open_connections_and_ipv6_loopback() -> None:
    server = ModbusTcpServer("::1", 0, {1: make_bank(1)}, Faults(), RequestCounters())
    await server.start()
    reader, writer = await asyncio.open_connection("::1", server.port)
    writer.write(_mbap(1, 1, H("03 0000 0001")))
    assert await _read_adu(reader) == (1, 1, H("03 02 03E8"))
    await server.stop()
    assert await asyncio.wait_for(reader.read(), 1.0) == b""
    writer.close()
    await writer.wait_closed()
    assert server.connections == 0
