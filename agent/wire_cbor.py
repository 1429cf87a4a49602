"""The compact telemetry encoding ``cbor-c1``: an additive v1 encoding the platform opts into.

With ``uplink.telemetry_format: cbor-c1`` the gateway publishes each telemetry batch (live and
backfill, the same topics) as one CBOR map (RFC 8949) instead of JSON; everything else stays
JSON. The retained ``meta`` announces it (``encoding.telemetry_format: "cbor-c1"``); the MQTT 5
Content Type is ``application/cbor`` (``application/cbor+zlib`` when deflated, see
``uplink.compression``), Payload Format Indicator 0. The payload starts with the CBOR
self-described tag 55799 (bytes ``D9 D9 F7``, RFC 8949 §3.4.6), so a consumer without a
Content Type (MQTT 3.1.1) tells it from JSON (``{``) and zlib (0x78) by the first byte.

It carries exactly what the v1 JSON batch carries (:func:`agent.contract.telemetry`): per
sample seq, time, value (with its type: bool, integer over the int64 and uint64 range, the same
IEEE-754 double) and quality, the units, ``hist`` and the clock state; the reference decoder
:func:`agent.wire_decode.to_v1` turns it back into that JSON message exactly. Shape
(``agent/schemas/v1/telemetry-cbor.schema.json``)::

    {"v":1, "site":…, "gw":…, "session":7, "stream":"telemetry", "hist":false,
     "sent":1732870815123, "enc":"c1",
     "points":"9f2c01ab",      # id of the meta point table the indices below refer to
     "seq":1041,               # seq of sample 0
     "t":1732870815000,        # time of sample 0, UTC ms
     "p":[[0, 2], "old.point"],# the samples' points: [k, n] n samples of points k..k+n-1,
                               # k one sample of point k (index into the meta points), or a
                               # point name: one sample of that point
     "x":[0.401, true, null],  # per sample: the value; null when the sample is not good
     "ds":[[2, 11]],           # optional [i, d]: seq of sample i = seq of sample i-1 + d (d != 1)
     "dt":[[2, 1000]],         # optional [i, d]: t of sample i = t of sample i-1 + d ms (d != 0)
     "q":[[2, "c", "timeout"]],# optional [i, q, reason]: sample i is not good
     "u":{"old.point":"MPa"},  # optional: units of the points sent by name
     "unsynced":[1052]}        # or "synced": false, as in v1

Samples are in the order the gateway sent them (seq order per point). A poll's points come in
meta order, so ``p`` is mostly one run per device; seq deltas of +1 and time deltas of 0 are
left out, a good quality is left out, and CBOR keeps each float in the shortest
of half, single or double precision that holds it exactly (``canonical``, RFC 8949 §4.2.2), so
a float32 reading costs 5 bytes. Values follow v1's rules: NaN and ±∞ go as a bad-value sample
(reason ``nan``, ``inf``, ``-inf``), a value of no contract type as ``unstorable``.

**Point table.** The meta's ``points`` (joined in part order when split), as (name, unit)
pairs; index i is the i-th point. Its id is the first 8 hex digits of SHA-256 over the compact
JSON text of ``[[name, unit], …]`` (UTF-8, separators ``,`` and ``:``, non-ASCII not escaped;
:func:`points_id`), so the platform matches a message to the meta it was encoded against; it
keeps the tables of earlier metas: a message queued before a new meta replaced the retained
one names the old id. A point not in the table (e.g. buffered before a reload removed it) goes
by name, its unit in ``u``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2

from agent.contract import Identity
from agent.core.model import Quality, Sample
from agent.store.values import UNSTORABLE, non_finite_reason

FORMAT = "cbor-c1"
"""The value of ``uplink.telemetry_format`` and of the meta's ``encoding.telemetry_format``."""
LAYOUT = "c1"
"""The ``enc`` field of every message of this encoding."""
CONTENT_TYPE = "application/cbor"
"""MQTT 5 Content Type of a plain message (RFC 8949 §9.5, IANA media type)."""
CONTENT_TYPE_ZLIB = "application/cbor+zlib"
"""MQTT 5 Content Type of a deflated one (zlib, RFC 1950)."""
MAGIC = b"\xd9\xd9\xf7"
"""The self-described CBOR tag 55799 (RFC 8949 §3.4.6) every payload starts with."""


