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
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from agent.core.model import Reading, Value
from drivers.specs import PointSpec


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
