"""The agent's logging set-up: one line per record on stderr, no secrets, repeated failures
summarised, and the libraries kept in their place.

One line per record: journald (and grep) take each line as a record, so a traceback or a
device's multi-line error text is folded into its record's line (:class:`OneLineFormatter`,
lines joined with `` ⏎ ``). No secrets: every value registered with :func:`redact` (the broker
password, the status page token) is replaced by ``***`` in every record, whatever logged it.
Repeated failures: :class:`Repeated` logs the first failure of a kind at once, then at most one
summary per interval with the count and the last error, and one line on recovery.

asyncua logs at INFO on every read, so its loggers stay at WARNING. It also logs disconnects
that the agent expects and handles as ERROR with a traceback: an OPC UA server restarting under
the agent makes its publish loop log ``Publish iteration crashed; retrying in 1s`` and a
``ConnectionError: Connection is closed`` traceback, while our driver reports the loss
(``ConnectionLost``), the poller logs one WARNING line and reconnects with backoff. A technician
reading the log must not take that for a crash, so :class:`ExpectedDisconnects` turns such a
record into one DEBUG line without the traceback (shown only with ``--log-level debug``). Any
other asyncua error keeps its level and traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import IO

LIBRARY_LOGGERS = ("asyncua",)
"""Loggers of chatty libraries, kept at WARNING or above."""

DISCONNECT_ERRORS = (ConnectionError, TimeoutError, EOFError)
"""Exception types that mean "the link went away" (ConnectionResetError, BrokenPipeError,
ConnectionRefusedError… are ConnectionErrors; asyncio.TimeoutError is TimeoutError)."""

DISCONNECT_STATUS = frozenset(
    {
        "BadCommunicationError",
        "BadConnectionClosed",
        "BadNoCommunication",
        "BadNotConnected",
        "BadSecureChannelClosed",
        "BadSecureChannelIdInvalid",
        "BadServerHalted",
        "BadServerNotConnected",
        "BadSessionClosed",
        "BadSessionIdInvalid",
        "BadShutdown",
        "BadTimeout",
    }
)
"""OPC UA status codes (OPC 10000-4 §7.38, as asyncua's exception class names) that a server
restart or a broken link produces; matched by name so this module does not import asyncua."""

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NEWLINE = " ⏎ "
"""What a line break inside a record becomes."""
SUMMARY_S = 600.0
"""Longest silence about a failure that goes on: one summary line per 10 minutes."""

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def redact(secret: str | None) -> None:
    """Never log ``secret`` (≥ 4 characters; shorter ones would blank out ordinary words):
    every later record has it replaced by ``***``."""
    if secret and len(secret) >= 4:
        with _secrets_lock:
            _secrets.add(secret)


class OneLineFormatter(logging.Formatter):
    """:data:`FORMAT`, with the traceback and any line breaks folded into the one line, and the
    :func:`redact` secrets blanked."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in _secrets:
            text = text.replace(secret, "***")
        return text.replace("\r\n", "\n").replace("\n", NEWLINE)


class Repeated:
    """Rate limit for one failure that may repeat for hours (a device that does not answer, a
    broker that refuses): the first :meth:`failed` logs at once, later ones are counted and a
    summary is logged at most every ``interval_s``; :meth:`ok` logs one recovery line with the
    count and duration, if anything failed.

    Args:
        logger: where to log.
        what: the subject, e.g. ``"rtu:/dev/ttyUSB0 (vfd1, vfd2): cannot connect"``.
        interval_s: seconds between summaries (default :data:`SUMMARY_S`).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval_s: float = SUMMARY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.interval_s = interval_s
        self.clock = clock
        self.count = 0
        self.unreported = 0
        self.since = 0.0
        self.last_line = 0.0
        self.last_failure = 0.0

    def failed(self, error: str, level: int = logging.WARNING) -> None:
        """One more failure (``error``: what happened this time). One after ``interval_s``
        without any is news again: logged at once (after the summary of what went unlogged)."""
        now = self.clock()
        if self.count and now - self.last_failure >= self.interval_s:
            if self.unreported:
                self.logger.log(
                    level, "%s: %d more times until %.0f s ago", self.what, self.unreported,
                    now - self.last_failure,
                )  # fmt: skip
            self.count = self.unreported = 0
        self.last_failure = now
        self.count += 1
        if self.count == 1:
            self.since = self.last_line = now
            self.logger.log(level, "%s: %s", self.what, error)
            return
        self.unreported += 1
        if now - self.last_line >= self.interval_s:
            self.logger.log(
                level,
                "%s: still failing, %d times in the last %.0f s (%d since %.0f s ago); last: %s",
                self.what,
                self.unreported,
                now - self.last_line,
                self.count,
                now - self.since,
                error,
            )
            self.last_line = now
            self.unreported = 0

    def ok(self, what_now: str = "OK again") -> None:
        """The failure is over (logs only if there was one)."""
        if self.count:
            self.logger.info(
                "%s: %s after %d failures over %.0f s",
                self.what,
                what_now,
                self.count,
                self.clock() - self.since,
            )
        self.count = self.unreported = 0


def is_disconnect(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is an expected loss of the link."""
    seen = 0
    while exc is not None and seen < 8:  # bounded: a cause chain can loop
        if isinstance(exc, DISCONNECT_ERRORS):
            return True
        if any(t.__name__ in DISCONNECT_STATUS for t in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class ExpectedDisconnects(logging.Filter):
    """Handler filter: an asyncua record with a traceback of an expected disconnect becomes one
    DEBUG line, ``<message>: <exception>``, emitted only when the root logger is at DEBUG.

    A handler filter (not a logger filter) so that it covers every ``asyncua.*`` logger,
    whatever its name in the installed asyncua version.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite an expected disconnect in place; False drops it (root logger above DEBUG)."""
        if not record.name.startswith(LIBRARY_LOGGERS) or not record.exc_info:
            return True
        exc = record.exc_info[1]
        if record.levelno < logging.ERROR or not is_disconnect(exc):
            return True
        record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc} (expected; handled)"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def configure(level: int | str, stream: IO[str] | None = None) -> logging.Handler:
    """Set up the root logger for the agent: one stream handler (stderr by default) with
    :class:`OneLineFormatter` and :class:`ExpectedDisconnects`, at ``level`` (a ``logging``
    level or its name, any case); library loggers at WARNING or above.

    Returns:
        The handler (tests read what it wrote).

    Raises:
        ValueError: ``level`` is not a level name.
    """
    if isinstance(level, str):
        value = logging.getLevelName(level.upper())
        if not isinstance(value, int):
            raise ValueError(f"log level {level!r}: expected debug, info, warning or error")
        level = value
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    handler.addFilter(ExpectedDisconnects())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
    return handler