def points_id(pairs: Iterable[tuple[str, str | None]]) -> str:
    """The id of a point table: 8 hex digits of SHA-256 over ``[[name, unit], …]`` as compact
    JSON (UTF-8, ``ensure_ascii`` off). ``pairs`` are (name, unit or None) in meta order."""
    text = json.dumps([[n, u] for n, u in pairs], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class PointTable:
    """The meta's points as the compact encoding numbers them.

    Attributes:
        names: point names in meta order (index = position).
        units: their units (None for unitless points), same order.
        id: :func:`points_id` of the table.
    """

    names: tuple[str, ...]
    units: tuple[str | None, ...]
    id: str
    index: dict[str, int] = field(compare=False, repr=False)

    @classmethod
    def of(cls, points: Iterable[Mapping[str, Any]]) -> PointTable:
        """The table of meta point descriptions (each with ``name`` and ``unit``), in order.

        Raises:
            ValueError: a point name appears twice (the meta would be ambiguous).
        """
        pairs = [(str(p["name"]), p.get("unit")) for p in points]
        names = tuple(n for n, _ in pairs)
        index = {n: i for i, n in enumerate(names)}
        if len(index) != len(names):
            dup = next(n for i, n in enumerate(names) if index[n] != i)
            raise ValueError(f"meta point table: point {dup!r} appears twice")
        return cls(names, tuple(u for _, u in pairs), points_id(pairs), index)


def encode(
    ident: Identity,
    samples: Sequence[Sample],
    units: Mapping[str, str | None],
    table: PointTable,
    *,
    hist: bool,
    sent_ms: int,
) -> bytes:
    """Encode a telemetry batch as ``cbor-c1`` (see the module docstring); ``samples`` must be
    non-empty. A point whose unit in ``units`` differs from the table's goes by name, so the
    decoded units are always those v1 would send."""
    index, tunits = table.index, table.units
    refs: list[int | str | list[int]] = []
    run_k, run_n = 0, 0  # the run of consecutive point indices being built
    values: list[Any] = []
    ds: list[list[int]] = []
    dt: list[list[int]] = []
    bad: list[list[Any]] = []
    named: dict[str, str] = {}
    unsynced: list[int] = []
    first = samples[0]
    prev_seq, prev_t = first.seq - 1, first.ts_ms
    good = Quality.GOOD
    for i, s in enumerate(samples):
        k = index.get(s.point)
        unit = units.get(s.point)
        if k is not None and tunits[k] == unit:
            if run_n and k == run_k + run_n:
                run_n += 1
            else:
                _end_run(refs, run_k, run_n)
                run_k, run_n = k, 1
        else:
            _end_run(refs, run_k, run_n)
            run_n = 0
            refs.append(s.point)
            if unit:
                named[s.point] = unit
        if s.seq - prev_seq != 1:
            ds.append([i, s.seq - prev_seq])
        if s.ts_ms != prev_t:
            dt.append([i, s.ts_ms - prev_t])
        prev_seq, prev_t = s.seq, s.ts_ms
        value = s.value
        if s.quality is not good:
            values.append(None)
            bad.append([i, s.quality.code, s.reason])
        elif isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            values.append(value)
        else:  # as v1: no NaN or ±inf in the contract, nor a value of no contract type
            values.append(None)
            reason = non_finite_reason(value) if isinstance(value, float) else UNSTORABLE
            bad.append([i, Quality.BAD_VALUE.code, reason])
        if not s.synced:
            unsynced.append(s.seq)
    _end_run(refs, run_k, run_n)
    msg = ident.header()
    msg.update(stream="telemetry", hist=hist, sent=sent_ms, enc=LAYOUT, points=table.id)
    msg.update(seq=first.seq, t=first.ts_ms, p=refs, x=values)
    if ds:
        msg["ds"] = ds
    if dt:
        msg["dt"] = dt
    if bad:
        msg["q"] = bad
    if named:
        msg["u"] = named
    if len(unsynced) == len(samples):
        msg["synced"] = False
    elif unsynced:
        msg["unsynced"] = unsynced
    return MAGIC + cbor2.dumps(msg, canonical=True)


def _end_run(refs: list[int | str | list[int]], k: int, n: int) -> None:
    """Close a run of ``n`` samples of points ``k``..``k+n-1``: ``k`` alone or ``[k, n]``."""
    if n == 1:
        refs.append(k)
    elif n > 1:
        refs.append([k, n])
