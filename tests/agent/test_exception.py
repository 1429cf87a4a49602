"""Report by exception: a table of cases over the pure filter."""

from __future__ import annotations

import pytest

from agent.core.model import Quality, Reading
from agent.exception import Deadband, ReportByException

G, C = Quality.GOOD, Quality.COMM_FAIL

CASES = [
    # (band, [(t, value, quality)], reported flags)
    ("no band: all pass", None, [(0, 1.0, G), (1, 1.0, G)], [True, True]),
    ("absolute: within band suppressed", Deadband(absolute=0.5), [(0, 1.0, G), (1, 1.4, G), (2, 1.6, G)], [True, False, True]),
    ("absolute: band measured from last REPORTED value", Deadband(absolute=0.5), [(0, 1.0, G), (1, 1.3, G), (2, 1.45, G), (3, 1.51, G)], [True, False, False, True]),
    ("percent of last reported", Deadband(percent=10), [(0, 100.0, G), (1, 109.0, G), (2, 111.0, G)], [True, False, True]),
    ("quality change always reported", Deadband(absolute=10), [(0, 1.0, G), (1, None, C), (2, None, C), (3, 1.0, G)], [True, True, False, True]),
    ("heartbeat", Deadband(absolute=10, heartbeat_s=5), [(0, 1.0, G), (4, 1.0, G), (5, 1.0, G), (9, 1.0, G), (10, 1.0, G)], [True, False, True, False, True]),
    ("bools report on change", Deadband(absolute=0.5), [(0, True, G), (1, True, G), (2, False, G)], [True, False, True]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "band", "steps", "expected"), CASES, ids=[c[0] for c in CASES])
def test_report_by_exception(
    name: str, band: Deadband | None, steps: list, expected: list[bool]
) -> None:
    rbe = ReportByException({"p": band} if band else {})
    got = []
    for t, value, q in steps:
        reading = Reading("p", value, q, None if q is G else "timeout")
        got.append(len(rbe.filter([reading], float(t))) == 1)
    assert got == expected


def test_points_without_a_band_pass_beside_filtered_ones() -> None:
    rbe = ReportByException({"slow": Deadband(absolute=1.0)})
    first = rbe.filter([Reading("slow", 1.0), Reading("fast", 1.0)], 0.0)
    second = rbe.filter([Reading("slow", 1.1), Reading("fast", 1.0)], 1.0)
    assert [r.point for r in first] == ["slow", "fast"]
    assert [r.point for r in second] == ["fast"]
    assert rbe.suppressed == 1
