"""Table tests for the Modbus read planner (drivers/modbus/plan.py)."""

from __future__ import annotations

import pytest

from drivers.modbus.plan import Member, ModbusReadPlan, ReadRequest, plan_requests
from drivers.specs import DataType, ModbusLimits, ModbusPoint, Table

HR, IR, CO, DI = Table.HOLDING_REGISTER, Table.INPUT_REGISTER, Table.COIL, Table.DISCRETE_INPUT
U16, F32, F64, BOOL = DataType.UINT16, DataType.FLOAT32, DataType.FLOAT64, DataType.BOOL


def pt(addr: int, dtype: DataType = U16, table: Table = HR, unit: int = 1, bit: int | None = None):
    return ModbusPoint(
        name=f"u{unit}.{table}.{addr}.{dtype}.{bit}",
        device="d",
        unit_id=unit,
        table=table,
        address=addr,
        dtype=dtype,
        bit=bit,
    )


def spans(reqs: tuple[ReadRequest, ...]) -> list[tuple[int, str, int, int]]:
    return [(r.unit_id, str(r.table), r.address, r.count) for r in reqs]


LIM16 = {1: ModbusLimits(max_registers=16, max_gap=16)}
DEFAULT = {1: ModbusLimits()}

CASES = [
    # (id, points, limits, expected spans)
    ("single", [pt(0)], DEFAULT, [(1, "holding_register", 0, 1)]),
    ("contiguous", [pt(0), pt(1), pt(2, F32)], DEFAULT, [(1, "holding_register", 0, 4)]),
    ("unsorted input", [pt(5), pt(0)], DEFAULT, [(1, "holding_register", 0, 6)]),
    # max_gap = 10: 10 free addresses (1..10) are bridged, 11 (1..11) are not.
    ("gap == max_gap", [pt(0), pt(11)], DEFAULT, [(1, "holding_register", 0, 12)]),
    (
        "gap == max_gap + 1",
        [pt(0), pt(12)],
        DEFAULT,
        [(1, "holding_register", 0, 1), (1, "holding_register", 12, 1)],
    ),
    (
        "gap counts from the end of a float",
        [pt(0, F32), pt(12)],
        DEFAULT,
        [(1, "holding_register", 0, 13)],
    ),
    # INVT GD200A: 16 words per 03H read (domain.md §4.0/§4.4, [S57]): 3000H..3009H + 2 more
    (
        "INVT 16 words, 0x3000..0x3011",
        [pt(0x3000 + i) for i in range(18)],
        LIM16,
        [(1, "holding_register", 0x3000, 16), (1, "holding_register", 0x3010, 2)],
    ),
    (
        "float32 straddling the 16-word boundary moves whole",
        [pt(0), pt(15, F32)],
        LIM16,
        [(1, "holding_register", 0, 1), (1, "holding_register", 15, 2)],
    ),
    (
        "float32 ending exactly at the boundary stays",
        [pt(0), pt(14, F32)],
        LIM16,
        [(1, "holding_register", 0, 16)],
    ),
    (
        "float64 straddling 125",
        [pt(0), pt(122, F64)],
        DEFAULT,
        [(1, "holding_register", 0, 1), (1, "holding_register", 122, 4)],
    ),
    (
        "a later, shorter point fills the window the straddler left",
        [*[pt(a) for a in range(0, 121, 5)], pt(122, F64), pt(124)],
        DEFAULT,
        [(1, "holding_register", 0, 125), (1, "holding_register", 122, 4)],
    ),
    (
        "bits of one register share it",
        [pt(7, BOOL, bit=0), pt(7, BOOL, bit=3), pt(7, BOOL, bit=15)],
        DEFAULT,
        [(1, "holding_register", 7, 1)],
    ),
    (
        "2000 coils in one read",
        [pt(i, BOOL, CO) for i in range(0, 2000, 9)],
        DEFAULT,
        [(1, "coil", 0, 1999)],
    ),
    (
        "2001 coils need two",
        [pt(0, BOOL, CO), pt(1999, BOOL, CO), pt(2000, BOOL, CO)]
        + [pt(i, BOOL, CO) for i in range(10, 1999, 10)],
        DEFAULT,
        [(1, "coil", 0, 2000), (1, "coil", 2000, 1)],
    ),
    (
        "unit ids never merged",
        [pt(0, unit=1), pt(1, unit=2)],
        {},
        [(1, "holding_register", 0, 1), (2, "holding_register", 1, 1)],
    ),
    (
        "tables never merged",
        [pt(0, table=IR), pt(1), pt(0, BOOL, DI)],
        {},
        [(1, "discrete_input", 0, 1), (1, "holding_register", 1, 1), (1, "input_register", 0, 1)],
    ),
    (
        "per-unit limits",
        [pt(i, unit=1) for i in range(20)] + [pt(i, unit=2) for i in range(20)],
        {1: ModbusLimits(max_registers=16)},
        [
            (1, "holding_register", 0, 16),
            (1, "holding_register", 16, 4),
            (2, "holding_register", 0, 20),
        ],
    ),
    (
        "max_gap 0 keeps contiguous",
        [pt(0), pt(1), pt(3)],
        {1: ModbusLimits(max_gap=0)},
        [(1, "holding_register", 0, 2), (1, "holding_register", 3, 1)],
    ),
    ("top of address space", [pt(0xFFFE, F32)], DEFAULT, [(1, "holding_register", 0xFFFE, 2)]),
]


