"""Reference decoder of the compact telemetry encoding ``cbor-c1`` (:mod:`agent.wire_cbor`).

For the platform side and the tests: it turns a ``cbor-c1`` payload back into the v1 JSON
telemetry message the gateway would have sent with ``telemetry_format: json`` (the same
series, samples, values with their types, seq, t, quality, units, ``hist`` and clock state)::

    tables = PointTables()
    tables.feed_meta(meta_body)                 # every retained meta (or meta/{i} part) seen
    v1 = decode(payload, tables)                # dict, valid against telemetry.schema.json

A payload may be zlib-deflated (first byte 0x78) and must then start with the self-described
CBOR tag (``D9 D9 F7``). :func:`load` gives the CBOR map itself, for schema validation against
``telemetry-cbor.schema.json``. Every error is a :class:`DecodeError` naming what is wrong
(the field, the sample index, the unknown point-table id).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import cbor2

from agent.wire_cbor import LAYOUT, MAGIC, PointTable

ENVELOPE = ("v", "site", "gw", "session", "stream", "hist", "sent")
"""The fields copied unchanged into the v1 message, in v1 order."""


class DecodeError(ValueError):
    """A payload that is not a well-formed ``cbor-c1`` message, or whose point table is not
    known (no meta with that id seen yet)."""


def is_cbor(payload: bytes) -> bool:
    """Whether ``payload`` (plain or zlib-deflated) is a self-described CBOR message."""
    if payload[:1] == b"\x78":
        try:
            payload = zlib.decompressobj().decompress(payload, len(MAGIC))
        except zlib.error:
            return False
    return payload[: len(MAGIC)] == MAGIC


def load(payload: bytes) -> dict[str, Any]:
    """The CBOR map of a ``cbor-c1`` payload (inflated first when it is zlib).

    Raises:
        DecodeError: not zlib/CBOR, no self-described tag, or not a map.
    """
    try:
        if payload[:1] == b"\x78":
            payload = zlib.decompress(payload)
        if payload[: len(MAGIC)] != MAGIC:
            raise DecodeError("cbor-c1: the payload does not start with the CBOR tag 55799")
        body = cbor2.loads(payload[len(MAGIC) :])
    except (zlib.error, cbor2.CBORDecodeError) as exc:
        raise DecodeError(f"cbor-c1: not a readable payload: {exc}") from exc
    if not isinstance(body, dict):
        raise DecodeError(f"cbor-c1: a map was expected, not {type(body).__name__}")
    return body


class PointTables:
    """The point tables of the meta messages seen, by :func:`agent.wire_cbor.points_id`.

    A split meta (``part``/``parts``) becomes a table once all parts of one (session, ts) are in.
    """

    def __init__(self) -> None:
        self.tables: dict[str, PointTable] = {}
        self._parts: dict[tuple[Any, Any], dict[int, list[Mapping[str, Any]]]] = {}

    def feed_meta(self, meta: Mapping[str, Any]) -> str | None:
        """Take one meta message (or part); returns the id of the table it completes, if any.

        Raises:
            DecodeError: no ``points`` list, or a point name appears twice.
        """
        points = meta.get("points")
        if not isinstance(points, list):
            raise DecodeError("meta: no points list")
        if "part" not in meta:
            return self._add(points)
        key = (meta.get("session"), meta.get("ts"))
        parts = self._parts.setdefault(key, {})
        parts[int(meta["part"])] = points
        total = int(meta.get("parts", 1))
        if all(i in parts for i in range(total)):
            del self._parts[key]
            return self._add([p for i in range(total) for p in parts[i]])
        return None

    def _add(self, points: list[Mapping[str, Any]]) -> str:
        try:
            table = PointTable.of(points)
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(f"meta: {exc}") from exc
        self.tables[table.id] = table
        return table.id


def decode(payload: bytes, tables: PointTables) -> dict[str, Any]:
    """The v1 JSON telemetry message of a ``cbor-c1`` payload (:func:`load` + :func:`to_v1`).

    Raises:
        DecodeError: see :func:`load` and :func:`to_v1`.
    """
    body = load(payload)
    table = tables.tables.get(str(body.get("points")))
    if table is None:
        raise DecodeError(
            f"cbor-c1: point table {body.get('points')!r} unknown: no meta with that id seen"
            f" (known: {', '.join(sorted(tables.tables)) or 'none'})"
        )
    return to_v1(body, table)


def to_v1(body: Mapping[str, Any], table: PointTable) -> dict[str, Any]:
    """The v1 telemetry message of one ``cbor-c1`` map, decoded against ``table``.

    Raises:
        DecodeError: wrong ``enc``, another point table, a missing field, ``p`` and ``x`` of
            different lengths, an index outside the table, a delta/quality entry naming a
            sample that is not there, or a NaN or infinite value.
    """
    if body.get("enc") != LAYOUT:
        raise DecodeError(f"cbor-c1: enc is {body.get('enc')!r}, expected {LAYOUT!r}")
    if body.get("points") != table.id:
        raise DecodeError(f"cbor-c1: points {body.get('points')!r} is not table {table.id}")
    try:
        refs, values = _points(body["p"], len(table.names)), list(body["x"])
        seq, t = int(body["seq"]), int(body["t"])
        msg = {k: body[k] for k in ENVELOPE}
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"cbor-c1: field {exc} missing or malformed") from exc
    n = len(refs)
    if len(values) != n or n == 0:
        raise DecodeError(f"cbor-c1: p names {n} samples, x has {len(values)} (both >= 1, equal)")
    ds, dt = _sparse(body, "ds", n), _sparse(body, "dt", n)
    bad = {}
    for entry in body.get("q", []):
        if not (isinstance(entry, list) and len(entry) == 3 and _index(entry[0], 0, n)):
            raise DecodeError(f"cbor-c1: q entry {entry!r} is not [sample index, q, reason]")
        bad[entry[0]] = entry
    named = body.get("u", {})
    if not isinstance(named, dict):
        raise DecodeError(f"cbor-c1: u is {type(named).__name__}, expected a map")
    series: dict[str, dict[str, Any]] = {}
    for i, ref in enumerate(refs):
        if i:
            seq += ds.get(i, 1)
            t += dt.get(i, 0)
        if isinstance(ref, int):
            name, unit = table.names[ref], table.units[ref]
        else:
            name, unit = ref, named.get(ref)
        entry = series.get(name)
        if entry is None:
            entry = series[name] = {"s": []}
            if unit:
                entry["u"] = unit
        q = bad.get(i)
        if q is None:
            value = values[i]
            if isinstance(value, float) and not math.isfinite(value):
                raise DecodeError(f"cbor-c1: sample {i}: value {value} (never sent: v1 has none)")
            entry["s"].append([seq, t, value])
        else:
            entry["s"].append([seq, t, None, q[1], q[2]])
    msg["series"] = series
    for key in ("synced", "unsynced"):
        if key in body:
            msg[key] = body[key]
    return msg


def _sparse(body: Mapping[str, Any], key: str, n: int) -> dict[int, int]:
    out = {}
    for entry in body.get(key, []):
        pair = isinstance(entry, list) and len(entry) == 2
        if not (pair and _index(entry[0], 1, n) and _int(entry[1])):
            raise DecodeError(f"cbor-c1: {key} entry {entry!r} is not [sample index >= 1, delta]")
        out[entry[0]] = entry[1]
    return out


def _points(p: Any, size: int) -> list[int | str]:
    """The per-sample point refs of ``p`` (runs ``[k, n]`` expanded), each index checked
    against a table of ``size`` points."""
    if not isinstance(p, list):
        raise DecodeError(f"cbor-c1: p is {type(p).__name__}, expected an array")
    out: list[int | str] = []
    for ref in p:
        if isinstance(ref, str):
            out.append(ref)
            continue
        if isinstance(ref, int) and not isinstance(ref, bool):
            k, n = ref, 1
        elif (
            isinstance(ref, list)
            and len(ref) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in ref)
            and ref[1] >= 2
        ):
            k, n = ref
        else:
            raise DecodeError(f"cbor-c1: p entry {ref!r} is neither index, [index, count] nor name")
        if not (0 <= k and k + n <= size):
            raise DecodeError(
                f"cbor-c1: sample {len(out)}: point index {k + n - 1 if k >= 0 else k} outside"
                f" the table of {size} points"
            )
        out.extend(range(k, k + n))
    return out


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _index(v: Any, lo: int, n: int) -> bool:
    """Whether ``v`` is an integer sample index in ``lo`` .. ``n - 1``."""
    return _int(v) and lo <= v < n
