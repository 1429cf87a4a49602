"""Every reading of a register range, side by side, so the right decoding shows at one look.

Pure: registers in, text out. For each register its address (decimal and hex), value in hex,
uint16 and int16; for each 32-bit and 64-bit window float, signed and unsigned integer in all
four orders: ABCD (big-endian, the Modbus default), CDAB (word-swapped, "float inverse" in Chinese
meter manuals), BADC (byte-swapped) and DCBA (both). The orders are the ``word_order`` /
``byte_order`` pairs of a point config (drivers/modbus/codec.py; domain.md §4.0: MFE600C
0x44C8 0x0000 → 1600.0 in ABCD, MFE600H 0x0000 0xC148 → −12.5 in CDAB).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from agent.tools.reasons import in_words
from drivers.modbus.codec import registers_to_bytes
from drivers.specs import Order

ORDERS: tuple[tuple[str, str, Order, Order], ...] = (
    ("ABCD", "word_order: big", Order.BIG, Order.BIG),
    ("CDAB", "word_order: little", Order.LITTLE, Order.BIG),
    ("BADC", "byte_order: little", Order.BIG, Order.LITTLE),
    ("DCBA", "word_order: little, byte_order: little", Order.LITTLE, Order.LITTLE),
)
"""(label, the config keys that select it, word order, byte order)."""
_WIDE = {2: (("float32", ">f"), ("int32", ">i"), ("uint32", ">I")),
         4: (("float64", ">d"), ("int64", ">q"), ("uint64", ">Q"))}  # fmt: skip
COL = {2: 16, 4: 22}
"""Column width per window size: a uint64 needs 20 digits."""


def _num(v: float | int) -> str:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v != 0 and not 1e-4 <= abs(v) < 1e9:
            return f"{v:.6e}"
        return f"{v:.6g}"
    return str(v)


def interpretations(words: Sequence[int]) -> dict[str, dict[str, float | int]]:
    """``{type: {order label: value}}`` for 2 or 4 registers."""
    out: dict[str, dict[str, float | int]] = {}
    for label, _, wo, bo in ORDERS:
        data = registers_to_bytes(list(words), wo, bo)
        for name, fmt in _WIDE[len(words)]:
            out.setdefault(name, {})[label] = struct.unpack(fmt, data)[0]
    return out


def render_registers(
    table: str, unit: int, start: int, values: Sequence[int | None], errors: Sequence[str | None]
) -> str:
    """The report for ``values`` read from ``start`` on; ``None`` values are unreadable, with
    their reason in ``errors``."""
    lines = [f"{table} registers {start}..{start + len(values) - 1} at unit {unit}:", ""]
    lines.append(f"{'address':>7} {'(hex)':>8}  {'hex':>6}  {'uint16':>6}  {'int16':>6}")
    for i, v in enumerate(values):
        a = start + i
        if v is None:
            lines.append(f"{a:>7} {f'0x{a:04X}':>8}  {in_words(errors[i])}")
            continue
        signed = v - 0x10000 if v >= 0x8000 else v
        lines.append(f"{a:>7} {f'0x{a:04X}':>8}  {f'{v:04X}':>6}  {v:>6}  {signed:>6}")
    for n in (2, 4):
        windows = [i for i in range(len(values) - n + 1) if None not in values[i : i + n]]
        if not windows:
            continue
        lines += ["", f"{16 * n}-bit values starting at each address, in each order:"]
        col = COL[n]
        lines.append(f"{'address':>7} {'type':<8}" + "".join(f"{o[0]:>{col}}" for o in ORDERS))
        for i in windows:
            words = [int(w) for w in values[i : i + n] if w is not None]
            for k, (typ, by_order) in enumerate(interpretations(words).items()):
                head = f"{start + i:>7}" if k == 0 else " " * 7
                cells = "".join(f"{_num(by_order[o[0]]):>{col}}" for o in ORDERS)
                lines.append(f"{head} {typ:<8}{cells}")
    lines += ["", "orders: " + "; ".join(f"{o[0]} = {o[1]}" for o in ORDERS)]
    return "\n".join(lines)


def render_bits(table: str, unit: int, start: int, values: Sequence[bool | None]) -> str:
    """The report for coils or discrete inputs."""
    lines = [f"{table} {start}..{start + len(values) - 1} at unit {unit}:"]
    for i, v in enumerate(values):
        a = start + i
        lines.append(f"{a:>7} {f'0x{a:04X}':>8}  {'–' if v is None else int(v)}")
    return "\n".join(lines)
