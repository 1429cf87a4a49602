"""Round trip of every data type the drivers decode, as a property (hypothesis), through real
processes: the simulator's raw-value test bench (Modbus TCP unit 99 and OPC UA ``Types.*``,
:mod:`hil_sim.devices.testbench`) → the agent → SQLite on disk → a private Mosquitto → a
platform-side subscriber; live, and after a broker outage (backfill). The value AND its JSON type
must be what the device holds (issue 11: a uint64 above 2⁶³−1 made SQLite refuse the whole
ingest batch, and a bit was ``true`` live but ``1`` in backfill).

The expected value is computed here from the raw bits, independently of the agent's code: the
registers are built with :mod:`struct` and the word/byte-order rules of the README (big = ABCD,
little word order = CDAB, little byte order swaps each register's bytes); a scaled integer is the
exact decimal ``raw × scale + offset`` rounded once to a double; a scaled float is ``raw × scale +
offset`` in IEEE double arithmetic; NaN and ±∞ arrive as bad-value samples with reason ``nan``,
``inf`` or ``-inf`` (JSON has neither).

One agent for the whole property (polls every 0.2 s); each example sets all values at once with a
new generation counter (``gen``, per connection) and is judged on the first poll after the one
that first showed the new counter (a poll reads several blocks, so the one that first shows it
may have read the others before the change).
"""

from __future__ import annotations

import sqlite3
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.procs import EXAMPLE, AgentProc, Mosquitto, Simulator, Subscriber, wait_for

POLL_S = 0.2
NS = "urn:pumproom-edge:hil-sim"


@dataclass(frozen=True)
class Pt:
    """One bench point: agent name, Modbus table and address (pdu), data type, options."""

    name: str
    register: str
    address: int
    type: str
    word_order: str = "big"
    byte_order: str = "big"
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0


MODBUS = [
    Pt("gen", "holding", 0, "uint16"),
    Pt("i16", "holding", 1, "int16"),
    Pt("u16", "holding", 2, "uint16"),
    Pt("i32", "holding", 3, "int32"),
    Pt("u32_cdab", "holding", 5, "uint32", word_order="little"),
    Pt("i64", "holding", 7, "int64"),
    Pt("u64", "holding", 11, "uint64"),
    Pt("f32", "holding", 15, "float32"),
    Pt("f64", "holding", 17, "float64"),
    Pt("f32_dcba", "holding", 21, "float32", word_order="little", byte_order="little"),
    Pt("s_i16", "holding", 23, "int16", scale=0.1, offset=-5.0),
    Pt("s_u16", "holding", 24, "uint16", scale=0.01),
    Pt("s_i32", "holding", 25, "int32", scale=0.001, offset=100.0),
    Pt("s_f32", "holding", 27, "float32", scale=2.0, offset=1.5),
    Pt("bit0", "holding", 29, "bool", bit=0),
    Pt("bit15", "holding", 29, "bool", bit=15),
    Pt("u64_le", "input", 0, "uint64", word_order="little"),
    Pt("i64_ba", "input", 4, "int64", byte_order="little"),
    Pt("f64_le", "input", 8, "float64", word_order="little"),
    Pt("coil0", "coil", 0, "bool"),
    Pt("coil1", "coil", 1, "bool"),
    Pt("di0", "discrete_input", 0, "bool"),
]
UA = {"Boolean": "bool", "Int64": "int64", "UInt64": "uint64", "Float": "float32",
      "Double": "float64", "Gen": "uint32"}  # fmt: skip
"""OPC UA bench variable → the data type its values are drawn as."""
TABLE = {"holding": "holding_register", "input": "input_register", "coil": "coil",
         "discrete_input": "discrete_input"}  # fmt: skip
INT = {"int16": (">h", 16), "uint16": (">H", 16), "int32": (">i", 32), "uint32": (">I", 32),
       "int64": (">q", 64), "uint64": (">Q", 64)}  # fmt: skip
FLOAT = {"float32": (">f", ">I"), "float64": (">d", ">Q")}


# ---- strategies: raw values at their extremes ---------------------------------------------------


