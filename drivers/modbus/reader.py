"""Reading a :class:`~drivers.modbus.plan.ModbusReadPlan` over one Modbus link: the outcome of
each request, splitting a block that got an exception, what is learned from it and its
re-probing, offline units and their probes (the behaviour is described in
:mod:`drivers.modbus.client`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.core.model import ConnectionLost, Quality, Reading
from drivers.modbus import codec, columns
from drivers.modbus.health import GATEWAY_EXCEPTIONS, UnitHealth
from drivers.modbus.learned import Learned, LearnedMap
from drivers.modbus.link import (
    ModbusCrcError,
    ModbusExceptionResponse,
    ModbusGarbled,
    ModbusLink,
    ModbusTimeout,
)
from drivers.modbus.plan import Member, ModbusReadPlan, ReadRequest, plan_requests
from drivers.specs import ModbusPoint, ModbusRtuConnection, ModbusTcpConnection

TCP_MAX_CONSECUTIVE_TIMEOUTS = 3
"""N: consecutive timeouts (no answer of any kind in between) after which a Modbus TCP connection
is declared lost."""

TRANSIENT_EXCEPTIONS = frozenset({5, 6})
"""Exception codes that say "not now" rather than "not this address": 05 ACKNOWLEDGE and
06 SERVER DEVICE BUSY (Modbus Application Protocol V1.1b3 §7). They give COMM_FAIL readings with
reason ``modbus:exception:<code>`` and teach the planner nothing."""


class PlanReader:
    """Reads plans over one connection's link, keeping what it learned and the link's
    consecutive-timeout count (shared with the driver's writes).

    Args:
        spec: the connection.
        link: its transport.
        unit: unit id → its :class:`~drivers.modbus.health.UnitHealth` (the driver's).
        learned: what exception responses taught (:mod:`drivers.modbus.learned`).
        probe_interval_s: least time between two probes of an offline unit, s.
    """

    def __init__(
        self,
        spec: ModbusTcpConnection | ModbusRtuConnection,
        link: ModbusLink,
        unit: Callable[[int], UnitHealth],
        learned: LearnedMap,
        probe_interval_s: float,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.probe_interval_s = probe_interval_s
        self._link = link
        self._unit = unit
        self._learned = learned
        self._consecutive_timeouts = 0
        self._cache: dict[int, tuple[int, ModbusReadPlan, tuple[ReadRequest, ...]]] = {}

    def reset(self) -> None:
        """A new connection: forget what was learned and the consecutive timeouts."""
        self._learned.clear()
        self._consecutive_timeouts = 0

    async def read(self, plan: ModbusReadPlan) -> list[Reading]:
        """Read every point of ``plan`` (outcomes: :mod:`drivers.modbus.client`); one reading
        per point, in plan order.

        Raises:
            ConnectionLost: the transport is gone, or (TCP) too many consecutive timeouts.
        """
        points = plan.points
        out: list[Reading | None] = [None] * len(points)
        now = time.monotonic()
        requests = self._requests(plan)
        units = list(dict.fromkeys(r.unit_id for r in requests))
        skipped: set[int] = set()
        probing: set[int] = set()
        for unit_id in units:
            health = self._unit(unit_id)
            was_offline = health.offline
            if not health.due(now, self.probe_interval_s):
                skipped.add(unit_id)
            elif was_offline:
                probing.add(unit_id)
        # probes of offline units go last: a dead unit never delays the live units' readings
        ordered = sorted(requests, key=lambda r: r.unit_id in probing)
        answers_before = self._link.responses
        dead: dict[int, str] = {}  # unit id → reason for its remaining requests in this read
        for req in ordered:
            uid = req.unit_id
            health = self._unit(uid)
            if uid in skipped:
                self._fill(out, points, req.members, Quality.COMM_FAIL, "offline")
                continue
            if uid in dead:
                self._fill(out, points, req.members, Quality.COMM_FAIL, dead[uid])
                continue
            try:
                block = await self._link.read(uid, req.table, req.address, req.count)
            except ModbusTimeout as exc:
                health.timed_out(str(exc))
                dead[uid] = "offline" if uid in probing else "timeout"
                self._fill(out, points, req.members, Quality.COMM_FAIL, dead[uid])
                self.timed_out()
                continue
            except ModbusGarbled as exc:
                self._answered_badly(health, exc)
                reason = "crc" if isinstance(exc, ModbusCrcError) else "garbled"
                self._fill(out, points, req.members, Quality.COMM_FAIL, reason)
                continue
            except ModbusExceptionResponse as exc:
                self._consecutive_timeouts = 0
                if exc.code in GATEWAY_EXCEPTIONS:
                    health.unreachable(exc.code)
                    dead[uid] = "offline" if uid in probing else f"modbus:exception:{exc.code}"
                    self._fill(out, points, req.members, Quality.COMM_FAIL, dead[uid])
                    continue
                health.exception(exc.code)
                probing.discard(uid)
                if exc.code in TRANSIENT_EXCEPTIONS:
                    reason = f"modbus:exception:{exc.code}"
                    self._fill(out, points, req.members, Quality.COMM_FAIL, reason)
                    continue
                failed = await self._split(plan, req, exc.code, out, now)
                if failed is not None:
                    dead[uid] = failed
                continue
            self._consecutive_timeouts = 0
            health.answered()
            probing.discard(uid)
            columns.decode_request(points, req, block, out)
        await self._reprobe(plan, out, skipped | set(dead), now)
        link_alive = self._link.responses > answers_before
        for unit_id in units:
            self._unit(unit_id).end_read(now, link_alive)
        if None in out:  # a scan in C; the usual read has a reading for every point
            bad = self._learned.bad
            for i, p in enumerate(points):
                if out[i] is None:
                    out[i] = Reading(p.name, None, Quality.BAD_VALUE, bad.get(p.name, "unread"))
        return out  # type: ignore[return-value]  # no None left

    def _answered_badly(self, health: UnitHealth, exc: ModbusGarbled) -> None:
        self._consecutive_timeouts = 0
        health.failed("crc_errors" if isinstance(exc, ModbusCrcError) else "garbled", str(exc))

    def _requests(self, plan: ModbusReadPlan) -> tuple[ReadRequest, ...]:
        """The plan's requests with learned-unreadable points skipped (cached per version)."""
        learned = self._learned
        if not learned.items:
            return plan.requests
        cached = self._cache.get(id(plan))
        if cached is not None and cached[0] == learned.version and cached[1] is plan:
            return cached[2]
        skip = {i for i, p in enumerate(plan.points) if p.name in learned.bad}
        breaks = learned.breaks | plan.breaks
        reqs = plan_requests(plan.points, plan.limits, skip=skip, breaks=breaks)
        self._cache[id(plan)] = (learned.version, plan, reqs)
        return reqs

    async def _split(
        self,
        plan: ModbusReadPlan,
        req: ReadRequest,
        code: int,
        out: list[Reading | None],
        now: float,
    ) -> str | None:
        """Read the members of a request that got exception ``code`` one extent at a time.

        Returns None, or the reason for the unit's remaining points of this read when it stopped
        answering meanwhile (timeout, or 0x0A/0x0B from its gateway).
        """
        points = plan.points
        health = self._unit(req.unit_id)
        extents: dict[tuple[int, int], list[Member]] = {}
        for m in req.members:
            p = points[m.index]
            extents.setdefault((p.address, p.width), []).append(m)
        if len(extents) == 1:
            ((address, width),) = extents
            self._learn_bad(req, address, width, req.members, points, f"modbus:exception:{code}")
            self._fill(out, points, req.members, Quality.BAD_VALUE, f"modbus:exception:{code}")
            return None
        any_bad = False
        for (address, width), members in extents.items():
            try:
                block = await self._link.read(req.unit_id, req.table, address, width)
            except ModbusTimeout as exc:
                health.timed_out(str(exc))
                self._fill_rest(out, points, req.members, "timeout")
                self.timed_out()
                return "timeout"
            except ModbusGarbled as exc:
                self._answered_badly(health, exc)
                reason = "crc" if isinstance(exc, ModbusCrcError) else "garbled"
                self._fill(out, points, members, Quality.COMM_FAIL, reason)
                continue
            except ModbusExceptionResponse as exc:
                r = f"modbus:exception:{exc.code}"
                if exc.code in GATEWAY_EXCEPTIONS:
                    health.unreachable(exc.code)
                    self._fill_rest(out, points, req.members, r)
                    return r
                health.exceptions[exc.code] += 1
                any_bad = True
                self._learn_bad(req, address, width, members, points, r)
                self._fill(out, points, members, Quality.BAD_VALUE, r)
                continue
            health.successes += 1
            for m in members:
                out[m.index] = codec.decode_point(points[m.index], block, 0)
        if not any_bad:
            self._learn_unbridgeable(req, points, now)
        return None

    def _learn_bad(
        self,
        req: ReadRequest,
        address: int,
        width: int,
        members: Sequence[Member],
        points: Sequence[ModbusPoint],
        reason: str,
    ) -> None:
        names = tuple(points[m.index].name for m in members)
        now = time.monotonic()
        self._learned.learn_bad(req.unit_id, req.table, address, width, names, reason, now)

    def _learn_unbridgeable(
        self, req: ReadRequest, points: Sequence[ModbusPoint], now: float
    ) -> None:
        """Every point read alone but not together: never bridge this block's holes again (or,
        without holes, never join its points)."""
        used: set[int] = set()
        for m in req.members:
            p = points[m.index]
            used.update(range(p.address, p.address + p.width))
        holes = [a for a in range(req.address, req.address + req.count) if a not in used]
        cuts = holes or [points[m.index].address for m in req.members[1:]]
        self._learned.learn_unbridgeable(req.unit_id, req.table, req.address, req.count, cuts, now)

    async def _reprobe(
        self, plan: ModbusReadPlan, out: list[Reading | None], gone: set[int], now: float
    ) -> None:
        """Re-probe the learned items that are due (at most ``REPROBE_PER_READ``, one request
        each; units that did not answer in this read are left for later). An answer forgets
        the item and, for unreadable points of this plan, gives their readings at once."""
        due = self._learned.due(now)
        if not due:  # the usual case: nothing learned, or nothing due
            return
        index = {p.name: i for i, p in enumerate(plan.points)}
        for item in due:
            if item.unit_id in gone:
                continue
            block = await self._probe(item, gone, now)
            if block is None:
                continue
            for name in item.points:
                i = index.get(name)
                if i is not None:
                    p = plan.points[i]
                    out[i] = codec.decode_point(p, block, p.address - item.address)

    async def _probe(self, item: Learned, gone: set[int], now: float) -> list[Any] | None:
        """One re-probe request: the registers/bits, or None (then the item stays learned)."""
        health = self._unit(item.unit_id)
        try:
            block = await self._link.read(item.unit_id, item.table, item.address, item.count)
        except ModbusTimeout as exc:
            health.timed_out(str(exc))
            gone.add(item.unit_id)
            self._learned.confirm(item, now)
            self.timed_out()
            return None
        except ModbusGarbled as exc:
            self._answered_badly(health, exc)
            self._learned.confirm(item, now)
            return None
        except ModbusExceptionResponse as exc:
            self._consecutive_timeouts = 0
            if exc.code in GATEWAY_EXCEPTIONS:
                health.unreachable(exc.code)
                gone.add(item.unit_id)
            else:
                health.exception(exc.code)
            self._learned.confirm(item, now)
            return None
        self._consecutive_timeouts = 0
        health.answered()
        self._learned.forget(item)
        return block

    def answered(self) -> None:
        """Something on the connection answered: the consecutive-timeout count starts over."""
        self._consecutive_timeouts = 0

    def timed_out(self) -> None:
        """A request timed out; on Modbus TCP the connection is lost after
        :data:`TCP_MAX_CONSECUTIVE_TIMEOUTS` in a row.

        Raises:
            ConnectionLost: that many consecutive timeouts on Modbus TCP.
        """
        self._consecutive_timeouts += 1
        if (
            isinstance(self.spec, ModbusTcpConnection)
            and self._consecutive_timeouts >= TCP_MAX_CONSECUTIVE_TIMEOUTS
        ):
            n = self._consecutive_timeouts
            self._link.health.error(f"{n} consecutive timeouts")
            raise ConnectionLost(f"{self.name}: {n} consecutive timeouts")

    @staticmethod
    def _fill(
        out: list[Reading | None],
        points: Sequence[ModbusPoint],
        members: Sequence[Member],
        quality: Quality,
        reason: str,
    ) -> None:
        for m in members:
            out[m.index] = Reading(points[m.index].name, None, quality, reason)

    def _fill_rest(
        self,
        out: list[Reading | None],
        points: Sequence[ModbusPoint],
        members: Sequence[Member],
        reason: str,
    ) -> None:
        self._fill(
            out, points, [m for m in members if out[m.index] is None], Quality.COMM_FAIL, reason
        )
