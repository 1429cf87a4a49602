"""Declarative Modbus register maps: one :class:`MapPoint` per served point, encoded into a
:class:`~hil_sim.modbus.slave.RegisterBank` and decoded back as the ground truth.

The encoding rules are the ones the agent's config states (drivers/specs.py): engineering value
= raw × scale + offset; word order ``big`` = most significant word first (ABCD), ``little`` = least
significant word first (CDAB); byte order ``little`` swaps the two bytes inside each register.
Point names are the site-wide names of config/example.yaml.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hil_sim.modbus.slave import BIT_TABLES, ModbusError, RegisterBank

Number = float | int | bool

_INT_RANGES = {
    "int16": (-(1 << 15), (1 << 15) - 1, 1),
    "uint16": (0, (1 << 16) - 1, 1),
    "int32": (-(1 << 31), (1 << 31) - 1, 2),
    "uint32": (0, (1 << 32) - 1, 2),
    "int64": (-(1 << 63), (1 << 63) - 1, 4),
    "uint64": (0, (1 << 64) - 1, 4),
}
_FLOATS = {"float32": (">f", 2), "float64": (">d", 4)}
CONFIG_TABLE = {
    "coil": "coil",
    "discrete_input": "discrete_input",
    "holding_register": "holding",
    "input_register": "input",
}
"""Bank table name → the ``register:`` key of the agent's YAML config."""


@dataclass(frozen=True, slots=True)
class MapPoint:
    """One point of a device's register map.

    Attributes:
        name: site-wide point name (as in config/example.yaml).
        table: ``"coil"``, ``"discrete_input"``, ``"holding_register"`` or ``"input_register"``.
        address: 0-based PDU address.
        dtype: ``bool``, ``int16``, ``uint16``, ``int32``, ``uint32``, ``int64``, ``uint64``,
            ``float32`` or ``float64``.
        unit: engineering unit (MPa, m³/h, Hz, kW, A, V, rpm, %, h, m³, kWh, °C, "").
        scale, offset: engineering = raw × scale + offset.
        word_order, byte_order: ``"big"`` or ``"little"``.
        bit: for a bool inside a register, the bit index 0 (LSB) … 15.
        writable: the master may write it.
        description: one line for the config file.
        valid_min, valid_max: plausible engineering range for the config (optional).
    """

    name: str
    table: str
    address: int
    dtype: str
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    word_order: str = "big"
    byte_order: str = "big"
    bit: int | None = None
    writable: bool = False
    description: str = ""
    valid_min: float | None = None
    valid_max: float | None = None

    @property
    def width(self) -> int:
        """Addresses occupied (1 for bits and bit-in-register bools)."""
        if self.table in BIT_TABLES or self.dtype == "bool":
            return 1
        return _FLOATS[self.dtype][1] if self.dtype in _FLOATS else _INT_RANGES[self.dtype][2]


def _order_words(point: MapPoint, words: list[int]) -> list[int]:
    if point.word_order == "little":
        words = words[::-1]
    if point.byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words


def encode(point: MapPoint, value: Number) -> list[int]:
    """Registers (uint16, wire order) that serve ``value`` (engineering units) for ``point``.

    Integers are rounded to nearest and clamped to the type's range (a device saturates).
    Not for bit points (see :meth:`RegisterMap.publish`).
    """
    raw = (float(value) - point.offset) / point.scale
    if point.dtype in _FLOATS:
        fmt, n = _FLOATS[point.dtype]
        data = struct.pack(fmt, raw)
        words = [int.from_bytes(data[2 * i : 2 * i + 2], "big") for i in range(n)]
    else:
        lo, hi, n = _INT_RANGES[point.dtype]
        iv = min(max(round(raw), lo), hi) & ((1 << (16 * n)) - 1)
        words = [(iv >> (16 * (n - 1 - i))) & 0xFFFF for i in range(n)]
    return _order_words(point, words)


def decode(point: MapPoint, registers: list[int]) -> Number:
    """Engineering value of ``point`` from its registers in wire order (inverse of encode)."""
    words = _order_words(point, list(registers))  # both swaps are their own inverse
    if point.dtype == "bool":
        return bool((words[0] >> (point.bit or 0)) & 1)
    if point.dtype in _FLOATS:
        fmt, _ = _FLOATS[point.dtype]
        raw: float | int = struct.unpack(fmt, b"".join(w.to_bytes(2, "big") for w in words))[0]
    else:
        lo, _, n = _INT_RANGES[point.dtype]
        raw = 0
        for w in words:
            raw = (raw << 16) | w
        if lo < 0 and raw >= 1 << (16 * n - 1):
            raw -= 1 << (16 * n)
    if point.scale == 1.0 and point.offset == 0.0:
        return raw
    return raw * point.scale + point.offset


