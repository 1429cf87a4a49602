"""The fast v1 JSON telemetry encoders (:mod:`agent.telemetry_json`: :func:`agent.contract.telemetry`
through ``orjson``, and the pure-Python :func:`agent.telemetry_json.encode_text`, issue 17) write
exactly the bytes of the old dicts-and-``json.dumps`` encoder (tests/contract/json_reference.py)
on generated batches covering every extreme: int64/uint64 bounds, NaN/±inf, −0.0, subnormals,
bools, int/float subclasses, unstorable values, every quality, non-ASCII and control characters
in point names, units and reasons, repeated points, synced/unsynced mixes."""

from __future__ import annotations

import enum
import json
import math
import sys
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent import contract, schemas, telemetry_json
from agent.core.model import Quality, Sample
from tests.contract import json_reference


class _Level(enum.IntEnum):
    HIGH = 3


class _F(float):
    """A float subclass whose own repr differs: the JSON must not use it."""

    def __repr__(self) -> str:
        return "F"


_EXTREME_FLOATS = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    sys.float_info.max,
    -sys.float_info.max,
    1e16,
    1e-5,
    0.1,
    1 / 3,
    123456789.0,
    math.nan,
    math.inf,
    -math.inf,
    -math.nan,
    1e-4,
    math.nextafter(1e-4, 0),
    math.nextafter(1e16, 0),
    1e15,
    1e22,
    -1e-4,
    -1e16,
    math.nextafter(-1e16, 0),
    12.5,
    400.1000061035156,
]  # the edges of the range orjson writes as repr does (agent.telemetry_json._LO, _HI)
_EXTREME_INTS = [0, -1, 1, 2**53 + 1, -(2**63), 2**63 - 1, 2**64 - 1, 2**31, -(2**31)]
_BEYOND_64 = [2**64, -(2**63) - 1, 10**30]  # json.dumps writes them; orjson refuses them

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32),
    st.floats(min_value=1e-6, max_value=1e-3) | st.floats(min_value=-1e-3, max_value=-1e-6),
    st.floats(min_value=1e15, max_value=1e17) | st.floats(min_value=-1e17, max_value=-1e15),
    st.sampled_from(_EXTREME_FLOATS),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(_EXTREME_INTS),
    st.sampled_from(_BEYOND_64),
    st.booleans(),
    st.none(),
    st.just(_Level.HIGH),
    st.sampled_from([_F(1.5), _F(-0.0), _F(math.nan), _F(math.inf)]),
    st.just("text"),  # not a value type: unstorable
)
texts = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        ["p_out", "Druck/ausgang", "压力", "\u2028", '"q"\\', "\x00\x1f", "😀", "\x7f"]
    ),
)
samples = st.lists(
    st.tuples(
        st.sampled_from(["p_out", "q_in", "P3", "f.1", "x-y"])  # names the schema allows, mostly
        | st.sampled_from(["压力.ä", 'a"b\\c', "\U0001f600", "\x7f"])
        | texts,
        st.integers(min_value=0, max_value=2**63 - 1),
        values,
        st.sampled_from([Quality.GOOD] * 5 + list(Quality)),
        st.none() | texts,
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)
unit_map = st.dictionaries(texts, st.none() | texts | st.just(""), max_size=6)


_PLAIN = ["p_out", "q_in", "P3", "f.1", "x-y"]


@pytest.mark.parametrize("encode", [contract.telemetry, telemetry_json.encode_text])
@pytest.mark.parametrize("value", _EXTREME_FLOATS + _EXTREME_INTS + _BEYOND_64)
def test_every_extreme_value_alone_is_written_as_json_dumps_writes_it(
    encode: Callable[..., bytes], value: float
) -> None:
    ident = contract.Identity("s", "g", 1)
    for v in (value, -value):
        batch = [Sample(7, "p_out", 1_733_000_000_000, v, Quality.GOOD, None, True)]
        new = encode(ident, batch, {"p_out": "m³/h"}, hist=False, sent_ms=1)
        assert new == json_reference.telemetry(
            ident, batch, {"p_out": "m³/h"}, hist=False, sent_ms=1
        )


def _batch(rows: list[tuple[str, int, object, Quality, str | None, bool]]) -> list[Sample]:
    seq0 = 1_733_000_000_000_000
    return [
        Sample(seq0 + i, point, ts, value, q, reason, synced)  # type: ignore[arg-type]
        for i, (point, ts, value, q, reason, synced) in enumerate(rows)
    ]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=samples,
    units=unit_map,
    hist=st.booleans(),
    sent=st.integers(min_value=0, max_value=2**63 - 1),
    site=texts,
    session=st.integers(min_value=0, max_value=2**63 - 1),
    plain=st.booleans(),
)
@example(
    rows=[("p", 1, -0.0, Quality.GOOD, None, True), ("p", 2, math.nan, Quality.GOOD, None, False)],
    units={"p": "MPa"}, hist=True, sent=7, site="s", session=0, plain=False,
)  # fmt: skip
@pytest.mark.parametrize("encode", [contract.telemetry, telemetry_json.encode_text])
def test_fast_encoder_is_byte_identical_to_the_old_one(
    encode: Callable[..., bytes],
    rows: list[tuple[str, int, object, Quality, str | None, bool]],
    units: dict[str, str | None],
    hist: bool,
    sent: int,
    site: str,
    session: int,
    plain: bool,
) -> None:
    if plain:  # only names that need no escape, as the schema wants: the orjson path
        rows = [(_PLAIN[len(r[0]) % len(_PLAIN)], *r[1:]) for r in rows]
    ident = contract.Identity(site, "gw-ä", session)
    batch = _batch(rows)
    units = {**units, rows[0][0]: units.get(rows[0][0], "m³/h")}  # a non-ASCII unit, often
    if len(rows) > 2 and rows[1][2] is None:  # now and then a time beyond uint64: no orjson
        batch[0] = batch[0]._replace(ts_ms=2**64 + rows[0][1])
    new = encode(ident, batch, units, hist=hist, sent_ms=sent)
    old = json_reference.telemetry(ident, batch, units, hist=hist, sent_ms=sent)
    assert new == old
    decoded = json.loads(new)  # and it is JSON that decodes to the same thing, in order
    assert list(decoded) == list(json.loads(old))


@settings(max_examples=100, deadline=None)
@given(rows=samples)
def test_fast_encoder_output_is_valid_against_the_schema(
    rows: list[tuple[str, int, object, Quality, str | None, bool]],
) -> None:
    names = ["p_out", "q-in.2", "P3"]  # the schema's point names: [A-Za-z0-9_.-]+
    batch = _batch(
        [(names[len(p) % 3], ts % 2**41, v, q, "timeout", s) for p, ts, v, q, _, s in rows]
    )
    body = json.loads(
        contract.telemetry(contract.Identity("s", "g", 1), batch, {}, hist=False, sent_ms=1)
    )
    schemas.validate("telemetry", body)
