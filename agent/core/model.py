"""The small shared model of pumproom-edge: readings, samples, quality, errors, backoff, clocks.

Part of the shared leaf (:mod:`agent.core`), which ``drivers/`` may import (see DESIGN.md,
Boundaries). It holds no I/O.

Shapes
------
* A :class:`Reading` is what a driver returns for one point on one poll: the decoded value in
  engineering units (already scaled) and its quality; no sequence number, and a timestamp only
  when the device sent one (``source_ts_ms``, optional).
* A :class:`Sample` is a reading stamped by the poller with the wall-clock time (UTC, ms), whether
  the clock was synchronised, and a sequence number assigned by the store (monotonic, gap-free,
  never reused; order comes from it, never from wall time).
"""

from __future__ import annotations

import enum
import os
import random
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

Value = float | int | bool | None
"""A point's value in engineering units; ``None`` when the quality is not good."""


class Quality(enum.IntEnum):
    """Quality of a sample. Stored as a small integer; uplinked as its short code.

    The codes follow the OPC UA StatusCode severity (Good / Uncertain / Bad) and the Sparkplug B
    quality mapping (192 good, 0 bad, 500 stale); see shared/reference/uplink-protocol.md §6.4.
    """

    GOOD = 0
    COMM_FAIL = 1
    """The device did not answer, the connection is down, or the request timed out."""
    BAD_VALUE = 2
    """The device answered, but the value is unusable (exception for that register, out of the
    point's valid range, NaN, a bad OPC UA status)."""
    STALE = 3
    """The value has not been refreshed within its expected period."""

    @property
    def code(self) -> str:
        """Short code used on the wire: ``g``, ``c``, ``b``, ``s``."""
        return _QUALITY_CODES[self]


_QUALITY_CODES = {
    Quality.GOOD: "g",
    Quality.COMM_FAIL: "c",
    Quality.BAD_VALUE: "b",
    Quality.STALE: "s",
}


class Reading(NamedTuple):
    """One point's result from one read (an immutable named tuple: built once per point per
    poll, so it is made as cheaply as Python allows; a frozen dataclass cost 4× as much).

    Attributes:
        point: the point's name, unique within the site (e.g. ``"p_out"``, ``"pump1.freq"``).
        value: value in the point's engineering unit after scale and offset; ``None`` unless good.
        quality: :class:`Quality`.
        reason: why the quality is not good, machine-readable and short, e.g.
            ``"modbus:exception:2"``, ``"timeout"``, ``"disconnected"``,
            ``"opcua:BadNodeIdUnknown"``,
            ``"range"``; ``None`` when good.
        source_ts_ms: when the device itself sampled the value, UTC ms since the Unix epoch
            (OPC UA SourceTimestamp, Part 4 §7.11, of a newly published data change), or
            ``None`` (most protocols: the poller stamps the poll's start). The poller prefers
            it within sanity bounds (:mod:`agent.poller`).
    """

    point: str
    value: Value
    quality: Quality = Quality.GOOD
    reason: str | None = None
    source_ts_ms: int | None = None


class Sample(NamedTuple):
    """One buffered reading: a :class:`Reading` stamped with time and sequence (an immutable
    named tuple, see :class:`Reading`).

    Attributes:
        seq: sequence number assigned by the store; strictly increasing, never reused.
        point: point name.
        ts_ms: wall-clock time of the poll, UTC, milliseconds since the Unix epoch.
        value: as :attr:`Reading.value`.
        quality: as :attr:`Reading.quality`.
        reason: as :attr:`Reading.reason`.
        synced: whether the wall clock was synchronised (NTP) when the sample was taken.
    """

    seq: int
    point: str
    ts_ms: int
    value: Value
    quality: Quality
    reason: str | None
    synced: bool


class DriverError(Exception):
    """Base of every error a driver raises; no pymodbus/asyncua exception escapes ``drivers/``."""


class ConnectError(DriverError):
    """The connection to a device could not be opened (refused, timed out, port missing)."""


class ConnectionLost(DriverError):
    """The connection failed while in use; the caller should close and reconnect with backoff."""


