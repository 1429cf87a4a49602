"""How a sample's value is kept in the buffer: lossless for every value a driver can decode.

SQLite has one 64-bit signed INTEGER, one IEEE-754 double (REAL) and no boolean
(https://sqlite.org/datatype3.html §2). The ``samples`` table keeps the value in a column without
affinity (stored as bound) and a small ``kind`` column (NULL for the common case, so it costs one
record-header byte) that says how to read it back:

=========================  =========================================  =======================
value (Python)             ``value`` column                           ``kind``
=========================  =========================================  =======================
``None``                   NULL                                       NULL
``bool``                   INTEGER 0 / 1                              :attr:`Kind.BOOL` (1)
``int`` in int64 range     INTEGER as is                              NULL
``int`` in 2⁶³ … 2⁶⁴−1     INTEGER ``v − 2⁶⁴`` (two's complement)     :attr:`Kind.UINT64` (2)
finite ``float``           REAL as is (−0.0 and subnormals kept)      NULL
=========================  =========================================  =======================

So a bool comes back a bool (``true`` on the wire, live and backfill alike), and a uint64 in the
upper half of its range (an all-ones "not available" sentinel, an OPC UA UInt64 counter) is
stored exactly instead of making SQLite refuse the whole append (``OverflowError: Python int too
large to convert to SQLite INTEGER``).

What cannot be kept as a good value becomes a bad-value sample whose reason says why
(:func:`to_row`), one sample at a time, so one odd value never costs the other readings of the
batch: NaN and ±∞ (JSON has neither, RFC 8259 §6) → reason ``nan``, ``inf``, ``-inf`` (the same
reasons :func:`drivers.values.to_engineering` gives); any other value (an integer outside
−2⁶³ … 2⁶⁴−1, a good reading without a value, a type that is not bool/int/float) → reason
``unstorable``. Rows written before ``kind`` existed read back as they were stored (bools as 0/1).
"""

from __future__ import annotations

import enum
import math

from agent.core.model import Quality, Reading, Value

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
UNSTORABLE = "unstorable"
"""Reason of a good reading whose value cannot be kept (see the module docstring)."""


class Kind(enum.IntEnum):
    """How to read the ``value`` column back (``kind`` column; NULL: as stored)."""

    BOOL = 1
    UINT64 = 2


def non_finite_reason(value: float) -> str:
    """The bad-value reason of a non-finite float: ``"nan"``, ``"inf"`` or ``"-inf"``."""
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


Row = tuple[int | float | None, int | None, Quality, str | None]
"""(value column, kind column, quality, reason)."""


def to_row(reading: Reading) -> tuple[Row, Value]:
    """The buffer row of ``reading`` and the value it reads back as (what the uplink sends live,
    so live and backfill carry the same value of the same type).

    A sample that is not good keeps no value (the contract sends none). Never raises.
    """
    q, reason = reading.quality, reading.reason
    if reason is not None and not isinstance(reason, str):
        reason = str(reason)
    if q is not Quality.GOOD:
        return (None, None, Quality(q), reason), None
    v = reading.value
    if v.__class__ is bool:
        return (int(v), Kind.BOOL, q, None), v
    if isinstance(v, int) and not isinstance(v, bool):
        iv = int(v)
        if INT64_MIN <= iv <= INT64_MAX:
            return (iv, None, q, None), iv
        if 0 <= iv <= UINT64_MAX:
            return (iv - (1 << 64), Kind.UINT64, q, None), iv
    elif isinstance(v, float):
        fv = float(v)
        if math.isfinite(fv):
            return (fv, None, q, None), fv
        return (None, None, Quality.BAD_VALUE, non_finite_reason(fv)), None
    return (None, None, Quality.BAD_VALUE, UNSTORABLE), None


def from_row(value: int | float | None, kind: int | None) -> Value:
    """The value a buffer row holds (inverse of :func:`to_row`)."""
    if kind is None or value is None:
        return value
    if kind == Kind.BOOL:
        return bool(value)
    if kind == Kind.UINT64:
        return int(value) + (1 << 64) if value < 0 else int(value)
    return value
