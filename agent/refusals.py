"""What the uplink does when the broker refuses: back off, say so once by name, keep the data.

A broker refuses a publish with a PUBACK failure reason code (MQTT 5 §3.4.2.1, codes 0x80 and
up: 0x80 unspecified error, 0x83 implementation specific error, 0x87 not authorised, e.g. an
ACL; 0x90 topic name invalid; 0x95 packet too large; 0x97 quota exceeded) and ends a session
with a DISCONNECT reason code (MQTT 5 §3.14.2.1: 0x93 receive maximum exceeded, 0x95, 0x97,
0x89 server busy, 0x9F connection rate exceeded …). Every refusal gets the same reaction:

* the refused rows stay in the buffer (they are sent again, in order, once the broker takes
  them: after the ACL is fixed and reloaded, the quota refilled …);
* the stream that was refused holds (:class:`RefusalGate`): its next publish waits for the one
  shared :class:`agent.core.model.Backoff`, and then only one probe at a time goes out until a
  PUBACK succeeds, so a broker that refuses everything costs a publish every few seconds, not a
  hot loop;
* :class:`Refusals` logs a WARNING the first time each (packet, reason, topic) is seen, then a
  summary of the counts at most every :data:`SUMMARY_EVERY_S`, and keeps counts for the status
  page and the retained ``status`` health (``uplink.refusals``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from agent.core.model import Backoff

log = logging.getLogger(__name__)

SUMMARY_EVERY_S = 60.0
"""Least time between two summary log lines of refusals, s."""

REFUSED_BACKOFF_CAP_S = 15.0
"""Longest hold of a refused stream between two probes, s (a fixed ACL shows within it)."""


class Refusals:
    """Counts and logs every refusal of this agent's broker (see the module docstring).

    Keys are ``"<PACKET> <code> <name> (<topic kind>)"``, e.g.
    ``"PUBACK 0x87 Not authorized (telemetry)"``.
    """

    def __init__(self) -> None:
        self.on_new: Callable[[], None] | None = None
        """Called when a refusal of a new kind is first seen (the uplink then refreshes its
        retained status at once, so the platform sees the refusal without waiting)."""
        self.counts: Counter[str] = Counter()
        self._since: Counter[str] = Counter()
        self._summary_at = time.monotonic()
        self.last: str | None = None
        self.last_at: float | None = None
        """``time.monotonic()`` of the newest refusal."""

    def note(self, packet: str, code: int, name: str, kind: str, action: str) -> None:
        """Count one refusal; log it by name the first time, then in the periodic summary.

        Args:
            packet: ``PUBACK`` or ``DISCONNECT``.
            code: the MQTT 5 reason code (0x80 and up).
            name: its name from MQTT 5 §2.4, e.g. ``Not authorized``.
            kind: what was refused: a topic kind (``telemetry``, ``event``, ``status``, ``meta``,
                ``cmd``) or ``session``.
            action: what the agent does about it, for the log line.
        """
        key = f"{packet} {code:#04x} {name} ({kind})"
        new = key not in self.counts
        if new:
            log.warning("uplink: broker refused: %s; %s", key, action)
        self.counts[key] += 1
        self._since[key] += 1
        self.last, self.last_at = key, time.monotonic()
        self.summarise()
        if new and self.on_new is not None:
            self.on_new()

    def summarise(self, *, force: bool = False) -> None:
        """Log the refusals since the last summary, when :data:`SUMMARY_EVERY_S` has passed."""
        now = time.monotonic()
        if not self._since or (not force and now - self._summary_at < SUMMARY_EVERY_S):
            return
        parts = ", ".join(f"{k} ×{n}" for k, n in sorted(self._since.items()))
        log.warning("uplink: broker refusals in the last %.0f s: %s", now - self._summary_at, parts)
        self._since.clear()
        self._summary_at = now

    def snapshot(self) -> dict[str, Any]:
        """For status: ``{"counts": {key: n}, "last": key | None, "last_age_s": s | None}``."""
        age = None if self.last_at is None else round(time.monotonic() - self.last_at, 1)
        return {"counts": dict(self.counts), "last": self.last, "last_age_s": age}


class RefusalGate:
    """Holds one stream (telemetry or events) after the broker refused it.

    After :meth:`refused`, :meth:`wait` returns only when the shared Backoff's delay has passed;
    :attr:`probing` stays true until :meth:`accepted`, and callers then send one message at a
    time. The gate lives as long as the uplink, not a connection: a reconnect does not prove
    the broker takes the stream again.
    """

    def __init__(self, kind: str, refusals: Refusals) -> None:
        self.kind = kind
        self.refusals = refusals
        self.backoff = Backoff(initial_s=0.5, cap_s=REFUSED_BACKOFF_CAP_S)
        self.probing = False
        self._until = 0.0

    async def wait(self) -> None:
        """Sleep until the stream may send again (returns at once when not held)."""
        for _ in range(100):  # a refusal meanwhile moves the end: look again (bounded)
            left = self._until - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)

    def refused(self, packet: str, code: int, name: str) -> float:
        """The broker refused a message of this stream: hold it; returns the hold, s.

        Refusals of messages that were already in flight when the hold began count, but do
        not grow the backoff again (one step per probe round, not per message)."""
        left = self._until - time.monotonic()
        if left > 0:
            self.refusals.note(packet, code, name, self.kind, "held")
            return left
        hold = self.backoff.next()
        self._until = time.monotonic() + hold
        self.probing = True
        self.refusals.note(
            packet, code, name, self.kind, "rows kept in the buffer, retrying with backoff"
        )
        return hold

    def accepted(self) -> None:
        """A publish of this stream succeeded: forget the refusals."""
        if self.probing:
            log.info("uplink: broker accepts %s again", self.kind)
            self.refusals.summarise(force=True)
        self.probing = False
        self.backoff.reset()
