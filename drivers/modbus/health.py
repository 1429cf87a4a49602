"""Per-unit (per-device) health of a Modbus connection: counters, offline state, log once.

A unit that fails to answer in :data:`OFFLINE_AFTER` consecutive reads is *offline*: its requests
are no longer sent on every read (on a shared RS-485 bus, or behind a Modbus TCP gateway, each
would cost a full timeout and delay every other unit). Instead one probe request is sent at most
every :attr:`UnitHealth.probe_every` reads and every ``probe_interval_s`` seconds ("slow
probing": the driver uses :data:`PROBE_INTERVAL_S` on Modbus TCP, 0 on RTU); when it is answered
the unit is online again and read in full in that same read.

Failing to answer is a timeout, or, behind a Modbus TCP/RTU gateway, exception 0x0A GATEWAY PATH
UNAVAILABLE or 0x0B GATEWAY TARGET DEVICE FAILED TO RESPOND (Modbus Application Protocol V1.1b3
§7): the gateway answered, the unit did not. On Modbus TCP a silent unit goes offline only when
the connection itself is proved alive in that read (another unit answered, or the gateway sent
0x0A/0x0B); a lone silent device instead makes the driver declare the connection lost and
reconnect (see :mod:`drivers.modbus.client`). The transition to offline is logged once (warning)
and the recovery once (info): never a log storm.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agent.core.health import Health

log = logging.getLogger("drivers.modbus")

OFFLINE_AFTER = 2
"""Consecutive reads without an answer after which a unit is marked offline."""

PROBE_EVERY = 2
"""While offline, one probe request at most every this many reads (the others skip the unit)."""

PROBE_INTERVAL_S = 5.0
"""While offline, one probe request at most every this many seconds (Modbus TCP): a dead unit
behind a gateway costs its neighbours one timeout (or one late 0x0B) per 5 s at most, and is back
within 5 s plus one poll interval after it answers again."""

GATEWAY_EXCEPTIONS = frozenset({0x0A, 0x0B})
"""0x0A GATEWAY PATH UNAVAILABLE, 0x0B GATEWAY TARGET DEVICE FAILED TO RESPOND (Modbus Application
Protocol V1.1b3 §7): the gateway is there, the unit behind it is not. A communication failure of
that unit (COMM_FAIL), never "unreadable address"."""


@dataclass
class UnitHealth:
    """Health of one unit id on a connection.

    Attributes:
        unit_id: Modbus unit id.
        device: device name(s) of the unit's points, comma-joined.
        connection: connection name, for log lines.
        polls: reads in which the unit was due; ``successes``: answered requests;
        timeouts, crc_errors, garbled: failed requests; ``exceptions``: code → count;
        skipped: reads in which the offline unit was not asked; ``offline``: current state;
        health: last failure and last answer with their times (``last_error`` is its text).
        shared_bus: a unit on a shared RS-485 bus goes offline on timeouts alone; on Modbus TCP
            only when the connection was proved alive in the same read (see the module
            docstring).
    """

    unit_id: int
    device: str
    connection: str
    probe_every: int = PROBE_EVERY
    shared_bus: bool = True
    polls: int = 0
    successes: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    garbled: int = 0
    skipped: int = 0
    exceptions: Counter[int] = field(default_factory=Counter)
    offline: bool = False
    health: Health = field(default_factory=Health)
    _failed_reads: int = 0
    _since_probe: int = 0
    _probed_at: float = 0.0
    _failed_now: bool = False

    @property
    def last_error(self) -> str | None:
        """Text of the last failure, or ``None``."""
        return self.health.last_error

    def due(self, now: float, probe_interval_s: float = PROBE_INTERVAL_S) -> bool:
        """Called once per read (``now``: ``time.monotonic()``): whether to send requests to
        this unit in this read. An offline unit gets a single probe once both ``probe_every``
        reads and ``probe_interval_s`` seconds have passed since the last one."""
        self.polls += 1
        if not self.offline:
            return True
        self._since_probe += 1
        if self._since_probe >= self.probe_every and now - self._probed_at >= probe_interval_s:
            self._since_probe = 0
            self._probed_at = now
            return True
        self.skipped += 1
        return False

    def answered(self) -> None:
        """A request was answered (any answer, exception included, proves the unit is there)."""
        self.successes += 1
        self.health.ok()
        self._failed_reads = 0
        self._failed_now = False
        if self.offline:
            self.offline = False
            log.info("%s: unit %d (%s) answers again", self.connection, self.unit_id, self.device)

    def timed_out(self, error: str) -> None:
        """A request timed out in this read (call at most once per read)."""
        self.timeouts += 1
        self.health.error(error)
        self._failed_now = True

    def unreachable(self, code: int) -> None:
        """The gateway answered exception ``code`` (0x0A/0x0B) for this unit."""
        self.exceptions[code] += 1
        self.health.error(f"exception {code}: gateway reports unit {self.unit_id} unreachable")
        self._failed_now = True

    def end_read(self, now: float, link_alive: bool) -> None:
        """Close one read: a unit that failed to answer in it counts one failed read, and goes
        offline after :data:`OFFLINE_AFTER` of them (on TCP only if ``link_alive``: something
        on the connection answered in this read)."""
        if not self._failed_now:
            return
        self._failed_now = False
        self._failed_reads += 1
        if (
            not self.offline
            and self._failed_reads >= OFFLINE_AFTER
            and (self.shared_bus or link_alive)
        ):
            self.offline = True
            self._since_probe = 0
            self._probed_at = now
            log.warning(
                "%s: unit %d (%s) offline after %d reads without answer (%s); probing it "
                "slowly (one request every %d reads at most)",
                self.connection,
                self.unit_id,
                self.device,
                self._failed_reads,
                self.health.last_error,
                self.probe_every,
            )

    def failed(self, kind: str, error: str) -> None:
        """A request got a bad frame (``kind`` ``crc_errors`` or ``garbled``)."""
        setattr(self, kind, getattr(self, kind) + 1)
        self.health.error(error)

    def exception(self, code: int) -> None:
        """A request was answered with exception ``code``."""
        self.exceptions[code] += 1
        self.answered()
        self.health.error(f"exception {code}")  # after the answer: the request still failed

    def snapshot(self) -> dict[str, Any]:
        """Counters as plain data, with ``last_error``, ``last_error_age_s``, ``last_ok_age_s``
        (seconds ago) and ``ok`` from :meth:`~agent.core.health.Health.snapshot`."""
        return {
            "unit_id": self.unit_id,
            "polls": self.polls,
            "successes": self.successes,
            "timeouts": self.timeouts,
            "crc_errors": self.crc_errors,
            "garbled": self.garbled,
            "exceptions": dict(self.exceptions),
            "skipped": self.skipped,
            "offline": self.offline,
            **self.health.snapshot(),
        }