class WriteError(DriverError):
    """A write was refused by the device or could not be carried out.

    Attributes:
        reason: machine-readable cause, as :attr:`Reading.reason`.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Backoff:
    """The one reconnect policy: exponential backoff with full jitter, capped.

    ``next()`` returns the delay in seconds before the next attempt; ``reset()`` after a success.
    Full jitter (a uniform draw in ``[base/2, base]``) keeps thousands of gateways from reconnecting
    in step after a broker restart.

    Attributes:
        initial_s: first delay, seconds.
        cap_s: largest delay, seconds.
        factor: growth per failure.
    """

    initial_s: float = 0.5
    cap_s: float = 30.0
    factor: float = 2.0
    _attempt: int = 0

    def next(self) -> float:
        """Return the next delay in seconds and count one more failure."""
        base = min(self.cap_s, self.initial_s * (self.factor**self._attempt))
        self._attempt += 1
        return random.uniform(base / 2, base)

    def reset(self) -> None:
        """Forget the failures (call after a successful connect)."""
        self._attempt = 0

    @property
    def failures(self) -> int:
        """Number of failures since the last reset."""
        return self._attempt


CLOCK_OFFSET_ENV = "PUMPROOM_CLOCK_OFFSET_FILE"
"""TEST HOOK: environment variable naming a file whose content is an integer offset in ms that
:class:`WallClock` adds to the system clock (re-read at most once per second; a missing or
unreadable file keeps the last offset). It lets a test step the agent's wall clock back and forth
without touching the machine's clock. Never set it in production."""


CLOCK_SYNCED_ENV = "PUMPROOM_CLOCK_SYNCED"
"""Test hook: ``1`` or ``0`` overrides whether the clock counts as synchronised (machines in CI
often run unsynchronised containers)."""


class WallClock:
    """The single source of wall-clock time for the agent, so tests can step it.

    All scheduling uses ``time.monotonic()``; wall time only stamps samples and messages.
    ``offset_ms`` is added to the system clock (tests step it back and forth). When the
    environment variable :data:`CLOCK_OFFSET_ENV` names a file (a test hook), the offset is read
    from it, at most once per second of monotonic time.
    """

    def __init__(self) -> None:
        self.offset_ms = 0
        self.synced_override: bool | None = None
        self._offset_file = os.environ.get(CLOCK_OFFSET_ENV) or None
        if os.environ.get(CLOCK_SYNCED_ENV) in ("0", "1"):  # test hook
            self.synced_override = os.environ[CLOCK_SYNCED_ENV] == "1"
        self._offset_read_at = -2.0

    def now_ms(self) -> int:
        """UTC time in milliseconds since the epoch (plus the test offset, if any)."""
        if self._offset_file is not None:
            self._refresh_offset()
        return time.time_ns() // 1_000_000 + self.offset_ms

    def _refresh_offset(self) -> None:
        mono = time.monotonic()
        if mono - self._offset_read_at < 1.0:
            return
        self._offset_read_at = mono
        try:
            with open(self._offset_file, encoding="ascii") as f:  # type: ignore[arg-type]
                self.offset_ms = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pass

    def synced(self) -> bool:
        """Whether the system clock is synchronised (adjtimex reports no STA_UNSYNC)."""
        if self.synced_override is not None:
            return self.synced_override
        return _kernel_clock_synced()


_adjtimex: Any = None
"""``(adjtimex function, timex buffer)``, made once: building the ctypes Structure class and the
CDLL on every call (every 10 s from the ingest stage) left reference cycles that only a full GC
frees, and ``find_library`` runs ``ldconfig`` — the soak benchmark's RSS growth (issue 6)."""


def _kernel_clock_synced() -> bool:
    global _adjtimex
    try:
        if _adjtimex is None:
            import ctypes
            import ctypes.util

            class _Timex(ctypes.Structure):
                _fields_ = [("modes", ctypes.c_uint), ("_pad", ctypes.c_byte * 204)]

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            tx = _Timex()
            _adjtimex = (libc.adjtimex, ctypes.byref(tx), tx)
        fn, ref, tx = _adjtimex
        tx.modes = 0  # read only
        state = fn(ref)
    except (OSError, AttributeError):
        state = -1
    if state < 0:  # refused (systemd ProtectClock=): ask systemd-timesyncd instead
        return os.path.exists("/run/systemd/timesync/synchronized")
    # adjtimex(2): TIME_ERROR (5) means the clock is not synchronised.
    return bool(state != 5)


clock = WallClock()
"""The process-wide wall clock."""
