"""Our own Modbus RTU master on one RS-485 port: pyserial for opening and line settings, the
port's file descriptor read with ``loop.add_reader`` (the event loop never blocks).

Rules it keeps (Modbus over Serial Line V1.02, "MSL"):

* one outstanding request per port (MSL §2.1: single master, half duplex); the caller holds the
  link's lock;
* before each request the line must have been silent for t3.5 (MSL §2.5.1.1); whatever arrived
  since the last transaction (line noise, a late reply) is flushed and counted as ``noise_bytes``;
* a reply is complete when its length, known from the function code and byte count, has
  arrived -- pieces split by USB latency are reassembled, whatever the gaps between them;
* a reply must match the request's unit id, function code and byte count and carry a good CRC
  (MSL §6.2.2); bytes before it are skipped as noise. A frame of the right shape with a bad CRC
  is a :class:`~drivers.modbus.errors.ModbusCrcError` (the driver retries it once);
* after a timeout or a bad frame the master waits ``guard_s`` and flushes, so a late reply to the
  request that timed out is never taken for the answer to the next one;
* ``local_echo``: the adapter hears its own transmission; the echo must equal the request and is
  discarded. Without the option, an echo that arrives anyway is skipped and a one-time hint is
  logged. A copy of the request is an echo only when no response can look like it: the normal
  response to FC05/FC06 *is* a copy of the request (Modbus Application Protocol V1.1b3 §6.5,
  §6.6), so for those a single copy is the device's answer, unless the port is known to echo
  (an echo was seen on another request) or two copies arrived (echo, then answer).

A read error on the descriptor (USB adapter unplugged, EIO) marks the port lost: the next
transaction raises :class:`~agent.core.model.ConnectionLost` and the agent reopens it with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import time

import serial

from agent.core.aio import within
from agent.core.model import ConnectError, ConnectionLost
from drivers.modbus.errors import ModbusCrcError, ModbusGarbled, ModbusTimeout
from drivers.modbus.frames import Request, crc16, rtu_response_length
from drivers.specs import ModbusRtuConnection

log = logging.getLogger(__name__)

RTU_OPEN_TIMEOUT_S = 3.0
"""Bound on opening a serial port (done in a worker thread; pyserial's open is blocking)."""

ECHOED_BY_RESPONSE = (0x05, 0x06)
"""Function codes whose normal response is byte for byte the request (Modbus Application
Protocol V1.1b3 §6.5, §6.6)."""

CRC_SETTLE_CHARS = 8
"""After a complete frame with a bad CRC, wait this many character times for a good one before
reporting the CRC error."""


def char_time_s(spec: ModbusRtuConnection) -> float:
    """Seconds one character takes: start + data + parity (if any) + stop bits (MSL §2.5.1)."""
    bits = 1 + spec.bytesize + (0 if spec.parity.upper() == "N" else 1) + spec.stopbits
    return bits / spec.baudrate


def rtu_frame_gap_s(spec: ModbusRtuConnection) -> float:
    """Silent interval t3.5 the master keeps between frames on an RS-485 bus, seconds.

    3.5 character times, fixed at 1.75 ms above 19200 baud (MSL §2.5.1.1).
    """
    if spec.baudrate > 19200:
        return 0.00175
    return 3.5 * char_time_s(spec)


class RtuPort:
    """One open serial port and its receive buffer.

    Attributes:
        spec: the connection spec.
        crc_errors, noise_bytes, echoes_seen: counters (frames with bad CRC; bytes flushed
            before a request or skipped before a reply; local echoes skipped although
            ``local_echo`` is not set). ``echoes_seen`` > 0 marks the port as one that echoes.
    """

    def __init__(self, spec: ModbusRtuConnection) -> None:
        self.spec = spec
        self.gap_s = rtu_frame_gap_s(spec)
        self.char_s = char_time_s(spec)
        self.crc_errors = 0
        self.noise_bytes = 0
        self.echoes_seen = 0
        self._echo_hinted = False
        self._echo_skipped = False
        self._serial: serial.Serial | None = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buf = bytearray()
        self._rx = asyncio.Event()
        self._lost: str | None = None
        self._quiet_until = 0.0

    @property
    def is_open(self) -> bool:
        """Whether the port is open and has not failed."""
        return self._fd is not None and self._lost is None

    async def open(self) -> None:
        """Open the port with the spec's line settings.

        Raises:
            ConnectError: the port is missing, busy or refuses the settings, or the open took
                longer than :data:`RTU_OPEN_TIMEOUT_S`.
        """
        self.close()
        spec = self.spec
        kwargs = dict(
            baudrate=spec.baudrate,
            bytesize=spec.bytesize,
            parity=spec.parity,
            stopbits=spec.stopbits,
            timeout=0,
            exclusive=True,
        )
        try:
            ser = await within(
                asyncio.to_thread(serial.Serial, spec.port, **kwargs), RTU_OPEN_TIMEOUT_S
            )
        except TimeoutError as exc:
            raise ConnectError(f"{spec.name}: open timed out") from exc
        except (OSError, ValueError, serial.SerialException, termios.error) as exc:
            # termios.error: the line refuses the settings (Linux pseudo-terminals refuse parity)
            line = f"{spec.baudrate} {spec.bytesize}{spec.parity}{spec.stopbits}"
            if "exclusively lock" in str(exc):  # pyserial's exclusive=True: flock refused
                raise ConnectError(
                    f"{spec.name}: {spec.port} is in use by another program (a running agent? "
                    "one program at a time on a serial port: stop it, or ask the running agent "
                    "with `pumproom-agent status`)"
                ) from exc
            raise ConnectError(f"{spec.name}: cannot open with {line}: {exc}") from exc
        self._serial = ser
        self._fd = ser.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._buf.clear()
        self._lost = None
        self._loop.add_reader(self._fd, self._on_readable)

    def close(self) -> None:
        """Close the port. Idempotent, never raises."""
        fd, self._fd = self._fd, None
        ser, self._serial = self._serial, None
        if fd is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(fd)
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.close()
        self._buf.clear()

    def _on_readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO: adapter unplugged / pty master closed
            data, self._lost = b"", f"read: {exc}"
        if not data:
            self._lost = self._lost or "end of file"
            if self._loop is not None and self._fd is not None:
                self._loop.remove_reader(self._fd)
        else:
            self._buf += data
            self._quiet_until = time.monotonic() + self.gap_s
        self._rx.set()

    def _check_open(self) -> None:
        if self._fd is None or self._lost is not None:
            raise ConnectionLost(f"{self.spec.name}: {self._lost or 'port closed'}")

    async def _write(self, frame: bytes, deadline: float) -> None:
        assert self._fd is not None
        view = memoryview(frame)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self._lost = f"write: {exc}"
                raise ConnectionLost(f"{self.spec.name}: {self._lost}") from exc
            view = view[n:]
            if view:
                if time.monotonic() > deadline:
                    raise ModbusTimeout("transmit buffer full")
                await asyncio.sleep(self.char_s)

    async def _wait_rx(self, deadline: float) -> bool:
        """Wait for more bytes until ``deadline``; False on timeout."""
        self._rx.clear()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            await within(self._rx.wait(), remaining)
        except TimeoutError:
            return False
        self._check_open()
        return True

    def _flush(self) -> None:
        if self._buf:
            self.noise_bytes += len(self._buf)
            self._buf.clear()

    async def after_failure(self) -> None:
        """Wait ``guard_s`` for a late reply to finish arriving, then flush it."""
        await asyncio.sleep(self.spec.guard_s)
        self._flush()

    async def transact(self, request: Request, timeout_s: float) -> bytes:
        """Send ``request`` and return the matching response PDU (may be an exception PDU).

        Raises:
            ConnectionLost: the port is closed or failed.
            ModbusTimeout: nothing matching within ``timeout_s`` (after transmission).
            ModbusCrcError: a frame of the right shape with a bad CRC.
            ModbusGarbled: bytes arrived but no matching frame (or a wrong echo).
        """
        self._check_open()
        wait = self._quiet_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._flush()
        self._echo_skipped = False
        frame = request.rtu_frame()
        tx_s = len(frame) * self.char_s
        deadline = time.monotonic() + tx_s + timeout_s
        await self._write(frame, deadline)
        self._quiet_until = time.monotonic() + tx_s + self.gap_s
        if self.spec.local_echo:
            while len(self._buf) < len(frame):
                if not await self._wait_rx(deadline):
                    raise (
                        ModbusTimeout("no local echo")
                        if not self._buf
                        else ModbusGarbled("short local echo")
                    )
            if bytes(self._buf[: len(frame)]) != frame:
                if self._buf[:2] == frame[:2] and not self._echo_hinted:
                    self._echo_hinted = True
                    log.warning(
                        "%s: local_echo is set but the adapter does not echo (a reply came "
                        "first); set local_echo: false on this port",
                        self.spec.name,
                    )
                raise ModbusGarbled("local echo differs from the request")
            del self._buf[: len(frame)]
        return await self._receive(request, frame, deadline)

    async def _receive(self, request: Request, frame: bytes, deadline: float) -> bytes:
        crc_bad = False
        while True:
            found, crc_now = self._scan(request, frame)
            if found is not None:
                return found
            if crc_now and not crc_bad:
                crc_bad = True
                deadline = min(deadline, time.monotonic() + CRC_SETTLE_CHARS * self.char_s + 0.01)
            if not await self._wait_rx(deadline):
                break
        if crc_bad:
            self.crc_errors += 1
            raise ModbusCrcError(f"unit {request.unit_id}: bad CRC")
        if self._buf:
            raise ModbusGarbled(f"unit {request.unit_id}: {len(self._buf)} bytes, no answer")
        raise ModbusTimeout(f"unit {request.unit_id}: no answer in {self.spec.timeout_s} s")

    def _scan(self, request: Request, frame: bytes) -> tuple[bytes | None, bool]:
        """Look for the response in the buffer. Returns (PDU or None, saw a bad-CRC candidate)."""
        buf = self._buf
        if self._is_echo(frame):
            self._echo_skipped = True
            self.echoes_seen += 1
            del buf[: len(frame)]
            if not self._echo_hinted:
                self._echo_hinted = True
                log.warning(
                    "%s: the adapter echoes our requests (local echo); set local_echo: true "
                    "on this port so the echo is verified and discarded",
                    self.spec.name,
                )
        crc_bad = False
        fc = request.function
        for i in range(len(buf) - 1):
            if buf[i] != request.unit_id or buf[i + 1] not in (fc, fc | 0x80):
                continue
            length = rtu_response_length(buf, i)
            if length is None or len(buf) < i + length:
                continue
            candidate = bytes(buf[i : i + length])
            try:
                request.check(candidate[0], candidate[1:-2])
            except ValueError:
                continue
            if crc16(candidate[:-2]) != candidate[-2:]:
                crc_bad = True
                continue
            self.noise_bytes += i
            del buf[: i + length]
            return candidate[1:-2], False
        return None, crc_bad

    def _is_echo(self, frame: bytes) -> bool:
        """Whether the buffer starts with an unexpected local echo of ``frame`` (at most one per
        transaction; with ``local_echo`` set the echo was already verified and removed).

        A read or FC15/FC16 response never equals its request, so a copy of the request is an
        echo. For FC05/FC06 the device's answer is itself a copy: a copy is the echo only if a
        second one follows it or the port has already shown that it echoes.
        """
        n = len(frame)
        if self.spec.local_echo or self._echo_skipped or self._buf[:n] != frame:
            return False
        if frame[1] not in ECHOED_BY_RESPONSE:
            return True
        return self.echoes_seen > 0 or self._buf[n : 2 * n] == frame
