"""The figures of issue 17 against its goals, as printed by ``python -m tests.benchmarks``.

Each row names the JSON keys that may carry the figure, first found wins: the benchmark that
builds the figure (several developers add them; the agreed keys are in the coordination note
perf-figures.md) and, for CPU per 1000 points, the side-by-side's own measurement of our agent
on the same load (``python -m tests.benchmarks.peer``). A row whose keys no benchmark produced
prints "not measured": no figure is ever filled in here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Row = tuple[str, Sequence[str], str, Callable[[float], bool]]

ROWS: list[Row] = [
    (
        "CPU per 1000 points, 100 float32 / 100 ms, ms",
        ("cpu_ms_per_1000_points_100pt_100ms", "peer_ours_cpu_ms_per_1000"),
        "<= 8",
        lambda v: v <= 8,
    ),
    ("  peer, memory buffer, same run, ms", ("peer_memory_cpu_ms_per_1000",), "(report)",
     lambda v: True),
    ("  peer, SQLite buffer, same run, ms", ("peer_sqlite_cpu_ms_per_1000",), "(report)",
     lambda v: True),
    ("  ours / peer memory", ("peer_ratio_ours_memory",), "<= 0.1 (10x less)", lambda v: v <= 0.1),
    ("  ours / peer SQLite", ("peer_ratio_ours_sqlite",), "<= 0.05 (20x less)",
     lambda v: v <= 0.05),
    ("marginal CPU per sample, us", ("marginal_us_per_sample",), "<= 4", lambda v: v <= 4),
    ("10k points at 100 ms: polls/s", ("tenk_polls_per_s",), ">= 9.9 (all 10)",
     lambda v: v >= 9.9),
    ("10k points at 100 ms: % of a core", ("tenk_cpu_pct_of_core",), "<= 50", lambda v: v <= 50),
    ("10k points at 100 ms: RSS, MiB", ("tenk_rss_mib",), "<= 80", lambda v: v <= 80),
    ("bytes per value, typical room, plain", ("wire_bytes_per_value_plain",), "<= 12",
     lambda v: v <= 12),
    ("bytes per value, typical room, compressed", ("wire_bytes_per_value_compressed",), "<= 3",
     lambda v: v <= 3),
    ("config load + check, 10k points, s", ("config_load_10k_points_s",), "<= 1",
     lambda v: v <= 1),
]  # fmt: skip


def table(figures: Mapping[str, Any], rows: Sequence[Row] = ROWS) -> str:
    """One line per figure: its value (and the key it came from), the goal, and whether it is
    met; "not measured" where no key of the row holds a number."""
    lines = ["issue 17 figures:", f"  {'figure':44} {'value':>12}  {'goal':18} ok  (key)"]
    for label, keys, goal, ok in rows:
        key = next((k for k in keys if isinstance(figures.get(k), int | float)), None)
        if key is None:
            lines.append(f"  {label:44} {'not measured':>12}  {goal:18} -")
            continue
        v = float(figures[key])
        lines.append(f"  {label:44} {v:12.3f}  {goal:18} {'yes' if ok(v) else 'NO ':3} ({key})")
    return "\n".join(lines)
