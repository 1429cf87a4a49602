"""The compact telemetry encoding ``cbor-c1`` (agent/wire_cbor.py) and its reference decoder
(agent/wire_decode.py): every batch decodes to exactly the v1 JSON message the gateway would
have sent (values with their types and bits, seq, t, quality, units, clock state), both forms
keep their schemas, and a payload the decoder cannot place is refused by name."""

from __future__ import annotations

import json
import math
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import contract, schemas, wire_cbor, wire_decode
from agent.core.model import Quality, Sample

IDENT = contract.Identity("site-a", "gw-1", 7)
CATALOGUE = [
    {"name": "p_out", "unit": "MPa"},
    {"name": "flow", "unit": "m³/h"},
    {"name": "vfd1.run", "unit": None},
    {"name": "vfd1.freq", "unit": "Hz"},
]
UNITS: dict[str, str | None] = {
    "p_out": "MPa", "flow": "m³/h", "vfd1.run": None, "vfd1.freq": "Hz",
    "old.level": "m", "old.state": None, "vfd1.mismatch": "kW",
}  # fmt: skip
POINTS = [*UNITS]  # four in the table, three sent by name


def _strict(x: Any) -> Any:
    """``x`` with every scalar tagged by its type and repr, so True != 1, 1 != 1.0 and
    -0.0 != 0.0 (``==`` on the plain values would let all of those pass)."""
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    return (type(x).__name__, repr(x))


def _tables(points: list[dict[str, Any]] = CATALOGUE) -> wire_decode.PointTables:
    tables = wire_decode.PointTables()
    tables.feed_meta({"points": points})
    return tables


def _both(samples: list[Sample], *, hist: bool = False) -> tuple[dict[str, Any], bytes]:
    """(the v1 JSON message, the cbor-c1 payload) of one batch."""
    v1 = json.loads(contract.telemetry(IDENT, samples, UNITS, hist=hist, sent_ms=1_700_000))
    table = wire_cbor.PointTable.of(CATALOGUE)
    return v1, wire_cbor.encode(IDENT, samples, UNITS, table, hist=hist, sent_ms=1_700_000)


EXTREME_VALUES = [
    True, False, 0, -1, 1, (1 << 63) - 1, -(1 << 63), 1 << 63, (1 << 64) - 1,
    0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
    -1.7976931348623157e308, math.nan, math.inf, -math.inf, 0.1, 1e16, 1.5, 65504.0, 65520.0,
    struct.unpack(">f", struct.pack(">f", 0.401))[0], "a string",
]  # fmt: skip
"""Bits, the int64 and uint64 ends, signed zeros, subnormals, the double ends, non-finite
floats (v1: a bad-value sample), values exact in half and single precision and just outside,
and a value of no contract type (v1: reason unstorable)."""

values = st.one_of(
    st.sampled_from(EXTREME_VALUES),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 64) - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32),
    st.floats(width=16),
)


@st.composite
def batches(draw: st.DrawFn) -> list[Sample]:
    n = draw(st.integers(1, 60))
    seq = draw(st.integers(1, 1 << 52))  # the schema: seqs are exact doubles, < 2⁵³
    t = draw(st.integers(0, 1 << 45))
    out = []
    for i in range(n):
        if i:
            seq += draw(st.sampled_from([1, 1, 1, 2, 17, 1 << 30]))
            t += draw(st.sampled_from([0, 0, 0, 1, 1000, -250, 86_400_000]))
            t = max(t, 0)
        good = draw(st.integers(0, 4)) > 0
        quality = Quality.GOOD if good else draw(st.sampled_from(list(Quality)[1:]))
        out.append(
            Sample(
                seq=seq,
                point=draw(st.sampled_from(POINTS)),
                ts_ms=t,
                value=draw(values) if good else None,
                quality=quality,
                reason=None if good else draw(st.sampled_from(["timeout", "modbus:exception:2"])),
                synced=draw(st.integers(0, 5)) > 0,
            )
        )
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.booleans(), st.booleans())
def test_every_batch_decodes_to_exactly_its_v1_message(
    samples: list[Sample], hist: bool, deflate: bool
) -> None:
    v1, payload = _both(samples, hist=hist)
    if deflate:
        payload = zlib.compress(payload, 6)
    assert wire_decode.is_cbor(payload)
    body = wire_decode.load(payload)
    decoded = wire_decode.decode(payload, _tables())
    assert _strict(decoded) == _strict(v1)
    assert json.dumps(decoded) == json.dumps(v1)  # same member order too
    topic = "pumproom/v1/site-a/gw-1/telemetry" + ("/backfill" if hist else "")
    schemas.validate(topic, body)
    schemas.validate(topic, decoded)


