"""The one driver interface for every protocol (Modbus TCP, Modbus RTU, OPC UA).

A driver owns one *connection*: a TCP socket to one Modbus device, one RS-485 serial port shared
by several unit ids, or one OPC UA session. The agent runs one task per driver (DESIGN.md).

Life cycle::

    driver = drivers.create(connection_spec)
    plan = driver.plan(points)          # once per group of points with the same poll interval
    await driver.connect()              # raises ConnectError (bounded by the connection's timeout)
    readings = await driver.read(plan)  # one Reading per planned point, in plan order
    await driver.write(point, value)    # raises WriteError / ConnectionLost
    await driver.close()                # idempotent, never raises

``read`` never raises for a per-point or per-request failure: those come back as readings of bad
quality with a reason. It raises :class:`~agent.core.model.ConnectionLost` only when the whole
connection is gone, after which the caller closes and reconnects with
:class:`~agent.core.model.Backoff`.
Every network await inside a driver has a timeout.

No library exception escapes a driver: :class:`Driver` wraps ``connect``, ``read``, ``write`` and
``close`` of every subclass (:meth:`Driver.__init_subclass__`), so an exception a protocol library
raises that the driver did not map itself (asyncua's bare ``AssertionError`` when a server refuses
the secure channel, a ``TypeError`` from an EC client key, a pyserial or pymodbus surprise) comes
out as the interface's error: :class:`~agent.core.model.ConnectError` from ``connect``,
:class:`~agent.core.model.ConnectionLost` from ``read`` (the session's state is unknown: close and
reconnect), :class:`~agent.core.model.WriteError` (reason ``driver:<ExceptionType>``) from
``write``; ``close`` swallows it. The first such exception of each type is logged at ERROR with its
traceback, by connection name (it is a bug in a library or a driver, worth a report); every one
is counted in the driver's ``unmapped_errors`` (the status page's ``driver.unmapped_errors``).
``asyncio.CancelledError`` (a ``BaseException``) is never touched.
"""

from __future__ import annotations

import abc
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from agent.core.model import (
    ConnectError,
    ConnectionLost,
    DriverError,
    Reading,
    Value,
    WriteError,
)
from drivers.specs import PointSpec

log = logging.getLogger("drivers")


class ReadPlan(abc.ABC):
    """A protocol-specific, precomputed way to read a set of points (opaque to the caller).

    Attributes:
        points: the planned points, in the order ``read`` returns their readings.
    """

    points: Sequence[PointSpec]

    @property
    @abc.abstractmethod
    def request_count(self) -> int:
        """Number of protocol requests one ``read`` of this plan sends when nothing fails."""


class Driver(abc.ABC):
    """Interface every protocol driver implements. See the module docstring for the life cycle."""

    name: str
    """Connection name used in logs and counters (e.g. ``"rtu:/dev/ttyUSB0"``)."""

    unmapped_errors: dict[str, int]
    """Exception type name → how many library exceptions the boundary mapped (see module doc)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap the subclass's own ``connect``/``read``/``write``/``close`` so that no library
        exception leaves them (the module docstring says what each becomes)."""
        super().__init_subclass__(**kwargs)
        for method, mapper in _MAPPERS.items():
            fn = cls.__dict__.get(method)
            if fn is not None and not getattr(fn, "_mapped", False):
                setattr(cls, method, _mapped(fn, mapper))

    @abc.abstractmethod
    def plan(self, points: Sequence[PointSpec]) -> ReadPlan:
        """Plan the fewest requests that read ``points``. Pure: no I/O.

        Raises:
            ValueError: a point is not of this driver's protocol.
        """

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection.

        Raises:
            ConnectError: refused, unreachable, or not done within the connect timeout.
        """

    @abc.abstractmethod
    async def read(self, plan: ReadPlan) -> list[Reading]:
        """Read every point of ``plan``; one :class:`Reading` per point, in plan order.

        Raises:
            ConnectionLost: the connection is gone (never raised for a per-point failure).
        """

    @abc.abstractmethod
    async def write(self, point: PointSpec, value: Value) -> None:
        """Write ``value`` (engineering units; the driver applies scale, offset and encoding).

        Raises:
            WriteError: the device refused the write or the point is not writable.
            ConnectionLost: the connection is gone.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection. Idempotent; never raises."""

    def counters(self) -> dict[str, Any]:
        """Health counters (requests, timeouts, exceptions by code, reconnects, last error)."""
        return {}


def _unmapped(driver: Driver, what: str, exc: Exception) -> str:
    """Count an exception that escaped ``driver.<what>``; log its first of a type with the
    traceback. Returns the text for the mapped error."""
    kind = type(exc).__name__
    seen = driver.__dict__.setdefault("unmapped_errors", {})
    seen[kind] = seen.get(kind, 0) + 1
    name = getattr(driver, "name", type(driver).__name__)
    if seen[kind] == 1:
        log.error(
            "%s: %s raised %s, which the driver does not map (a library or driver bug); it is"
            " handled as the interface's error, further ones of this type are only counted",
            name,
            what,
            kind,
            exc_info=exc,
        )
    return f"{name}: {what}: unexpected {kind}: {exc}"


def _to_connect_error(driver: Driver, exc: Exception) -> BaseException:
    return ConnectError(_unmapped(driver, "connect", exc))


def _to_connection_lost(driver: Driver, exc: Exception) -> BaseException:
    return ConnectionLost(_unmapped(driver, "read", exc))


def _to_write_error(driver: Driver, exc: Exception) -> BaseException:
    return WriteError(_unmapped(driver, "write", exc), f"driver:{type(exc).__name__}")


def _swallow(driver: Driver, exc: Exception) -> None:
    _unmapped(driver, "close", exc)
    return None


_MAPPERS: dict[str, Callable[[Driver, Exception], BaseException | None]] = {
    "connect": _to_connect_error,
    "read": _to_connection_lost,
    "write": _to_write_error,
    "close": _swallow,
}


def _mapped(fn: Any, mapper: Callable[[Driver, Exception], BaseException | None]) -> Any:
    @functools.wraps(fn)
    async def wrapper(self: Driver, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(self, *args, **kwargs)
        except DriverError:
            raise
        except Exception as exc:
            mapped = mapper(self, exc)
            if mapped is None:
                return None
            raise mapped from exc

    wrapper._mapped = True  # type: ignore[attr-defined]
    return wrapper
