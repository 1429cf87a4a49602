"""Who holds the socket to a single-client Modbus TCP device (``connection_mode: per-poll``),
and devices that answer once per connection (``connection_mode: per-request``), against the
simulator's TCP server."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import pytest

from agent.core.model import ConnectionLost, Quality
from drivers import create
from tests.drivers.conftest import VALUES, typed_points
from tests.faults_field.conftest import tcp_spec


class SlowOpen:
    """A loopback port whose TCP handshakes hang until :meth:`open` (its accept queue is full,
    so the kernel drops new SYNs), then a forwarder to ``target_port``: a device that takes its
    time to accept, as a busy embedded TCP stack does."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._fillers = [socket.socket(), socket.socket()]
        for s in self._fillers:
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def open(self) -> None:
        """Drop the fillers and start accepting and forwarding."""
        for s in self._fillers:
            s.close()
        self._server = await asyncio.start_server(self._serve, sock=self._listener)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._listener.close()
        for s in self._fillers:
            s.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        first = await reader.read(65536)  # a Modbus master speaks first; a filler never does
        if not first:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        up_w.write(first)
        try:
            await asyncio.gather(_pump(reader, up_w), _pump(up_r, writer))
        finally:
            for w in (writer, up_w):
                w.close()
            self._tasks.discard(task)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except ConnectionError:
        pass
    finally:
        dst.close()


async def test_write_cancelled_while_the_socket_opens_does_not_pin_it(tcp_server):
    """The class of the bug: every path in and out of a per-poll hold, cancellation included,
    releases it; otherwise the socket stays open for good and the single-client device refuses
    the technician's laptop."""
    tcp_server.faults.single_client = True
    gate = SlowOpen(tcp_server.port)
    spec = tcp_spec(tcp_server, connection_mode="per-poll")
    drv = create(replace(spec, port=gate.port, connect_timeout_s=5.0))
    point = next(p for p in typed_points(1) if p.name == "u1.i16")
    plan = drv.plan(typed_points(1)[:4])
    try:
        write = asyncio.create_task(drv.write(point, 7))
        read = asyncio.create_task(drv.read(plan))  # waits for the same socket
        await asyncio.sleep(0.3)
        assert not write.done() and not read.done()  # both stuck in the handshake
        write.cancel()  # a control tick gives up on its write
        read.cancel()
        await asyncio.gather(write, read, return_exceptions=True)
        await gate.open()
        got = await drv.read(plan)
        assert all(r.quality is Quality.GOOD for r in got), got
        await asyncio.sleep(0.1)
        assert tcp_server.connections == 0, "a cancelled hold pinned the per-poll socket"
        laptop = create(tcp_spec(tcp_server))  # the technician's laptop is served
        await laptop.connect()
        assert (await laptop.read(plan))[0].value == pytest.approx(VALUES["f32_abcd"])
        await laptop.close()
    finally:
        await drv.close()
        await gate.close()


async def test_per_request_mode_reads_a_device_that_answers_once_per_connection(tcp_server):
    tcp_server.faults.once_per_connection = True
    plan_points = typed_points(1)
    # a persistent (or per-poll) socket gets one answer, then the device closes it
    old = create(tcp_spec(tcp_server, connection_mode="per-poll"))
    await old.connect()
    with pytest.raises(ConnectionLost):
        await old.read(old.plan(plan_points))
    await old.close()
    drv = create(tcp_spec(tcp_server, connection_mode="per-request"))
    await drv.connect()  # proves the device reachable, keeps no socket
    try:
        plan = drv.plan(plan_points)
        assert plan.request_count > 1
        for _ in range(2):
            got = await drv.read(plan)
            assert all(r.quality is Quality.GOOD for r in got), got
        sp = next(p for p in plan_points if p.name == "u1.i16")
        await drv.write(sp, -5)
        assert (await drv.read(drv.plan([sp])))[0].value == -5
        await asyncio.sleep(0.05)
        assert tcp_server.connections == 0  # nothing held between requests
        c = drv.counters()
        assert c["sockets_opened"] == 1 + 2 * plan.request_count + 2
        assert c["reconnects"] == 0
    finally:
        await drv.close()