WriteHandler = Callable[[MapPoint, Number], None]


class RegisterMap:
    """A device's points bound to one :class:`RegisterBank`.

    Args:
        bank: the bank to define the points on (its unit id is the device's).
        points: the map.
        blocks: ``(table, first, last)`` address ranges served in full (reserved addresses
            answer 0 instead of exception 2, so masters may bridge gaps); addresses outside
            blocks and points answer exception 2.
        on_write: called with (point, decoded value) for each written writable point; may raise
            :class:`ModbusError` (e.g. 3 for an out-of-range value).

    Raises:
        ValueError: overlapping points (bools with ``bit`` may overlay any register).
    """

    def __init__(
        self,
        bank: RegisterBank,
        points: Iterable[MapPoint],
        blocks: Iterable[tuple[str, int, int]] = (),
        on_write: WriteHandler | None = None,
    ) -> None:
        self.bank = bank
        self.points = list(points)
        self.by_name = {p.name: p for p in self.points}
        self._on_write = on_write
        self.stuck: set[str] = set()
        """Point names whose registers :meth:`publish` leaves alone (a stuck sensor)."""
        self.distort: dict[str, Callable[[Number], Number]] = {}
        """Point name → function of the true value returning the value served instead (a
        sensor fault of :mod:`hil_sim.faults.sensor`: offset, drift, noise, gain …)."""
        cells: dict[tuple[str, int], bool] = {}
        owner: dict[tuple[str, int], list[MapPoint]] = {}
        for p in self.points:
            for a in range(p.address, p.address + p.width):
                key = (p.table, a)
                # Bit views may share a register with each other or with a whole-register view.
                if key in owner and p.bit is None and all(o.bit is None for o in owner[key]):
                    raise ValueError(f"{p.name} overlaps {owner[key][0].name} at {key}")
                owner.setdefault(key, []).append(p)
                cells[key] = cells.get(key, False) or p.writable
        for table, first, last in blocks:
            for a in range(first, last + 1):
                cells.setdefault((table, a), False)
        for (table, a), writable in sorted(cells.items()):
            bank.define(table, a, [False] if table in BIT_TABLES else [0], writable=writable)
        self._owner = owner
        bank.on_write = self._handle_write

    def publish(self, values: Mapping[str, Number]) -> None:
        """Serve ``values`` (point name → engineering value), except :attr:`stuck` points;
        a point in :attr:`distort` serves what its function makes of the value.

        Raises:
            KeyError: an unknown point name.
        """
        bits: dict[tuple[str, int], int] = {}
        for name, value in values.items():
            p = self.by_name[name]
            if name in self.stuck:
                continue
            if name in self.distort:
                value = self.distort[name](value)
            if p.table in BIT_TABLES:
                self.bank.set(p.table, p.address, bool(value))
            elif p.dtype == "bool":
                key = (p.table, p.address)
                reg = bits.get(key, self.bank.get(p.table, p.address, 1)[0])
                mask = 1 << (p.bit or 0)
                bits[key] = (reg | mask) if value else (reg & ~mask)
            else:
                self.bank.set(p.table, p.address, encode(p, value))
        for (table, address), reg in bits.items():
            self.bank.set(table, address, reg)

    def served(self) -> dict[str, Number]:
        """Every point's value exactly as a master would decode it now."""
        out: dict[str, Number] = {}
        for p in self.points:
            if p.table in BIT_TABLES:
                out[p.name] = bool(self.bank.get(p.table, p.address, 1)[0])
            else:
                out[p.name] = decode(p, self.bank.get(p.table, p.address, p.width))
        return out

    def _handle_write(self, table: str, address: int, values: list) -> None:
        touched: list[MapPoint] = []
        for a in range(address, address + len(values)):
            for p in self._owner.get((table, a), []):
                if p.writable and p not in touched:
                    touched.append(p)
        for p in touched:
            if p.table in BIT_TABLES:
                value: Number = bool(self.bank.get(p.table, p.address, 1)[0])
            else:
                value = decode(p, self.bank.get(p.table, p.address, p.width))
            if self._on_write is not None:
                self._on_write(p, value)


class LimitedBank(RegisterBank):
    """A :class:`RegisterBank` that refuses reads longer than ``max_read`` registers with
    exception 3 (illegal data value), like INVT Goodrive drives (at most 16 words per 03H,
    domain.md §4.0, [S57])."""

    def __init__(self, unit_id: int, max_read: int) -> None:
        super().__init__(unit_id)
        self.max_read = max_read

    def read_registers(self, table: str, address: int, count: int) -> list[int]:
        """Serve FC03/FC04; exception 3 above ``max_read`` registers."""
        if count > self.max_read:
            raise ModbusError(3)
        return super().read_registers(table, address, count)