def _ints(dtype: str) -> st.SearchStrategy[int]:
    fmt, bits = INT[dtype]
    lo, hi = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if fmt[1].islower() else (0, (1 << bits) - 1)
    )
    edges = sorted({lo, lo + 1, -1 if lo else 1, 0, 1, hi - 1, hi})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _float_bits(dtype: str) -> st.SearchStrategy[int]:
    """A float's bit pattern: NaN (quiet, signalling, negative), ±∞, ±0, subnormals, extremes."""
    fmt, ifmt = FLOAT[dtype]
    width = 32 if dtype == "float32" else 64

    def bits(x: float) -> int:
        return int(struct.unpack(ifmt, struct.pack(fmt, x))[0])

    if width == 32:
        edges = [0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0x7F800000, 0xFF800000, 0x80000000, 0,
                 0x00000001, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF]  # fmt: skip
    else:
        edges = [0x7FF8000000000000, 0x7FF0000000000001, 0xFFFFFFFFFFFFFFFF,
                 0x7FF0000000000000, 0xFFF0000000000000, 1 << 63, 0, 1,
                 0x800FFFFFFFFFFFFF, 0x0010000000000000, 0x7FEFFFFFFFFFFFFF]  # fmt: skip
    return st.one_of(
        st.sampled_from(edges),
        st.floats(width=width).map(bits),
        st.integers(0, (1 << width) - 1),
    )


def _raw(dtype: str) -> st.SearchStrategy[Any]:
    if dtype == "bool":
        return st.booleans()
    return _float_bits(dtype) if dtype in FLOAT else _ints(dtype)


BATCH = st.fixed_dictionaries(
    {
        **{p.name: _raw(p.type) for p in MODBUS if p.name != "gen"},
        "reg29_noise": st.integers(0, 0xFFFF),
        **{f"ua.{n}": _raw(t) for n, t in UA.items() if n != "Gen"},
    }
)
EXTREMES: dict[str, Any] = {
    **{p.name: True for p in MODBUS if p.type == "bool"},
    "i16": -(1 << 15), "u16": 0xFFFF, "i32": -(1 << 31), "u32_cdab": 0xFFFFFFFF,
    "i64": -(1 << 63), "u64": (1 << 64) - 1, "f32": 0x7FC00000, "f64": 1 << 63,
    "f32_dcba": 0x00000001, "s_i16": -(1 << 15), "s_u16": 0xFFFF, "s_i32": (1 << 31) - 1,
    "s_f32": 0x7F7FFFFF, "u64_le": (1 << 63), "i64_ba": (1 << 63) - 1, "f64_le": 1,
    "reg29_noise": 0x7FFE, "ua.Boolean": True, "ua.Int64": -(1 << 63),
    "ua.UInt64": (1 << 64) - 1, "ua.Float": 0x80000001, "ua.Double": 0x7FF0000000000000,
}  # fmt: skip
"""The all-extremes batch: every uint64 all ones, a float NaN, -0.0, subnormals, max float32."""


# ---- raw values → what the simulator serves, and what the platform must receive ----------------


def _float(dtype: str, bits: int) -> float:
    fmt, ifmt = FLOAT[dtype]
    return float(struct.unpack(fmt, struct.pack(ifmt, bits))[0])


def _words(p: Pt, raw: Any) -> list[int]:
    """Registers as the device holds them (address order), from the raw value."""
    data = (
        struct.pack(FLOAT[p.type][1], raw) if p.type in FLOAT else struct.pack(INT[p.type][0], raw)
    )
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if p.byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words[::-1] if p.word_order == "little" else words


def _expect_number(x: int | float, p_scale: float = 1.0, p_offset: float = 0.0) -> tuple:
    """(q, JSON type, repr) or (q, reason) of an engineering value."""
    if isinstance(x, float):
        if p_scale != 1.0 or p_offset != 0.0:
            x = x * p_scale + p_offset
        if x != x:
            return ("b", "nan")
        if x in (float("inf"), float("-inf")):
            return ("b", "inf" if x > 0 else "-inf")
        return ("g", "float", repr(x))
    if p_scale != 1.0 or p_offset != 0.0:  # exact decimal, rounded once
        exact = Decimal(x) * Decimal(repr(p_scale)) + Decimal(repr(p_offset))
        return ("g", "float", repr(float(exact)))
    return ("g", "int", repr(x))


