"""``OpcUaDriver``: the :class:`~drivers.base.Driver` for OPC UA over asyncua 2.1.

* ``connect`` opens socket, secure channel and session under a timeout
  (:func:`agent.core.aio.within`) with the spec's ``connect_timeout_s`` (enforced outside the
  library), then reads the server's
  NamespaceArray once, so points with ``namespace_uri`` get the namespace index the server uses
  *now* (indices may change across server restarts; OPC UA Part 3 §8.2.2 / Part 6 §5.2.2.9).
* ``read`` reads every node of a plan in ONE Read service call (OPC UA Part 4 §5.10.2). A bad
  StatusCode for a node → BAD_VALUE with reason ``opcua:<StatusCodeName>`` (e.g.
  ``opcua:BadNodeIdUnknown``); other nodes are unaffected.
* ``write`` writes the Value attribute as a Variant of the node's own data type (read once per node
  and session), so a Float variable receives a Float, not a Double.
* Points with ``mode: subscribe`` are monitored items of one data-change subscription per session
  (:mod:`drivers.opcua_session`); ``read`` reports the latest published value (a newly published
  one with the server's SourceTimestamp as ``Reading.source_ts_ms``; the same value reported again
  on later polls carries none, the poll time stamps it), and items the server refused
  (``BadNodeIdUnknown`` while it loads) are retried on every read. Every read also reads
  Server/ServerStatus/State, so a network that silently drops packets is detected by the timeout
  even when every point is subscribed; a keep-alive task keeps the session alive within
  the server's *revised* session timeout between slow polls.
* Security policy None or Basic256Sha256 (Sign / SignAndEncrypt), identity anonymous, user name or
  X.509 certificate: see :func:`drivers.opcua_session.make_client`. Each connect makes a fresh
  client object (and so a fresh subscription).
* A timeout of the Read/Write call, a closed socket or a session/channel-level status means the
  session is gone: :class:`~agent.core.model.ConnectionLost`. asyncua's auto-reconnect stays off:
  the agent owns reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, ua
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from agent.core.aio import within
from agent.core.health import Health
from agent.core.model import ConnectError, ConnectionLost, Quality, Reading, Value, WriteError
from drivers.base import Driver, ReadPlan
from drivers.opcua_session import SERVER_STATE, KeepAlive, Subscriptions, make_client
from drivers.specs import OpcUaConnection, OpcUaPoint
from drivers.values import to_engineering

CLOSE_TIMEOUT_S = 2.0
"""Bound on tearing a session down (CloseSession + CloseSecureChannel)."""

_LIB_TIMEOUT_MARGIN_S = 2.0  # asyncua's own request timeout is longer, so ours always fires first

_SESSION_LOST = frozenset(
    {
        "BadSessionIdInvalid",
        "BadSessionClosed",
        "BadSessionNotActivated",
        "BadSecureChannelIdInvalid",
        "BadSecureChannelClosed",
        "BadConnectionClosed",
        "BadServerNotConnected",
        "BadCommunicationError",
        "BadShutdown",
        "BadServerHalted",
        "BadTimeout",
        "BadNoCommunication",
    }
)
"""Service results meaning the session or channel is gone (OPC UA Part 4 §7.34, Table 177)."""


class OpcUaReadPlan(ReadPlan):
    """The points of one OPC UA Read call (one request per read).

    Attributes:
        points: the planned points, in reading order (write-only points left out: never read).
    """

    def __init__(self, points: Sequence[OpcUaPoint]) -> None:
        for p in points:
            if not isinstance(p, OpcUaPoint):
                raise ValueError(f"not an OPC UA point: {p!r}")
            ua.NodeId.from_string(p.node_id)  # raises ValueError-like on a malformed id
        self.points: tuple[OpcUaPoint, ...] = tuple(p for p in points if not p.write_only)

    @property
    def request_count(self) -> int:
        """Always 1: the whole plan is one Read service call (0 for an empty plan)."""
        return 1 if self.points else 0


class OpcUaDriver(Driver):
    """Driver for one OPC UA endpoint (one session)."""

    def __init__(self, spec: OpcUaConnection) -> None:
        self.spec = spec
        self.name = spec.name
        self._client: Client | None = None
        self._namespaces: list[str] = []
        self._vtypes: dict[str, ua.VariantType] = {}
        self._requests = 0
        self._responses = 0
        self._timeouts = 0
        self._bad_status: dict[str, int] = {}
        self._connects = 0
        self._health = Health()
        self._keepalive: KeepAlive | None = None
        self._unresponsive = False  # the last failure was silence: close without waiting
        self._subs: Subscriptions | None = None

    def plan(self, points: Sequence[Any]) -> OpcUaReadPlan:
        """Plan ``points`` as one Read call.

        Raises:
            ValueError: a point is not an :class:`~drivers.specs.OpcUaPoint` or its node id is
                malformed.
        """
        try:
            return OpcUaReadPlan(points)
        except ValueError:
            raise
        except Exception as exc:  # asyncua's parser raises its own types for malformed ids
            raise ValueError(f"malformed node id: {exc}") from exc

    async def connect(self) -> None:
        """Open the session and read the NamespaceArray.

        Raises:
            ConnectError: refused, unreachable, rejected, or not done within connect_timeout_s.
        """
        await self.close()
        try:
            client = await make_client(self.spec, self.spec.timeout_s + _LIB_TIMEOUT_MARGIN_S)
        except (ValueError, OSError, UaError) as exc:
            self._health.error(f"client set-up: {exc!r}")
            raise ConnectError(f"{self.name}: {exc}") from exc
        try:
            await within(client.connect(), self.spec.connect_timeout_s)
            self._client = client
            self._namespaces = list(await within(client.get_namespace_array(), self.spec.timeout_s))
        except (TimeoutError, OSError, UaError, ConnectionError, ValueError) as exc:
            self._health.error(f"connect: {exc!r}")
            self._client = client
            self._unresponsive = isinstance(exc, TimeoutError)
            await self.close()
            raise ConnectError(f"{self.name}: {exc!r}") from exc
        except asyncio.CancelledError:
            self._client = client
            await self.close()
            raise
        self._vtypes.clear()
        self._connects += 1
        self._keepalive = KeepAlive(client, self.spec.timeout_s)
        self._subs = Subscriptions(client, self.spec.publish_interval_s, self.spec.timeout_s)

    async def close(self) -> None:
        """Close session and channel (bounded by :data:`CLOSE_TIMEOUT_S`). Idempotent, never
        raises."""
        keepalive, self._keepalive = self._keepalive, None
        self._subs = None
        if keepalive is not None:
            await keepalive.stop()
        client, self._client = self._client, None
        unresponsive, self._unresponsive = self._unresponsive, False
        if client is None:
            return
        if unresponsive:  # do not wait on a dead link: requests then fail at once
            with contextlib.suppress(Exception):
                client.disconnect_socket()
        try:
            await within(client.disconnect(), CLOSE_TIMEOUT_S)
        except asyncio.CancelledError:
            client.disconnect_socket()
            raise
        except Exception as exc:  # the session may already be gone; teardown must not raise
            self._health.error(f"close: {exc!r}")
        finally:
            with contextlib.suppress(Exception):
                client.disconnect_socket()

    def counters(self) -> dict[str, Any]:
        """Health counters: ``requests``, ``responses``, ``timeouts``, ``bad_status`` (status
        name → count of node results), ``reconnects``, ``last_error``, ``last_error_age_s``,
        ``last_ok_age_s`` (seconds ago), ``ok`` (see :class:`~agent.core.health.Health`),
        ``session_timeout_s`` (as revised by the server), ``refused_items`` (monitored items the
        server refused, retried)."""
        ka, subs = self._keepalive, self._subs
        return {
            "session_timeout_s": ka.revised_s if ka else None,
            "refused_items": dict(subs.refused) if subs else {},
            "requests": self._requests,
            "responses": self._responses,
            "timeouts": self._timeouts,
            "bad_status": dict(self._bad_status),
            "reconnects": max(0, self._connects - 1),
            **self._health.snapshot(),
        }

    def _node_id(self, point: OpcUaPoint) -> ua.NodeId:
        """The point's NodeId with the namespace index resolved from ``namespace_uri``.

        Raises:
            KeyError: the server does not know ``namespace_uri``.
        """
        node_id = ua.NodeId.from_string(point.node_id)
        if point.namespace_uri is not None:
            try:
                index = self._namespaces.index(point.namespace_uri)
            except ValueError:
                raise KeyError(point.namespace_uri) from None
            node_id = ua.NodeId(node_id.Identifier, ua.Int16(index), node_id.NodeIdType)
        return node_id

    async def _call(self, coro: Any) -> Any:
        """Await one service call with ``timeout_s``; map transport failures to ConnectionLost."""
        self._requests += 1
        if self._keepalive is not None and self._keepalive.failed:
            coro.close()
            self._unresponsive = True
            self._health.error(self._keepalive.failed)
            raise ConnectionLost(f"{self.name}: {self._keepalive.failed}")
        try:
            result = await within(coro, self.spec.timeout_s)
        except TimeoutError as exc:
            self._timeouts += 1
            self._health.error("timeout")
            self._unresponsive = True
            raise ConnectionLost(f"{self.name}: no answer in {self.spec.timeout_s} s") from exc
        except UaStatusCodeError as exc:
            name = ua.StatusCode(exc.code).name
            if name in _SESSION_LOST:
                self._health.error(name)
                raise ConnectionLost(f"{self.name}: {name}") from exc
            raise
        except (OSError, ConnectionError, UaError) as exc:
            self._health.error(repr(exc))
            raise ConnectionLost(f"{self.name}: {exc!r}") from exc
        self._responses += 1
        answered_at = self._health.ok()
        if self._keepalive is not None:
            self._keepalive.last_request = answered_at
        return result

    def _require_client(self) -> Client:
        if self._client is None:
            raise ConnectionLost(f"{self.name}: not connected")
        return self._client

    async def read(self, plan: ReadPlan) -> list[Reading]:
        """Read all nodes of ``plan`` in one Read call; one reading per point, in plan order.

        Raises:
            ConnectionLost: the session is gone or the call timed out.
            ValueError: ``plan`` was not made by an OPC UA driver.
        """
        if not isinstance(plan, OpcUaReadPlan):
            raise ValueError("not an OPC UA read plan")
        client = self._require_client()
        out: list[Reading | None] = [None] * len(plan.points)
        nodes, where, subscribed = [], [], []
        for i, p in enumerate(plan.points):
            try:
                node_id = self._node_id(p)
            except KeyError:
                out[i] = Reading(p.name, None, Quality.BAD_VALUE, "opcua:BadNamespaceUnknown")
                continue
            if p.mode == "subscribe":
                subscribed.append((i, node_id))
            else:
                nodes.append(client.get_node(node_id))
                where.append(i)
        if subscribed:
            await self._read_subscribed(plan, subscribed, out)
        # Server state rides along: a silently dead network shows as a timeout on every read
        nodes.append(client.get_node(SERVER_STATE))
        try:
            results = await self._call(client.read_attributes(nodes))
        except UaStatusCodeError as exc:  # a service-level result that is not a lost session
            results = [ua.DataValue(StatusCode=ua.StatusCode(exc.code))] * len(nodes)
        for i, dv in zip(where, results[:-1], strict=True):
            out[i] = self._reading(plan.points[i], dv)
        return [r for r in out if r is not None]

    async def _read_subscribed(
        self,
        plan: OpcUaReadPlan,
        subscribed: list[tuple[int, ua.NodeId]],
        out: list[Reading | None],
    ) -> None:
        subs = self._subs
        assert subs is not None
        failed: str | None = None
        try:
            await self._call(subs.ensure([n for _, n in subscribed]))
        except UaStatusCodeError as exc:
            failed = f"opcua:{ua.StatusCode(exc.code).name}"
        if subs.status is not None:
            self._health.error(subs.status)
            raise ConnectionLost(f"{self.name}: {subs.status}")
        for i, node_id in subscribed:
            p = plan.points[i]
            dv = subs.latest(node_id)
            refused = subs.refused.get(node_id.to_string())
            if dv is not None:
                r = self._reading(p, dv)
                if subs.take_new(node_id) and dv.SourceTimestamp is not None:
                    r = r._replace(source_ts_ms=_epoch_ms(dv.SourceTimestamp))
                out[i] = r
            elif refused is not None or failed is not None:
                reason = failed or f"opcua:{refused}"
                out[i] = Reading(p.name, None, Quality.BAD_VALUE, reason)
            else:
                out[i] = Reading(p.name, None, Quality.COMM_FAIL, "opcua:no_data_yet")

    def _reading(self, point: OpcUaPoint, dv: ua.DataValue) -> Reading:
        status = dv.StatusCode if dv.StatusCode is not None else ua.StatusCode()
        if not status.is_good():
            name = status.name
            self._bad_status[name] = self._bad_status.get(name, 0) + 1
            return Reading(point.name, None, Quality.BAD_VALUE, f"opcua:{name}")
        value = dv.Value.Value if dv.Value is not None else None
        if isinstance(value, bool):
            return Reading(point.name, value)
        if not isinstance(value, int | float):
            return Reading(point.name, None, Quality.BAD_VALUE, "type")
        return to_engineering(point, value)

    async def write(self, point: Any, value: Value) -> None:
        """Write ``value`` (engineering units; raw = (value − offset) / scale) to the node's Value
        attribute, as a Variant of the node's data type.

        Raises:
            WriteError: not writable (``not_writable``), outside valid_min/valid_max (``range``),
                or refused by the server (``opcua:<StatusCodeName>``).
            ConnectionLost: the session is gone or the call timed out.
        """
        if not isinstance(point, OpcUaPoint):
            raise WriteError(f"not an OPC UA point: {point!r}", "not_opcua")
        if not point.writable:
            raise WriteError(f"{point.name} is not writable", "not_writable")
        if value is None:
            raise WriteError(f"{point.name}: no value", "range")
        if not isinstance(value, bool) and (
            (point.valid_min is not None and value < point.valid_min)
            or (point.valid_max is not None and value > point.valid_max)
        ):
            raise WriteError(f"{point.name}: {value} outside the valid range", "range")
        client = self._require_client()
        try:
            node = client.get_node(self._node_id(point))
        except KeyError as exc:
            raise WriteError(
                f"{point.name}: unknown namespace", "opcua:BadNamespaceUnknown"
            ) from exc
        try:
            vtype = self._vtypes.get(point.name)
            if vtype is None:
                vtype = await self._call(node.read_data_type_as_variant_type())
                self._vtypes[point.name] = vtype
            try:
                raw = _to_raw(point, value, vtype)
            except (TypeError, ValueError, OverflowError) as exc:
                raise WriteError(f"{point.name}: {value!r} is not a number", "range") from exc
            dv = ua.DataValue(ua.Variant(raw, vtype))
            await self._call(node.write_attribute(ua.AttributeIds.Value, dv))
        except UaStatusCodeError as exc:
            name = ua.StatusCode(exc.code).name
            raise WriteError(f"{point.name}: {name}", f"opcua:{name}") from exc


_INT_VTYPES = frozenset(
    {
        ua.VariantType.SByte,
        ua.VariantType.Byte,
        ua.VariantType.Int16,
        ua.VariantType.UInt16,
        ua.VariantType.Int32,
        ua.VariantType.UInt32,
        ua.VariantType.Int64,
        ua.VariantType.UInt64,
    }
)


def _epoch_ms(t: datetime) -> int:
    """An OPC UA DateTime (UTC; naive means UTC) as ms since the Unix epoch."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def _to_raw(point: OpcUaPoint, value: Value, vtype: ua.VariantType) -> Any:
    """Engineering value → the raw value for a Variant of ``vtype``."""
    if vtype is ua.VariantType.Boolean:
        return bool(value)
    assert value is not None
    raw = (
        (float(value) - point.offset) / point.scale
        if (point.scale, point.offset) != (1.0, 0.0)
        else value
    )
    if vtype in _INT_VTYPES:
        return round(raw)
    return float(raw)
