"""Modbus RTU slave server on a pseudo-terminal: a virtual RS-485 bus for the agent's serial code.

:meth:`ModbusRtuServer.start` creates a pty pair, puts it in raw mode and symlinks ``link_path`` to
the slave end; the master under test opens ``link_path`` like a serial port. The server reads the
pty master end with ``loop.add_reader`` (never blocking the loop), cuts frames with
:class:`~hil_sim.modbus.rtu_framing.RtuFrameAssembler` (expected length, or t3.5 of silence),
drops frames with a bad CRC (counted as ``("rtu", "bad_crc")``) and serves every unit id in
``slaves`` -- a shared bus: frames for other unit ids are ignored.

Timing model (Modbus over Serial Line V1.02, "MSL"): a pty moves bytes instantly, so the server
adds the wire time. The request is taken to have started on the wire when its first byte
arrived; the response starts no earlier than the request's end on the wire plus the turnaround
(``turnaround_s``, default 2 ms) plus ``UnitFaults.delay_s``, and is written in one piece at the
instant its last byte would have left the wire (``bits_per_char * n / baudrate``). Writing in one
piece avoids gaps inside the frame that a t3.5-timing master would take for a frame end.

Unit id 0 is broadcast (MSL §2.1): writes run on every non-silent slave, nothing is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Mapping

from hil_sim.modbus.counters import RequestCounters
from hil_sim.modbus.faults import Faults, UnitFaults
from hil_sim.modbus.pdu import WRITE_FUNCTIONS, handle_request
from hil_sim.modbus.rtu_framing import (
    RtuFrameAssembler,
    RxFrame,
    bits_per_char,
    crc_bytes,
    t35,
    wire_time,
)
from hil_sim.modbus.slave import Slave

log = logging.getLogger(__name__)

BROADCAST = 0


class ModbusRtuServer:
    """Serve ``slaves`` (unit id 1..247 -> slave) as Modbus RTU over a pty linked at ``link_path``.

    Args:
        link_path: symlink to create to the pty slave end (replaces a stale symlink; refuses to
            replace anything that is not a symlink).
        slaves: unit id -> :class:`Slave`, looked up per frame.
        faults: shared fault settings (silent, delay_s, exceptions, echo, fragment_gap_s,
            corrupt_crc, garbage_before, late_reply_s).
        counters: counts every frame with a good CRC as ``("rtu", unit_id, function_code)``.
        baudrate, parity ("N", "E", "O"), stopbits, bytesize: line settings used for pacing
            (the pty itself ignores them).
        turnaround_s: slave's delay between the end of the request and the start of the
            response (s).
    """

    def __init__(
        self,
        link_path: str,
        slaves: Mapping[int, Slave],
        faults: Faults,
        counters: RequestCounters,
        baudrate: int = 19200,
        parity: str = "E",
        stopbits: int = 1,
        bytesize: int = 8,
        *,
        turnaround_s: float = 0.002,
    ) -> None:
        self.link_path = link_path
        self.slaves = slaves
        self.faults = faults
        self.counters = counters
        self.baudrate = baudrate
        self.bits = bits_per_char(bytesize, parity, stopbits)
        self.t35 = t35(baudrate, self.bits)
        self.turnaround_s = turnaround_s
        self._master_fd: int | None = None
        self._slave_fd: int | None = None
        self._pty_name = ""
        self._assembler = RtuFrameAssembler()
        self._silence: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[RxFrame] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._late: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pty_name(self) -> str:
        """The device name of the pty slave end (e.g. ``/dev/pts/3``), after :meth:`start`."""
        return self._pty_name

    def wire_time(self, n_bytes: int) -> float:
        """Seconds ``n_bytes`` characters take on the configured line."""
        return wire_time(n_bytes, self.baudrate, self.bits)

    async def start(self) -> None:
        """Create the pty, set raw mode, link ``link_path`` to it and start serving.

        Raises:
            FileExistsError: ``link_path`` exists and is not a symlink.
            OSError: the pty or the link cannot be created.
        """
        if self._master_fd is not None:
            raise RuntimeError("server already started")
        master, slave = self._open_pty_and_link()
        # We keep our own fd of the slave end open so that the master end never reads EIO
        # while no client has the port open.
        self._master_fd, self._slave_fd = master, slave
        self._loop = asyncio.get_running_loop()
        self._assembler = RtuFrameAssembler()
        self._queue = asyncio.Queue()
        self._loop.add_reader(master, self._on_readable)
        self._worker = self._loop.create_task(self._serve(), name=f"modbus-rtu-{self.link_path}")
        log.info("Modbus RTU server on %s -> %s", self.link_path, self._pty_name)

    async def stop(self) -> None:
        """Stop serving, remove the symlink (if still ours) and close the pty."""
        master, self._master_fd = self._master_fd, None
        if master is None:
            return
        assert self._loop is not None
        self._loop.remove_reader(master)
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None
        tasks = [t for t in (self._worker, *self._late) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None
        with contextlib.suppress(OSError):
            if os.readlink(self.link_path) == self._pty_name:
                os.unlink(self.link_path)
        os.close(master)
        if self._slave_fd is not None:
            os.close(self._slave_fd)
            self._slave_fd = None

    def _open_pty_and_link(self) -> tuple[int, int]:
        """Create the raw pty pair and point ``link_path`` at its slave end (local file system
        calls only; fast enough for the loop). Returns (master fd, slave fd)."""
        if os.path.lexists(self.link_path) and not os.path.islink(self.link_path):
            raise FileExistsError(f"{self.link_path} exists and is not a symlink")
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            os.set_blocking(master, False)
            pty_name = os.ttyname(slave)
            tmp = f"{self.link_path}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(pty_name, tmp)
            os.replace(tmp, self.link_path)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._pty_name = pty_name
        return master, slave

    # --- receive (reader callback, never blocks) ------------------------------------------

    def _on_readable(self) -> None:
        assert self._loop is not None and self._master_fd is not None
        try:
            data = os.read(self._master_fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO cannot happen while we hold the slave end; be safe
            log.warning("pty read failed: %s", exc)
            return
        now = self._loop.time()
        self._dispatch(self._assembler.feed(data, now))
        if self._silence is not None:
            self._silence.cancel()
        self._silence = self._loop.call_later(self.t35, self._on_silence)

    def _on_silence(self) -> None:
        self._silence = None
        self._dispatch(self._assembler.silence())

    def _dispatch(self, frames: list[RxFrame]) -> None:
        for frame in frames:
            if frame.crc_ok:
                self._queue.put_nowait(frame)
            else:
                self.counters.count_error("rtu", "bad_crc")

    # --- serve (one frame at a time: a half-duplex bus) ------------------------------------

    async def _serve(self) -> None:
        while True:
            frame = await self._queue.get()
            try:
                await self._serve_frame(frame)
            except (OSError, ValueError):
                log.exception("RTU frame %s failed", frame.adu.hex())

    async def _serve_frame(self, frame: RxFrame) -> None:
        assert self._loop is not None
        unit_id, pdu = frame.adu[0], frame.adu[1:-2]
        self.counters.count("rtu", unit_id, pdu[0])
        if unit_id == BROADCAST:
            if pdu[0] in WRITE_FUNCTIONS:
                for uid, each in list(self.slaves.items()):
                    each_faults = self.faults.peek(uid)
                    if each_faults is None or not each_faults.silent:
                        handle_request(each, pdu, each_faults)
            return
        slave = self.slaves.get(unit_id)
        if slave is None:
            return  # another device on the shared bus
        uf = self.faults.peek(unit_id) or UnitFaults()
        if uf.silent:
            return
        if uf.echo:
            self._write(frame.adu)
        response = bytes((unit_id,)) + handle_request(slave, pdu, uf)
        response += crc_bytes(response)
        if uf.corrupt_crc > 0 and self.faults.rng.random() < uf.corrupt_crc:
            response = response[:-1] + bytes((response[-1] ^ 0xFF,))
        request_end = frame.first_byte_at + self.wire_time(len(frame.adu))
        start_at = max(self._loop.time(), request_end) + self.turnaround_s + uf.delay_s
        if uf.late_reply_s > 0:
            task = self._loop.create_task(
                self._transmit(frame.first_byte_at + uf.late_reply_s, response, uf),
                name="modbus-rtu-late-reply",
            )
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return
        await self._transmit(start_at, response, uf)

    async def _transmit(self, start_at: float, response: bytes, uf: UnitFaults) -> None:
        """Send ``response`` (preceded by noise if faulted) paced as if starting at
        ``start_at``; each piece is written when its last byte would have left the wire."""
        assert self._loop is not None
        pieces = []
        if uf.garbage_before:
            pieces.append((uf.garbage_before, 0.0))
        if uf.fragment_gap_s > 0 and len(response) > 1:
            half = len(response) // 2
            pieces += [(response[:half], 0.0), (response[half:], uf.fragment_gap_s)]
        else:
            pieces.append((response, 0.0))
        t = start_at
        for data, gap in pieces:
            t += gap + self.wire_time(len(data))
            await asyncio.sleep(max(0.0, t - self._loop.time()))
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._master_fd is None:
            return
        try:
            written = os.write(self._master_fd, data)
        except BlockingIOError:
            written = 0
        if written < len(data):
            self.counters.count_error("rtu", "tx_overflow")