def _plan(batch: dict[str, Any], gen: int) -> tuple[dict, dict, dict[str, tuple]]:
    """(raw command, raw_ua command, point → expected) for one batch."""
    regs: dict[str, dict[int, int]] = {"holding_register": {}, "input_register": {}}
    bits: dict[str, dict[int, bool]] = {"coil": {}, "discrete_input": {}}
    want: dict[str, tuple] = {}
    reg29 = batch["reg29_noise"]
    for p in MODBUS:
        raw = gen if p.name == "gen" else batch[p.name]
        table = TABLE[p.register]
        if p.type == "bool" and p.bit is None:
            bits[table][p.address] = raw
            want[f"types.{p.name}"] = ("g", "bool", repr(raw))
        elif p.type == "bool":
            assert p.bit is not None
            reg29 = (reg29 | (1 << p.bit)) if raw else (reg29 & ~(1 << p.bit))
            want[f"types.{p.name}"] = ("g", "bool", repr(raw))
        else:
            for i, w in enumerate(_words(p, raw)):
                regs[table][p.address + i] = w
            value = _float(p.type, raw) if p.type in FLOAT else raw
            want[f"types.{p.name}"] = _expect_number(value, p.scale, p.offset)
    regs["holding_register"][29] = reg29
    writes = []
    for table, cells in {**regs, **bits}.items():
        first, last = min(cells), max(cells)
        values = [cells.get(a, 0 if table in regs else False) for a in range(first, last + 1)]
        writes.append({"table": table, "address": first, "values": values})
    ua_values: dict[str, Any] = {}
    for name, dtype in UA.items():
        raw = gen if name == "Gen" else batch[f"ua.{name}"]
        value = _float(dtype, raw) if dtype in FLOAT else raw
        ua_values[name] = value
        if dtype == "bool":
            want[f"types_ua.{name}"] = ("g", "bool", repr(value))
        else:
            want[f"types_ua.{name}"] = _expect_number(value)
    return {"cmd": "raw", "writes": writes}, {"cmd": "raw_ua", "values": ua_values}, want


def _got(value: Any, q: str, reason: str | None) -> tuple:
    if q != "g":
        return (q, reason)
    return ("g", type(value).__name__, repr(value))


# ---- the rig: one simulator, broker, subscriber and agent for the whole property ---------------


def _config(tmp: Path, sim: Simulator) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    points = []
    for p in MODBUS:
        d: dict[str, Any] = {"name": f"types.{p.name}", "register": p.register,
                             "address": p.address, "type": p.type}  # fmt: skip
        if p.word_order != "big":
            d["word_order"] = p.word_order
        if p.byte_order != "big":
            d["byte_order"] = p.byte_order
        if p.bit is not None:
            d["bit"] = p.bit
        if p.scale != 1.0:
            d["scale"] = p.scale
        if p.offset != 0.0:
            d["offset"] = p.offset
        points.append(d)
    ua_points = [
        {"name": f"types_ua.{n}", "node_id": f"ns=2;s=Types.{n}", "namespace_uri": NS} for n in UA
    ]
    doc["devices"] = [
        {"name": "types", "transport": "modbus-tcp", "host": "127.0.0.1", "port": sim.tcp_port,
         "unit_id": 99, "timeout_s": 1.0, "poll_interval_s": POLL_S, "points": points},
        {"name": "types_ua", "transport": "opcua",
         "endpoint": f"opc.tcp://127.0.0.1:{sim.opcua_port}/pumproom/hil-sim/",
         "timeout_s": 2.0, "poll_interval_s": POLL_S, "points": ua_points},
    ]  # fmt: skip
    doc.pop("alarms", None)  # its rules name the pump room's points, replaced here
    doc.pop("control", None)  # so does its control loop
    path = tmp / "types.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


