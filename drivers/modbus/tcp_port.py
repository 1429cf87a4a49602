"""Our own Modbus TCP master on one socket (asyncio Protocol: no reader task to leak).

MBAP header (Modbus Messaging on TCP/IP Implementation Guide V1.0b "MMTCP" §3.1.3): transaction
id (2 bytes, echoed by the server), protocol id (2, always 0), length (2: unit id + PDU, 2..254)
and unit id (1). Frames are cut from the byte stream by the length field, so a reply split over
segments or several replies in one segment are both handled.

* A reply whose transaction id is not the one pending (a late reply to a request that timed out,
  or a gateway answering with a stale id) is discarded and counted (``tid_mismatches``); waiting
  goes on until the real reply or the timeout. The stream stays in step because frames are cut by
  length, not by expectation.
* ``lenient_tid``: for gateways that never echo the id, a reply with any id is accepted if its
  unit id, function code and byte count answer the request; frames left over from an earlier
  request are flushed before each new one.
* A header that cannot be right (protocol id not 0, length outside 2..254) means the stream is out
  of step: the socket is aborted and the transaction raises
  :class:`~agent.core.model.ConnectionLost`.
"""

from __future__ import annotations

import asyncio
import collections
import struct
import time

from agent.core.aio import within
from agent.core.model import ConnectError, ConnectionLost
from drivers.modbus.errors import ModbusGarbled, ModbusTimeout
from drivers.modbus.frames import Request, ResponseMismatch
from drivers.specs import ModbusTcpConnection

MBAP = struct.Struct(">HHHB")
MAX_MBAP_LENGTH = 254  # MMTCP §3.1.3: ADU max 260 bytes = 6 header bytes + 254


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.frames: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self.event = asyncio.Event()
        self.lost: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= MBAP.size:
            tid, protocol, length, unit_id = MBAP.unpack_from(self.buf)
            if protocol != 0 or not 2 <= length <= MAX_MBAP_LENGTH:
                self.lost = f"bad MBAP header (protocol {protocol}, length {length})"
                if self.transport is not None:
                    self.transport.abort()
                break
            if len(self.buf) < 6 + length:
                break
            pdu = bytes(self.buf[MBAP.size : 6 + length])
            del self.buf[: 6 + length]
            self.frames.append((tid, unit_id, pdu))
        self.event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or (f"connection lost: {exc}" if exc else "closed by peer")
        self.event.set()


class TcpPort:
    """One Modbus TCP socket.

    Attributes:
        spec: the connection spec.
        tid_mismatches: replies discarded for a foreign transaction id (or, lenient, for not
            answering the request).
        opens: sockets opened so far.
    """

    def __init__(self, spec: ModbusTcpConnection) -> None:
        self.spec = spec
        self.tid_mismatches = 0
        self.opens = 0
        self._proto: _Protocol | None = None
        self._tid = 0

    @property
    def is_open(self) -> bool:
        """Whether a socket is open and has not failed."""
        return self._proto is not None and self._proto.lost is None

    async def open(self) -> None:
        """Close any old socket, then connect a new one.

        Raises:
            ConnectError: refused, unreachable, or not connected within ``connect_timeout_s``.
        """
        self.close()  # never two sockets to one device: the old one is gone before the new
        loop = asyncio.get_running_loop()
        spec = self.spec
        proto = _Protocol()
        try:
            await within(
                loop.create_connection(lambda: proto, spec.host, spec.port),
                spec.connect_timeout_s,
            )
        except TimeoutError as exc:
            if proto.transport is not None:
                proto.transport.abort()
            raise ConnectError(f"{spec.name}: connect timed out") from exc
        except OSError as exc:
            raise ConnectError(f"{spec.name}: {exc}") from exc
        self._proto = proto
        self.opens += 1

    def close(self) -> None:
        """Abort the socket at once (no lingering half-closed socket). Idempotent."""
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.abort()

    async def transact(self, request: Request, timeout_s: float) -> bytes:
        """Send ``request``; return the response PDU (may be an exception PDU).

        Raises:
            ConnectionLost: no socket, or it closed / went out of step.
            ModbusTimeout: no matching reply within ``timeout_s``.
            ModbusGarbled: a reply with our transaction id that does not answer the request.
        """
        proto = self._proto
        if proto is None or proto.lost is not None or proto.transport is None:
            raise ConnectionLost(f"{self.spec.name}: {proto.lost if proto else 'not connected'}")
        self.tid_mismatches += len(proto.frames)  # stale replies to earlier requests
        proto.frames.clear()
        self._tid = (self._tid + 1) & 0xFFFF
        tid = self._tid
        proto.transport.write(
            MBAP.pack(tid, 0, len(request.pdu) + 1, request.unit_id) + request.pdu
        )
        deadline = time.monotonic() + timeout_s
        while True:
            while proto.frames:
                rtid, unit_id, pdu = proto.frames.popleft()
                if rtid != tid and not self.spec.lenient_tid:
                    self.tid_mismatches += 1
                    continue
                try:
                    request.check(unit_id, pdu)
                except ResponseMismatch as exc:
                    if rtid != tid:
                        self.tid_mismatches += 1
                        continue
                    raise ModbusGarbled(str(exc)) from None
                return pdu
            if proto.lost is not None:
                raise ConnectionLost(f"{self.spec.name}: {proto.lost}")
            proto.event.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModbusTimeout(f"unit {request.unit_id}: no answer in {timeout_s} s")
            try:
                await within(proto.event.wait(), remaining)
            except TimeoutError:
                pass
