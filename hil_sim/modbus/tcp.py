"""Modbus TCP slave server (Modbus Messaging on TCP/IP Implementation Guide V1.0b, "MMTCP").

The MBAP header (MMTCP §3.1.3) is transaction id (2 bytes, echoed), protocol id (2, must be 0),
length (2, unit id + PDU, so 2..254 for the 260-byte maximum ADU) and unit id (1). Requests may
arrive pipelined in one TCP segment or split over several; each connection answers its requests
in order; connections are served concurrently.

Unit ids: a request for a unit id with no :class:`~hil_sim.modbus.slave.Slave` answers exception
0x0B "gateway target device failed to respond" (MAP V1.1b3 §7), which is what a Modbus TCP/RTU
gateway answers when the addressed serial device is absent; unit id 0 is not a broadcast on TCP.
A frame with a non-zero protocol id is dropped (counted as ``bad_mbap``); an impossible length
closes the connection (counted as ``bad_mbap``), since the stream cannot be resynchronised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Mapping

from hil_sim.modbus.counters import RequestCounters
from hil_sim.modbus.faults import Faults
from hil_sim.modbus.pdu import exception_response, handle_request
from hil_sim.modbus.slave import GATEWAY_TARGET_FAILED, Slave

log = logging.getLogger(__name__)

MBAP = struct.Struct(">HHHB")
MAX_MBAP_LENGTH = 254  # MMTCP §3.1.3: ADU max 260 bytes = 6 header bytes + 254


class ModbusTcpServer:
    """Serve ``slaves`` (unit id -> slave) on ``host:port``.

    Args:
        host: address to listen on (tests use 127.0.0.1 or ::1 only).
        port: TCP port; 0 picks a free one, read it from :attr:`port` after :meth:`start`.
        slaves: unit id -> :class:`Slave`; looked up per request, so it may change at run time.
        faults: shared fault settings (silent, delay_s, exceptions, late_reply_s, wrong_tid,
            reset, gateway_error, ``Faults.single_client``, ``Faults.once_per_connection``).
        counters: counts every complete request as ``("tcp", unit_id, function_code)``.
        idle_timeout_s: close a connection that sent nothing for this long (s).
        write_timeout_s: give up on a client that does not take our response within this (s).
    """

    def __init__(
        self,
        host: str,
        port: int,
        slaves: Mapping[int, Slave],
        faults: Faults,
        counters: RequestCounters,
        *,
        idle_timeout_s: float = 300.0,
        write_timeout_s: float = 5.0,
    ) -> None:
        self.host = host
        self._port = port
        self.slaves = slaves
        self.faults = faults
        self.counters = counters
        self.idle_timeout_s = idle_timeout_s
        self.write_timeout_s = write_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._late: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        """The TCP port actually listened on (after :meth:`start`)."""
        return self._port

    @property
    def connections(self) -> int:
        """Number of open client connections."""
        return len(self._connections)

    async def start(self) -> None:
        """Start listening. Raises OSError if the address is taken."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = await asyncio.start_server(self._accept, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("Modbus TCP server on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for their tasks to end."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = [*self._connections, *self._late]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    # --- connections ----------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.faults.single_client and self._connections:
            self.counters.count_error("tcp", "refused_client")
            writer.close()
            return
        task = asyncio.get_running_loop().create_task(
            self._serve(reader, writer), name=f"modbus-tcp-{writer.get_extra_info('peername')}"
        )
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        try:
            while True:
                async with asyncio.timeout(self.idle_timeout_s):
                    data = await reader.read(4096)
                if not data:
                    return
                buf += data
                while len(buf) >= MBAP.size:
                    tid, protocol, length, unit_id = MBAP.unpack_from(buf)
                    if not 2 <= length <= MAX_MBAP_LENGTH:
                        self.counters.count_error("tcp", "bad_mbap")
                        return
                    if len(buf) < 6 + length:
                        break
                    pdu = bytes(buf[MBAP.size : 6 + length])
                    del buf[: 6 + length]
                    if protocol != 0:
                        self.counters.count_error("tcp", "bad_mbap")
                        continue
                    await self._answer(writer, tid, unit_id, pdu)
                    if self.faults.once_per_connection:
                        self.counters.count_error("tcp", "closed_after_one")
                        return
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _answer(
        self, writer: asyncio.StreamWriter, tid: int, unit_id: int, pdu: bytes
    ) -> None:
        fc = pdu[0]
        self.counters.count("tcp", unit_id, fc)
        uf = self.faults.peek(unit_id)
        if uf is not None and uf.silent:
            return
        if uf is not None and uf.reset > 0 and self.faults.rng.random() < uf.reset:
            self.counters.count_error("tcp", "reset")
            writer.transport.abort()
            return
        slave = self.slaves.get(unit_id)
        if uf is not None and uf.gateway_error:
            response = exception_response(fc, uf.gateway_error)
        elif slave is None:
            response = exception_response(fc, GATEWAY_TARGET_FAILED)
        else:
            response = handle_request(slave, pdu, uf)
        if uf is not None and uf.wrong_tid:
            tid = (tid + 1) & 0xFFFF
        frame = MBAP.pack(tid, 0, len(response) + 1, unit_id) + response
        if uf is not None and uf.late_reply_s > 0:
            task = asyncio.get_running_loop().create_task(
                self._send_later(writer, frame, uf.late_reply_s), name="modbus-tcp-late-reply"
            )
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return
        if uf is not None and uf.delay_s > 0:
            await asyncio.sleep(uf.delay_s)
        await self._send(writer, frame)

    async def _send(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        if writer.is_closing():
            return
        writer.write(frame)
        async with asyncio.timeout(self.write_timeout_s):
            await writer.drain()

    async def _send_later(self, writer: asyncio.StreamWriter, frame: bytes, after: float) -> None:
        await asyncio.sleep(after)
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self._send(writer, frame)