@dataclass
class Rig:
    sim: Simulator
    broker: Mosquitto
    sub: Subscriber
    agent: AgentProc
    gen: int = 0

    def apply(self, batch: dict[str, Any]) -> tuple[int, dict[str, tuple]]:
        """Serve ``batch`` under a new generation; returns (gen, point → expected)."""
        self.gen += 1
        raw, raw_ua, want = _plan(batch, self.gen)
        self.sim.command(raw)
        self.sim.command(raw_ua)
        return self.gen, want

    def judged(self, gen: int, hist: bool | None) -> dict[str, tuple] | None:
        """Point → what the platform got on the first poll after the one that first showed
        ``gen`` (per connection), or None while some point has no such sample yet."""
        rows = [s for s in self.sub.samples() if hist is None or s[6] is hist]
        first_seen: dict[str, int] = {}
        for _seq, point, t, value, _q, _r, _h in rows:
            if point in ("types.gen", "types_ua.Gen") and value == gen:
                conn = point.split(".")[0]
                first_seen[conn] = min(t, first_seen.get(conn, t))
        if len(first_seen) < 2:
            return None
        out: dict[str, tuple[int, tuple]] = {}
        for seq, point, t, value, q, reason, _h in rows:
            conn = point.split(".")[0]
            if conn in first_seen and t > first_seen[conn]:
                if point not in out or seq < out[point][0]:
                    out[point] = (seq, _got(value, q, reason))
        return {p: v for p, (_, v) in out.items()}

    def check(self, gen: int, want: dict[str, tuple], hist: bool | None, timeout_s: float) -> None:
        got = wait_for(
            lambda: (g := self.judged(gen, hist)) is not None and set(want) <= set(g) and g,
            timeout_s,
            f"every point of generation {gen}",
        )
        wrong = {p: (want[p], got[p]) for p in want if got[p] != want[p]}
        assert not wrong, f"generation {gen} (expected, received): {wrong}"

    def buffered_polls(self, gen: int) -> int:
        """Polls in the buffer file whose gen (both connections) is ``gen`` (fewest of the two)."""
        db = sqlite3.connect(f"file:{self.agent.buffer}?mode=ro", uri=True, timeout=5)
        try:
            counts = [
                db.execute(
                    "SELECT count(DISTINCT s.ts) FROM samples s JOIN points p ON p.id = s.point"
                    " WHERE p.name = ? AND s.value = ?",
                    (name, gen),
                ).fetchone()[0]
                for name in ("types.gen", "types_ua.Gen")
            ]
        finally:
            db.close()
        return min(counts)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    site = "rt-" + uuid.uuid4().hex[:8]
    sim = Simulator(tmp_path / "sim", "--test-types")
    (tmp_path / "sim").mkdir()
    sim.start()
    broker = Mosquitto(tmp_path).start()
    sub = Subscriber(broker.port, site, validate=True).start()
    agent = AgentProc(tmp_path, broker.port, sim, site, config=_config(tmp_path, sim),
                      device_sets=[]).start()  # fmt: skip
    try:
        yield Rig(sim, broker, sub, agent)
        sub.assert_valid()  # every message keeps the contract (agent/schemas)
    finally:
        agent.stop()
        sub.stop()
        broker.stop()
        sim.stop()
        if agent.log.exists():
            print(agent.log.read_text()[-3000:])


def test_every_decoded_type_round_trips_exactly_live_and_after_an_outage(rig: Rig) -> None:
    rig.sim.command({"cmd": "ping"})
    seen: list[dict[str, Any]] = []

    @settings(max_examples=20, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(batch=BATCH)
    @example(batch=EXTREMES)
    def live(batch: dict[str, Any]) -> None:
        seen.append(batch)
        gen, want = rig.apply(batch)
        rig.check(gen, want, hist=None, timeout_s=20 if gen == 1 else 10)

    started = time.monotonic()
    live()
    print(f"live: {len(seen)} examples in {time.monotonic() - started:.1f} s")

    # Outage: the broker goes away; the samples are buffered on disk and must come back the same.
    rig.broker.stop()
    outage = []
    for batch in [EXTREMES, *seen[1:4]]:
        gen, want = rig.apply(batch)
        wait_for(lambda gen=gen: rig.buffered_polls(gen) >= 2, 10, f"gen {gen} buffered twice")
        outage.append((gen, want))
    rig.broker.start()
    for gen, want in outage:
        rig.check(gen, want, hist=True, timeout_s=40)
    losses = [
        e
        for topic, body, _ in rig.sub.snapshot()
        if topic.endswith("/event")
        for e in body["events"]
        if e.get("type") == "data_loss"
    ]
    assert not losses, losses
    print(f"live + outage in {time.monotonic() - started:.1f} s")
