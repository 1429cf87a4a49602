"""What a Modbus driver learned from exception responses, and when to ask the device again.

A request that gets an address-type exception (02 ILLEGAL DATA ADDRESS and the like; not the
"not now" codes 05/06 and not the gateway codes 0A/0B, which are about the path, Modbus
Application Protocol V1.1b3 §7) is split and its points read one extent at a time
(:mod:`drivers.modbus.client`). What that teaches is kept here as :class:`Learned` items:

* an unreadable extent: the points at one ``(unit, table, address, width)`` that answered with an
  exception when read alone. Later reads skip them (they report the remembered reason) and no
  request bridges their addresses;
* an unbridgeable block: every point of a request read fine alone but not together (a device
  that refuses reads spanning undefined addresses). Later reads cut the block at its holes.

Re-probing is per item, not all at once: each item is due :attr:`LearnedMap.reprobe_s` seconds
after it was learned (or last confirmed), and one read re-probes at most
:attr:`LearnedMap.per_read` due items, oldest first, with ONE request each (the extent alone, or
the whole block). An answer forgets the item (the planner merges its points again); another
exception confirms it for ``reprobe_s`` more. So a device with 15 unreadable extents costs at
most ``per_read`` extra requests per poll, spread over the cycles, instead of re-learning the
whole map in one poll.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.modbus.plan import Break
from drivers.specs import Table

REPROBE_S = 60.0
"""Seconds after which a learned item is tried again."""

REPROBE_PER_READ = 2
"""Most learned items re-probed in one read (one request each)."""


@dataclass(slots=True)
class Learned:
    """One learned fact (see the module docstring).

    Attributes:
        unit_id, table, address, count: the request that re-probes it.
        points: names of the unreadable points (empty for an unbridgeable block).
        reason: the remembered reason, ``modbus:exception:<code>``.
        breaks: boundaries no request may cross while this is known.
        since: ``time.monotonic()`` when it was learned or last confirmed; it is re-probed
            ``reprobe_s`` later.
    """

    unit_id: int
    table: Table
    address: int
    count: int
    points: tuple[str, ...]
    reason: str
    breaks: frozenset[Break]
    since: float


class LearnedMap:
    """The learned items of one connection.

    Attributes:
        reprobe_s: seconds between re-probes of one item.
        per_read: most items re-probed per read.
        bad: point name → remembered reason (derived from the items).
        breaks: every item's breaks (derived).
        version: bumped on every change (plans are cached per version).
    """

    def __init__(self, reprobe_s: float = REPROBE_S, per_read: int = REPROBE_PER_READ) -> None:
        self.reprobe_s = reprobe_s
        self.per_read = per_read
        self.items: list[Learned] = []
        self.bad: dict[str, str] = {}
        self.breaks: set[Break] = set()
        self.version = 0

    def learn_bad(
        self,
        unit_id: int,
        table: Table,
        address: int,
        count: int,
        points: tuple[str, ...],
        reason: str,
        now: float,
    ) -> None:
        """Points at ``address .. address+count-1`` answer ``reason`` when read alone."""
        breaks = frozenset((unit_id, table, b) for b in range(address, address + count + 1))
        self._add(Learned(unit_id, table, address, count, points, reason, breaks, now))

    def learn_unbridgeable(
        self, unit_id: int, table: Table, address: int, count: int, cuts: list[int], now: float
    ) -> None:
        """The block ``address .. address+count-1`` reads point by point but not as a whole:
        never cross ``cuts`` (and the boundary after each) while this is known."""
        breaks = frozenset((unit_id, table, b) for a in cuts for b in (a, a + 1))
        self._add(Learned(unit_id, table, address, count, (), "unbridgeable", breaks, now))

    def due(self, now: float) -> list[Learned]:
        """Items to re-probe in this read: at most :attr:`per_read`, oldest due first."""
        ready = sorted((i for i in self.items if now - i.since >= self.reprobe_s), key=_since)
        return ready[: self.per_read]

    def confirm(self, item: Learned, now: float) -> None:
        """The re-probe failed again: keep the item ``reprobe_s`` more."""
        item.since = now

    def forget(self, item: Learned) -> None:
        """The re-probe was answered: drop the item."""
        self.items = [i for i in self.items if i is not item]
        self._rebuild()

    def clear(self) -> None:
        """Forget everything (on connect: it may be another device now)."""
        self.items.clear()
        self._rebuild()

    def _add(self, item: Learned) -> None:
        self.items.append(item)
        self._rebuild()

    def _rebuild(self) -> None:
        self.bad = {p: i.reason for i in self.items for p in i.points}
        self.breaks = {b for i in self.items for b in i.breaks}
        self.version += 1


def _since(item: Learned) -> float:
    return item.since
