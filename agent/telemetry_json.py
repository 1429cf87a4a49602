"""The v1 JSON telemetry batch as bytes, at a fraction of the CPU of dicts + ``json.dumps``.

The message is the one :mod:`agent.contract` describes; the bytes are exactly those of
``json.dumps(message, separators=(",", ":"), allow_nan=False)`` (issue 17: same keys in the same
order, ASCII with ``\\uXXXX`` escapes, ints exact, floats as ``repr``), proved against the old
encoder by tests/contract/test_json_fast.py. Two writers:

* :func:`encode` (the agent's): the samples as tuples, serialised by ``orjson`` in C. Only what
  ``orjson`` writes byte for byte as ``json.dumps`` does goes to it as plain data: ints of the
  int64/uint64 range, bools, floats of magnitude 1e-4 up to (not including) 1e16 and ±0.0
  (there both write the shortest round-trip digits in positional notation, as Python's
  ``repr``; below 1e-4 they part: ``json.dumps`` writes ``1e-05`` where ``orjson`` writes
  ``0.00001``; from 1e16 both write ``1e+16``, but that range is left to the text writer, being
  rare and untested as broadly), point names that need no escape. Every other sample is
  written as text by :func:`sample_text` and embedded as an ``orjson.Fragment``; units are
  always embedded text.
  A batch ``orjson`` refuses (a seq or time beyond int64/uint64) or with a point name that needs an
  escape is written wholly by :func:`encode_text`.
* :func:`encode_text`: pure Python, one f-string per sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from agent.core.model import Quality, Sample
from agent.store.values import UNSTORABLE, non_finite_reason

if TYPE_CHECKING:
    from agent.contract import Identity

_str: Callable[[str], str] = json.encoder.encode_basestring_ascii
"""The string escaper ``json.dumps`` itself uses with ``ensure_ascii`` (its C version)."""
_int = int.__repr__
"""How ``json.dumps`` writes an int (or an int subclass): exact over the int64/uint64 range."""
_BAD = f'"{Quality.BAD_VALUE.code}"'
_LO, _HI = 1e-4, 1e16
"""Floats of magnitude in [_LO, _HI) are written alike by ``repr`` (Python's float_repr_style
'short': positional for decimal exponents -4..15) and ``orjson`` 3.x (tested:
tests/contract/test_json_fast.py)."""
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1
"""The integers ``orjson`` serialises (wider ones raise); int64 and uint64 points fit."""
_Fragment = orjson.Fragment


def encode(
    ident: Identity,
    samples: Sequence[Sample],
    units: Mapping[str, str | None],
    *,
    hist: bool,
    sent_ms: int,
) -> bytes:
    """The telemetry message (arguments as :func:`agent.contract.telemetry`) as UTF-8 bytes.

    Raises:
        TypeError: a point name, unit or reason that is not a string (a unit or reason may be
            None).
    """
    series: dict[str, list[Any]] = {}
    unsynced: list[int] = []
    good, frag = Quality.GOOD, _Fragment
    for seq, point, ts_ms, value, quality, reason, synced in samples:
        rows = series.get(point)
        if rows is None:
            rows = series[point] = []
        if quality is good:
            if type(value) is float:
                if _LO <= value < _HI or -_HI < value <= -_LO or value == 0.0:
                    rows.append((seq, ts_ms, value))
                else:
                    rows.append(frag(sample_text(seq, ts_ms, value, quality, reason)))
            elif (type(value) is int and _I64_MIN <= value <= _U64_MAX) or type(value) is bool:
                rows.append((seq, ts_ms, value))
            else:
                rows.append(frag(sample_text(seq, ts_ms, value, quality, reason)))
        else:
            rows.append(frag(sample_text(seq, ts_ms, value, quality, reason)))
        if not synced:
            unsynced.append(seq)
    out: dict[str, dict[str, Any]] = {}
    for point, rows in series.items():
        if len(_str(point)) != len(point) + 2:  # it needs an escape: json.dumps' own, below
            return encode_text(ident, samples, units, hist=hist, sent_ms=sent_ms)
        unit = units.get(point)
        out[point] = {"s": rows, "u": frag(_str(unit))} if unit else {"s": rows}
    try:
        body = orjson.dumps(out)
    except orjson.JSONEncodeError:  # a seq or time beyond int64/uint64: json.dumps' way
        return encode_text(ident, samples, units, hist=hist, sent_ms=sent_ms)
    return b"".join((_head(ident, hist, sent_ms), body, _tail(unsynced, len(samples))))


def encode_text(
    ident: Identity,
    samples: Sequence[Sample],
    units: Mapping[str, str | None],
    *,
    hist: bool,
    sent_ms: int,
) -> bytes:
    """As :func:`encode`, in pure Python (no ``orjson``): one string per sample."""
    series: dict[str, list[str]] = {}
    unsynced: list[int] = []
    for seq, point, ts_ms, value, quality, reason, synced in samples:
        texts = series.get(point)
        if texts is None:
            texts = series[point] = []
        texts.append(sample_text(seq, ts_ms, value, quality, reason))
        if not synced:
            unsynced.append(seq)
    parts = ["{"]
    for point, texts in series.items():
        unit = units.get(point)
        tail = f',"u":{_str(unit)}}}' if unit else "}"
        parts.append(f'{_str(point)}:{{"s":[{",".join(texts)}]{tail},')
    parts[-1] = parts[-1][:-1]  # the last point's comma
    parts.append("}")
    body = "".join(parts).encode()
    return b"".join((_head(ident, hist, sent_ms), body, _tail(unsynced, len(samples))))


def sample_text(seq: int, ts_ms: int, value: object, quality: Quality, reason: str | None) -> str:
    """One sample as ``json.dumps`` writes it. Good: ``[seq,t,value]`` for a bool, an int (or
    int subclass, by ``int.__repr__``) or a finite float (or float subclass, by
    ``float.__repr__``: shortest round trip, −0.0 and subnormals included); a good NaN or ±∞
    becomes a bad-value sample with reason ``nan``, ``inf`` or ``-inf`` (JSON has no such
    numbers, RFC 8259 §6), any other value one with reason ``unstorable``. Not good:
    ``[seq,t,null,q,reason]`` (telemetry.schema.json notGoodSample)."""
    if quality is not Quality.GOOD:
        why = "null" if reason is None else _str(reason)
        return f'[{seq},{ts_ms},null,"{quality.code}",{why}]'
    if value is True or value is False:
        return f"[{seq},{ts_ms},{'true' if value else 'false'}]"
    if isinstance(value, int):
        return f"[{seq},{ts_ms},{_int(value)}]"
    if isinstance(value, float):
        if math.isfinite(value):
            return f"[{seq},{ts_ms},{float.__repr__(value)}]"
        return f'[{seq},{ts_ms},null,{_BAD},"{non_finite_reason(value)}"]'
    return f'[{seq},{ts_ms},null,{_BAD},"{UNSTORABLE}"]'


def _head(ident: Identity, hist: bool, sent_ms: int) -> bytes:
    """The message up to the series object: header, stream, hist, sent."""
    msg = ident.header()
    msg.update(stream="telemetry", hist=hist, sent=sent_ms)
    return json.dumps(msg, separators=(",", ":"), allow_nan=False)[:-1].encode() + b',"series":'


def _tail(unsynced: list[int], count: int) -> bytes:
    """Clock state (``synced``/``unsynced``) and the closing brace."""
    if len(unsynced) == count:
        return b',"synced":false}'
    if unsynced:
        return f',"unsynced":[{",".join(map(_int, unsynced))}]}}'.encode()
    return b"}"
