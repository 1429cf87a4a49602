"""The agent's logging set-up: one line per record on stderr, and the libraries kept in their
place.

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
    :class:`ExpectedDisconnects`, at ``level`` (a ``logging`` level or its name, any case);
    library loggers at WARNING or above.

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
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ExpectedDisconnects())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
    return handler
