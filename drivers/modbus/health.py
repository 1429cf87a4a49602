"""Per-unit (per-device) health of a Modbus connection: counters, offline state, log once.

A unit whose requests time out in :data:`OFFLINE_AFTER` consecutive reads is *offline*: its
requests are no longer sent on every read (on a shared RS-485 bus each would cost a full timeout
and delay every other unit). Instead one probe request is sent every
:attr:`UnitHealth.probe_every` reads; when it is answered the unit is online again and read in full
in that same read, so a unit that comes back is back within ``probe_every`` reads. The transition
to offline is logged once (warning) and the recovery once (info): never a log storm.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agent.core.health import Health

log = logging.getLogger("drivers.modbus")

OFFLINE_AFTER = 2
"""Consecutive reads with a timeout after which a unit is marked offline."""

PROBE_EVERY = 2
"""While offline, one probe request every this many reads (the others skip the unit)."""


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
        shared_bus: only units on a shared RS-485 bus go offline; on Modbus TCP a silent
            device costs no other device anything and is handled by reconnecting.
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

    @property
    def last_error(self) -> str | None:
        """Text of the last failure, or ``None``."""
        return self.health.last_error

    def due(self) -> bool:
        """Called once per read: whether to send requests to this unit in this read (an offline
        unit gets a single probe every ``probe_every`` reads)."""
        self.polls += 1
        if not self.offline:
            return True
        self._since_probe += 1
        if self._since_probe >= self.probe_every:
            self._since_probe = 0
            return True
        self.skipped += 1
        return False

    def answered(self) -> None:
        """A request was answered (any answer, exception included, proves the unit is there)."""
        self.successes += 1
        self.health.ok()
        self._failed_reads = 0
        if self.offline:
            self.offline = False
            log.info("%s: unit %d (%s) answers again", self.connection, self.unit_id, self.device)

    def timed_out(self, error: str) -> None:
        """A request timed out in this read (call at most once per read)."""
        self.timeouts += 1
        self.health.error(error)
        self._failed_reads += 1
        if self.shared_bus and not self.offline and self._failed_reads >= OFFLINE_AFTER:
            self.offline = True
            self._since_probe = 0
            log.warning(
                "%s: unit %d (%s) offline after %d reads without answer (%s); probing every %d "
                "reads",
                self.connection,
                self.unit_id,
                self.device,
                self._failed_reads,
                error,
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
