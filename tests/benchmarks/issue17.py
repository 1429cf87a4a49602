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
    ("CPU per 1000 points, 100 float32 / 100 ms, ms",
     ("cpu_ms_per_1000_points", "peer_ours_cpu_ms_per_1000"), "<= 8", lambda v: v <= 8),
    ("  the peer, memory buffer, same run, ms", ("peer_memory_cpu_ms_per_1000",), "(report)",
     lambda v: True),
    ("  the peer, SQLite buffer, same run, ms", ("peer_sqlite_cpu_ms_per_1000",), "(report)",
     lambda v: True),
    ("  ours / peer memory (same run)", ("peer_ratio_ours_memory",), "<= 0.1 (10x less)",
     lambda v: v <= 0.1),
    ("  ours / peer SQLite (same run)", ("peer_ratio_ours_sqlite",), "<= 0.05 (20x less)",
     lambda v: v <= 0.05),
    ("marginal CPU per sample, us", ("marginal_us_per_sample",), "<= 4", lambda v: v <= 4),
    ("10k points at 100 ms: polls/s", ("points_10k_polls_per_s",), ">= 9.9 (all 10)",
     lambda v: v >= 9.9),
    ("10k points at 100 ms: % of a core", ("points_10k_cpu_pct_of_core",), "<= 50",
     lambda v: v <= 50),
    ("10k points at 100 ms: RSS, MiB", ("points_10k_rss_mib",), "<= 80", lambda v: v <= 80),
    ("bytes per value, typical room, plain", ("wire_cbor_bytes_per_value",), "<= 12",
     lambda v: v <= 12),
    ("bytes per value, typical room, compressed", ("wire_cbor_zlib_bytes_per_value",), "<= 3",
     lambda v: v <= 3),
    ("  v1 JSON, typical room (before: 69.9)", ("wire_json_bytes_per_value",), "(report)",
     lambda v: True),
    ("  the peer, 100 pts / 100 ms, JSON payload", ("peer_memory_bytes_per_value",),
     "(report; 17.4 at 1 s)", lambda v: True),
    ("config load + check, 10k points, s",
     ("config_load_10k_points_cpu_s", "config_load_10k_points_s"), "<= 1", lambda v: v <= 1),
    ("  pumproom-agent check, 10k points, CPU s", ("config_check_cli_10k_points_cpu_s",),
     "(report)", lambda v: True),
]  # fmt: skip
"""(label, JSON keys tried in order, goal, check). Keys: perf-core's per_sample benchmark
(``cpu_ms_per_1000_points``, ``marginal_us_per_sample``, ``points_10k_*``), perf-wire's wire
benchmark (``wire_*_bytes_per_value``), config_load, and the side-by-side (``peer_*``)."""


def table(figures: Mapping[str, Any], rows: Sequence[Row] = ROWS) -> str:
    """One line per figure: its value (and the key it came from), the goal, and whether it is
    met ("-" for a figure only reported); "not measured" where no key of the row holds a
    number."""
    lines = ["issue 17 figures:", f"  {'figure':46} {'value':>12}  {'goal':21} ok  (key)"]
    for label, keys, goal, ok in rows:
        key = next((k for k in keys if isinstance(figures.get(k), int | float)), None)
        if key is None:
            lines.append(f"  {label:46} {'not measured':>12}  {goal:21} -")
            continue
        v = float(figures[key])
        mark = "-  " if goal.startswith("(report") else "yes" if ok(v) else "NO "
        lines.append(f"  {label:46} {v:12.3f}  {goal:21} {mark} ({key})")
    return "\n".join(lines)
