"""A small, strict MQTT 5 broker for tests, loopback only: enforces Receive Maximum and Maximum
Packet Size as MQTT 5 says (Mosquitto 2.0.11 does not enforce Receive Maximum for QoS 1).

It speaks just enough MQTT 5 for one publishing client: CONNECT → CONNACK (with Receive Maximum
and Maximum Packet Size properties), PUBLISH QoS 0/1 → PUBACK (held ``ack_delay_s`` so that a
client's in-flight window really fills), SUBSCRIBE → SUBACK (granted, nothing is ever routed),
PINGREQ → PINGRESP, DISCONNECT. It enforces:

* MQTT 5 §3.3.4: more than ``enforce_receive_max`` QoS 1 PUBLISH awaiting PUBACK →
  DISCONNECT 0x93 (Receive Maximum exceeded), as EMQX does;
* MQTT 5 §3.2.2.3.6 / §4.13: a packet larger than ``enforce_packet_size`` → DISCONNECT 0x95
  (Packet too large).

``announce_receive_max`` / ``announce_packet_size`` (``None``: not announced) may differ from
what is enforced, to play a broker that enforces without saying so. Every PUBLISH it accepted
is kept in :attr:`StrictBroker.published` as (topic, payload); every DISCONNECT it sent in
:attr:`StrictBroker.disconnects`; the largest in-flight count seen in :attr:`max_inflight`.
``drop_after_connack_s`` closes each connection that long after its CONNACK (a session that
dies at once); ``refuse`` answers matching publishes with a PUBACK failure reason code. Runs its own event loop in a thread: ``start()`` / ``stop()``.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from dataclasses import dataclass, field

from tests.procs import free_port

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
PROP_RECEIVE_MAX, PROP_MAX_PACKET = 0x21, 0x27


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    value, mult = 0, 1
    while True:
        b = buf[i]
        i += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, i
        mult *= 128


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


@dataclass
class StrictBroker:
    """See the module docstring."""

    enforce_receive_max: int = 65535
    announce_receive_max: int | None = None
    enforce_packet_size: int = 268_435_455
    announce_packet_size: int | None = None
    ack_delay_s: float = 0.02
    drop_after_connack_s: float | None = None
    refuse: tuple[str, int] | None = None
    """(topic part, reason code): answer a QoS 1 PUBLISH whose topic contains the part with a
    PUBACK of that reason code (and do not keep it). Settable while running."""
    refused: int = 0
    port: int = field(default_factory=free_port)
    published: list[tuple[str, bytes]] = field(default_factory=list)
    disconnects: list[int] = field(default_factory=list)
    connects: int = 0
    max_inflight: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    def start(self) -> StrictBroker:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            self._server = loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", self.port)
            )
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="strict-broker", daemon=True)
        self._thread.start()
        assert ready.wait(5), "strict broker did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop = self._thread = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        inflight: set[int] = set()
        acks: set[asyncio.Task[None]] = set()
        try:
            while True:
                first = await reader.readexactly(1)
                length, mult = 0, 1
                while True:  # Remaining Length, MQTT 5 §2.1.4
                    b = (await reader.readexactly(1))[0]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    if not b & 0x80:
                        break
                size = 1 + len(_varint(length)) + length
                body = await reader.readexactly(length)
                if size > self.enforce_packet_size:
                    return self._disconnect(writer, 0x95)
                kind, flags = first[0] >> 4, first[0] & 0x0F
                if kind == CONNECT:
                    self._connack(writer)
                    if self.drop_after_connack_s is not None:
                        await asyncio.sleep(self.drop_after_connack_s)
                        return None
                elif kind == PUBLISH:
                    qos = (flags >> 1) & 3
                    tlen = struct.unpack_from(">H", body)[0]
                    topic = body[2 : 2 + tlen].decode()
                    i = 2 + tlen
                    mid = 0
                    if qos:
                        mid = struct.unpack_from(">H", body, i)[0]
                        i += 2
                    plen, i = _read_varint(body, i)
                    payload = body[i + plen :]
                    if qos:
                        inflight.add(mid)
                        self.max_inflight = max(self.max_inflight, len(inflight))
                        if len(inflight) > self.enforce_receive_max:
                            return self._disconnect(writer, 0x93)
                    code = 0
                    if qos and self.refuse is not None and self.refuse[0] in topic:
                        code = self.refuse[1]
                        self.refused += 1
                    else:
                        self.published.append((topic, payload))
                    if qos:
                        task = asyncio.create_task(self._ack(writer, mid, inflight, code))
                        acks.add(task)
                        task.add_done_callback(acks.discard)
                elif kind == SUBSCRIBE:
                    mid = struct.unpack_from(">H", body)[0]
                    plen, i = _read_varint(body, 2)
                    i += plen
                    granted = b""
                    while i < len(body):
                        flen = struct.unpack_from(">H", body, i)[0]
                        i += 2 + flen + 1
                        granted += b"\x01"
                    writer.write(_packet(SUBACK, 0, struct.pack(">H", mid) + b"\x00" + granted))
                elif kind == PINGREQ:
                    writer.write(_packet(PINGRESP, 0, b""))
                elif kind == DISCONNECT:
                    return None
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        finally:
            for t in acks:
                t.cancel()
            writer.close()

    def _connack(self, writer: asyncio.StreamWriter) -> None:
        self.connects += 1
        props = b""
        if self.announce_receive_max is not None:
            props += bytes([PROP_RECEIVE_MAX]) + struct.pack(">H", self.announce_receive_max)
        if self.announce_packet_size is not None:
            props += bytes([PROP_MAX_PACKET]) + struct.pack(">I", self.announce_packet_size)
        writer.write(_packet(CONNACK, 0, b"\x00\x00" + _varint(len(props)) + props))

    async def _ack(
        self, writer: asyncio.StreamWriter, mid: int, inflight: set[int], code: int
    ) -> None:
        await asyncio.sleep(self.ack_delay_s)
        inflight.discard(mid)
        body = struct.pack(">H", mid) + (bytes([code, 0]) if code else b"")
        writer.write(_packet(PUBACK, 0, body))

    def _disconnect(self, writer: asyncio.StreamWriter, code: int) -> None:
        self.disconnects.append(code)
        writer.write(_packet(DISCONNECT, 0, bytes([code, 0])))