def test_a_typical_poll_costs_a_few_bytes_a_value() -> None:
    """200 float32 readings of one poll (consecutive seqs, one time): under 8 bytes a value
    plain, where v1 JSON spends over 40."""
    table = wire_cbor.PointTable.of([{"name": f"p{k}", "unit": "MPa"} for k in range(200)])
    units = {f"p{k}": "MPa" for k in range(200)}
    samples = [
        Sample(1_733_000_000_000_000 + k, f"p{k}", 1_733_000_000_000,
               struct.unpack(">f", struct.pack(">f", 0.3 + k * 0.0137))[0],
               Quality.GOOD, None, True)
        for k in range(200)
    ]  # fmt: skip
    compact = wire_cbor.encode(IDENT, samples, units, table, hist=False, sent_ms=1)
    v1 = contract.telemetry(IDENT, samples, units, hist=False, sent_ms=1)
    assert len(compact) / 200 < 8 < 40 < len(v1) / 200
    tables = wire_decode.PointTables()
    tables.feed_meta({"points": [{"name": f"p{k}", "unit": "MPa"} for k in range(200)]})
    assert wire_decode.decode(compact, tables) == json.loads(v1)


def test_the_points_id_is_the_documented_hash() -> None:
    import hashlib

    text = '[["p_out","MPa"],["flow","m³/h"],["vfd1.run",null],["vfd1.freq","Hz"]]'
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    assert wire_cbor.PointTable.of(CATALOGUE).id == expected
    assert wire_cbor.points_id([("p_out", "MPa")]) != wire_cbor.points_id([("p_out", "kPa")])


def test_a_split_meta_makes_its_table_once_every_part_is_in() -> None:
    tables = wire_decode.PointTables()
    head = {"session": 3, "ts": 9, "part": 0, "parts": 3, "points": CATALOGUE[:1]}
    tail = [
        {"session": 3, "ts": 9, "part": 2, "parts": 3, "points": CATALOGUE[3:]},
        {"session": 3, "ts": 9, "part": 1, "parts": 3, "points": CATALOGUE[1:3]},
    ]
    assert tables.feed_meta(tail[0]) is None
    assert tables.feed_meta(head) is None
    assert tables.feed_meta(tail[1]) == wire_cbor.PointTable.of(CATALOGUE).id
    samples = [Sample(5, "vfd1.freq", 10, 42.5, Quality.GOOD, None, True)]
    v1, payload = _both(samples)
    assert wire_decode.decode(payload, tables) == v1


def _one() -> bytes:
    return _both([Sample(5, "p_out", 10, 0.4, Quality.GOOD, None, True)])[1]


def _raw(**change: Any) -> bytes:
    import cbor2

    body = wire_decode.load(_one())
    body.update(change)
    return wire_cbor.MAGIC + cbor2.dumps(body)


@pytest.mark.parametrize(
    ("payload", "tables", "message"),
    [
        (b'{"v":1}', CATALOGUE, "does not start with the CBOR tag"),
        (wire_cbor.MAGIC + b"\xff\x00", CATALOGUE, "not a readable payload"),
        (_one(), CATALOGUE[:2], "point table .* unknown: no meta with that id seen"),
        (_raw(enc="c2"), CATALOGUE, "enc is 'c2'"),
        (_raw(p=[9]), CATALOGUE, "sample 0: point index 9 outside the table of 4"),
        (_raw(p=[[2, 3]]), CATALOGUE, "sample 0: point index 4 outside the table of 4"),
        (_raw(p=[[2, 1]]), CATALOGUE, r"p entry \[2, 1\] is neither"),
        (_raw(x=[1, 2]), CATALOGUE, "p names 1 samples, x has 2"),
        (_raw(p=[0, 0], x=[1, 2], ds=[[5, 1]]), CATALOGUE, r"ds entry \[5, 1\]"),
        (_raw(p=[0, 0], x=[1, 2], q=[[0, "c"]]), CATALOGUE, r"q entry \[0, 'c'\]"),
        (_raw(p=[0, 0], x=[1, 2], q=[["0", "c", "x"]]), CATALOGUE, r"q entry \['0', 'c', 'x'\]"),
        (_raw(p=[0, 0], x=[1, 2], dt=[[1, 0.5]]), CATALOGUE, r"dt entry \[1, 0.5\]"),
        (_raw(u=["m"]), CATALOGUE, "u is list, expected a map"),
        (_raw(seq=None), CATALOGUE, "field .* missing or malformed"),
        (_raw(x=[math.nan]), CATALOGUE, "sample 0: value nan"),
    ],
)
def test_what_cannot_be_decoded_is_refused_by_name(
    payload: bytes, tables: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(wire_decode.DecodeError, match=message):
        wire_decode.decode(payload, _tables(tables))


def test_a_meta_that_names_a_point_twice_is_refused() -> None:
    with pytest.raises(wire_decode.DecodeError, match="'p_out' appears twice"):
        _tables([*CATALOGUE, {"name": "p_out", "unit": "MPa"}])


def test_the_cbor_schema_refuses_what_v1_would_refuse() -> None:
    body = wire_decode.load(_one())
    errors = schemas.iter_errors("pumproom/v1/s/g/telemetry", {**body, "x": [math.inf]})
    assert errors, "an infinite value must not validate"
    errors = schemas.iter_errors("pumproom/v1/s/g/telemetry/backfill", body)
    assert any("hist" in e.message for e in errors)
    errors = schemas.iter_errors("pumproom/v1/s/g/telemetry", {**body, "extra": 1})
    assert errors