@pytest.mark.parametrize(
    ("points", "limits", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan_table(points, limits, expected):
    reqs = plan_requests(points, limits)
    assert spans(reqs) == expected
    # every point is a member of exactly one request and lies wholly inside it
    seen = [m.index for r in reqs for m in r.members]
    assert sorted(seen) == list(range(len(points)))
    for r in reqs:
        lim = limits.get(r.unit_id, ModbusLimits())
        assert r.count <= (lim.max_bits if r.table.is_bit else lim.max_registers)
        for m in r.members:
            p = points[m.index]
            assert p.address == r.address + m.offset
            assert m.offset + p.width <= r.count


def test_members_offsets():
    reqs = plan_requests([pt(10), pt(12, F32), pt(10, BOOL, bit=2)])
    assert reqs == (ReadRequest(1, HR, 10, 4, (Member(0, 0), Member(2, 0), Member(1, 2))),)


def test_skip_and_breaks_split_around_a_bad_address():
    points = [pt(0), pt(1), pt(2)]
    # skipping alone still bridges the skipped address (it is a 1-address gap)
    assert spans(plan_requests(points, skip={1})) == [(1, "holding_register", 0, 3)]
    breaks = {(1, HR, 1), (1, HR, 2)}
    assert spans(plan_requests(points, skip={1}, breaks=breaks)) == [
        (1, "holding_register", 0, 1),
        (1, "holding_register", 2, 1),
    ]
    # a break on another unit or table changes nothing
    assert len(plan_requests(points, breaks={(2, HR, 1), (1, IR, 1)})) == 1


@pytest.mark.parametrize(
    ("point", "limits"),
    [(pt(0, F64), {1: ModbusLimits(max_registers=3)}), (pt(0xFFFF, F32), {})],
)
def test_impossible_points_are_refused(point, limits):
    with pytest.raises(ValueError):
        plan_requests([point], limits)


def test_read_plan_counts_and_rejects_foreign_points():
    from drivers.specs import OpcUaPoint

    plan = ModbusReadPlan([pt(0), pt(200)], {})
    assert plan.request_count == 2
    with pytest.raises(ValueError):
        ModbusReadPlan([OpcUaPoint("x", "d", "ns=2;s=x")])
    with pytest.raises(ValueError):
        ModbusReadPlan([pt(0), pt(0)])


def brute_force_min(points, max_count, max_gap):
    """Smallest number of windows, by breadth-first search over subsets (small inputs only)."""
    import itertools

    n = len(points)
    free = set(range(min(p.address for p in points), max(p.address + p.width for p in points)))
    for p in points:
        free -= set(range(p.address, p.address + p.width))

    def ok(group):
        s = min(points[i].address for i in group)
        e = max(points[i].address + points[i].width for i in group)
        if e - s > max_count:
            return False
        run = 0
        for a in range(s, e):
            run = run + 1 if a in free else 0
            if run > max_gap:
                return False
        return True

    for k in range(1, n + 1):
        for labels in itertools.product(range(k), repeat=n):
            groups = [[i for i in range(n) if labels[i] == g] for g in range(k)]
            if all(g and ok(g) for g in groups):
                return k
    raise AssertionError


def test_greedy_is_minimal_against_brute_force():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(0, 30), st.sampled_from([U16, F32, F64])), min_size=1, max_size=5
        ),
        st.integers(4, 9),
        st.integers(0, 4),
    )
    def check(raw, max_count, max_gap):
        points = [ModbusPoint(f"p{i}", "d", 1, HR, a, t) for i, (a, t) in enumerate(raw)]
        lim = {1: ModbusLimits(max_registers=max_count, max_gap=max_gap)}
        assert len(plan_requests(points, lim)) == brute_force_min(points, max_count, max_gap)

    check()
