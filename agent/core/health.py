"""When a link or a device last failed and last worked: :class:`Health`.

A bare "last error" text stays shown long after the device recovered and misleads a technician;
with the time of the error and of the last success beside it, the status page can say "12 s ago,
recovered" or "not recovered". Ages and the ok/failing order use ``time.monotonic()`` (a
wall-clock step does not make an error look old or new); the UTC time of the last error is the
agent's wall clock (:data:`agent.core.model.clock`) when it happened.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from agent.core.model import clock


class Health:
    """Last error and last success of one connection or device.

    Attributes:
        last_error: text of the last failure, or ``None``.
        error_at: ``time.monotonic()`` of the last failure, or ``None``.
        error_utc_ms: wall-clock UTC ms of the last failure, or ``None``.
        ok_at: ``time.monotonic()`` of the last success, or ``None``.
    """

    __slots__ = ("error_at", "error_utc_ms", "last_error", "ok_at")

    def __init__(self) -> None:
        self.last_error: str | None = None
        self.error_at: float | None = None
        self.error_utc_ms: int | None = None
        self.ok_at: float | None = None

    def error(self, text: str) -> None:
        """Record a failure now."""
        self.last_error = text
        self.error_at = time.monotonic()
        self.error_utc_ms = clock.now_ms()

    def ok(self) -> float:
        """Record a success now; returns its ``time.monotonic()``."""
        self.ok_at = now = time.monotonic()
        return now

    @property
    def ok_now(self) -> bool | None:
        """True when the last success is newer than the last failure (or there was none), False
        when the last failure is the newer (or nothing worked yet), ``None`` before either."""
        if self.error_at is None:
            return None if self.ok_at is None else True
        return self.ok_at is not None and self.ok_at > self.error_at

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """``last_error``; ``last_error_at``: its UTC time, ISO 8601 with ms and ``Z``;
        ``last_error_age_s`` and ``last_ok_age_s``: seconds before ``now`` (a
        ``time.monotonic()`` value, default the current one); ``ok``: :attr:`ok_now`. Times and
        ages are ``None`` for what never happened."""
        now = time.monotonic() if now is None else now
        return {
            "last_error": self.last_error,
            "last_error_at": utc_text(self.error_utc_ms),
            "last_error_age_s": _age(now, self.error_at),
            "last_ok_age_s": _age(now, self.ok_at),
            "ok": self.ok_now,
        }


def utc_text(ms: int | None) -> str | None:
    """UTC ms since the epoch as ISO 8601 with milliseconds and ``Z`` (``None`` stays)."""
    if ms is None:
        return None
    at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _age(now: float, at: float | None) -> float | None:
    return None if at is None else round(max(0.0, now - at), 1)
