"""Modbus read planning: coalesce points into the fewest read requests. Pure: no I/O.

Model
-----
A point occupies the address interval ``[address, address + width)`` of one data table of one unit
id (``width`` = registers of its data type, or 1 for a coil / discrete input / bit-in-register). A
:class:`ReadRequest` reads the interval ``[address, address + count)`` with one function code
(01/02/03/04) and must obey the device's :class:`~drivers.specs.ModbusLimits`:

* ``count <= max_registers`` for registers (Modbus Application Protocol V1.1b3 §6.3/§6.4: 125 for
  FC 03/04; INVT Goodrive: 16 words per 03H read, INVT e-book 9.4.1 [S57] via domain.md §4.0/§4.4),
  ``count <= max_bits`` for coils / discrete inputs (ibid. §6.1/§6.2: 2000 for FC 01/02);
* no run of more than ``max_gap`` consecutive addresses of *no planned point* is bridged;
* no request crosses a *break* (a boundary the driver learned the device will not read across,
  e.g. around an address that answers with a Modbus exception) lying between two points;
* every point lies wholly inside one request (a 32/64-bit value is never split across requests,
  since its halves would not be read atomically).

Requests for different unit ids or tables are never merged.

Why the greedy sweep is minimal
-------------------------------
Split the points of one (unit id, table) into *clusters*: sort by address and cut wherever the next
point starts more than ``max_gap`` free addresses after everything before it ends, or where a break
lies between them. No request can contain points of two clusters (it would bridge a too-long free
run or cross a break), so the minimum is the sum of the minima per cluster. Within a cluster the
only constraint left is ``count <= L``. Greedy: take the lowest remaining start ``a``, put every
remaining point with ``end <= a + L`` into one request ``[a, max end)``, repeat. Exchange argument:
in any feasible solution the point starting at ``a`` lies in some request ``R`` with
``R.start <= a``; every remaining point ``R`` holds starts at ``>= a`` and ends at
``<= R.start + L <= a + L``, so the greedy request holds all of them too. Replacing ``R`` by the
greedy request keeps the solution feasible with the same count, and the rest of the cluster is a
smaller instance of the same problem; by induction greedy uses no more requests than any solution.
(The greedy request stays inside the cluster, so it bridges no long free run and crosses no break.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from drivers.base import ReadPlan
from drivers.specs import ModbusLimits, ModbusPoint, Table

MAX_ADDRESS = 0xFFFF
"""Highest PDU address (Modbus Application Protocol V1.1b3 §4.4: addresses 0–65535)."""

_TABLE_ORDER = {t: i for i, t in enumerate(Table)}


@dataclass(frozen=True, slots=True)
class Member:
    """One point inside a request.

    Attributes:
        index: position of the point in the planned sequence (the plan's reading order).
        offset: first register (or bit) of the point, counted from the request's address.
    """

    index: int
    offset: int


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: ``count`` registers or bits from ``address`` of ``table`` at ``unit_id``.

    Attributes:
        unit_id: Modbus unit id (slave address).
        table: data table; selects the function code (01 coil, 02 discrete input, 03 holding,
            04 input register).
        address: 0-based PDU address of the first register or bit.
        count: number of registers or bits.
        members: the points the request carries, by plan index and offset, in address order.
    """

    unit_id: int
    table: Table
    address: int
    count: int
    members: tuple[Member, ...]


Break = tuple[int, Table, int]
"""``(unit_id, table, boundary)``: no request may read both ``boundary - 1`` and ``boundary``."""


def plan_requests(
    points: Sequence[ModbusPoint],
    limits: Mapping[int, ModbusLimits] | None = None,
    *,
    skip: Collection[int] = (),
    breaks: Collection[Break] = (),
) -> tuple[ReadRequest, ...]:
    """Coalesce ``points`` into the fewest read requests (see the module docstring for the proof).

    Args:
        points: the points to read; ``Member.index`` refers to positions in this sequence.
        limits: request limits per unit id; unit ids not listed get ``ModbusLimits()``.
        skip: indices of points to leave out (e.g. known to answer with an exception).
        breaks: boundaries no request may cross.

    Returns:
        Requests ordered by unit id, table and address.

    Raises:
        ValueError: a point is wider than its unit's limit, or extends past address 65535.
    """
    limits = limits or {}
    groups: dict[tuple[int, Table], list[int]] = defaultdict(list)
    for i, p in enumerate(points):
        if i in skip:
            continue
        if p.address < 0 or p.address + p.width - 1 > MAX_ADDRESS:
            raise ValueError(f"point {p.name!r}: address {p.address} out of 0..{MAX_ADDRESS}")
        groups[(p.unit_id, p.table)].append(i)
    break_set = set(breaks)
    requests: list[ReadRequest] = []
    for (unit_id, table), idx in sorted(groups.items(), key=lambda kv: _group_key(kv[0])):
        lim = limits.get(unit_id, ModbusLimits())
        max_count = lim.max_bits if table.is_bit else lim.max_registers
        for cluster in _clusters(points, idx, lim.max_gap, unit_id, table, break_set):
            requests.extend(_sweep(points, cluster, max_count, unit_id, table))
    return tuple(requests)


def _group_key(key: tuple[int, Table]) -> tuple[int, int]:
    return key[0], _TABLE_ORDER[key[1]]


def _clusters(
    points: Sequence[ModbusPoint],
    idx: list[int],
    max_gap: int,
    unit_id: int,
    table: Table,
    breaks: set[Break],
) -> list[list[int]]:
    """Split one group's point indices (any order) into clusters no request may span."""
    order = sorted(idx, key=lambda i: (points[i].address, points[i].width, i))
    clusters: list[list[int]] = []
    end = -1
    for i in order:
        p = points[i]
        if (
            not clusters
            or p.address - end > max_gap
            or _break_between(breaks, unit_id, table, end, p.address)
        ):
            clusters.append([i])
            end = p.address + p.width
        else:
            clusters[-1].append(i)
            end = max(end, p.address + p.width)
    return clusters


def _break_between(breaks: set[Break], unit_id: int, table: Table, end: int, start: int) -> bool:
    """Whether a break lies at a boundary in ``[end, start]``, between a cluster ending at ``end``
    and a point starting at ``start``. Breaks inside overlapping points are not checked: a point
    is always read whole."""
    if not breaks or start < end:
        return False
    return any((unit_id, table, b) in breaks for b in range(end, start + 1))


def _sweep(
    points: Sequence[ModbusPoint], cluster: list[int], max_count: int, unit_id: int, table: Table
) -> list[ReadRequest]:
    """Greedy cover of one cluster (sorted by address) with windows of at most ``max_count``."""
    remaining = list(cluster)
    out: list[ReadRequest] = []
    while remaining:
        start = points[remaining[0]].address
        taken = [i for i in remaining if points[i].address + points[i].width <= start + max_count]
        if not taken:
            p = points[remaining[0]]
            raise ValueError(
                f"point {p.name!r}: width {p.width} exceeds the unit's limit of {max_count}"
            )
        end = max(points[i].address + points[i].width for i in taken)
        members = tuple(Member(i, points[i].address - start) for i in taken)
        out.append(ReadRequest(unit_id, table, start, end - start, members))
        taken_set = set(taken)
        remaining = [i for i in remaining if i not in taken_set]
    return out


class ModbusReadPlan(ReadPlan):
    """A Modbus :class:`~drivers.base.ReadPlan`: the points and their coalesced requests.

    Attributes:
        points: the planned points, in reading order; write-only points
            (:attr:`~drivers.specs.ModbusPoint.write_only`) are left out: they are never read.
        limits: the request limits per unit id the plan was made with (the driver re-plans with
            them when it learns to avoid addresses).
        breaks: boundaries around every write-only point, so no request bridges a register
            the device cannot read (it would answer the whole request with an exception).
        requests: the coalesced requests.
    """

    def __init__(
        self, points: Sequence[ModbusPoint], limits: Mapping[int, ModbusLimits] | None = None
    ) -> None:
        for p in points:
            if not isinstance(p, ModbusPoint):
                raise ValueError(f"not a Modbus point: {p!r}")
        names = [p.name for p in points]
        if len(set(names)) != len(names):
            raise ValueError("duplicate point names in one plan")
        self.points: tuple[ModbusPoint, ...] = tuple(p for p in points if not p.write_only)
        self.limits: dict[int, ModbusLimits] = dict(limits or {})
        self.breaks: frozenset[Break] = frozenset(
            (p.unit_id, p.table, b)
            for p in points
            if p.write_only
            for b in range(p.address, p.address + p.width + 1)
        )
        self.requests: tuple[ReadRequest, ...] = plan_requests(
            self.points, self.limits, breaks=self.breaks
        )

    @property
    def request_count(self) -> int:
        """Number of read requests one read sends when nothing fails."""
        return len(self.requests)
