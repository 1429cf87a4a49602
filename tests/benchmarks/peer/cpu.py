"""The side-by-side's arithmetic, pure: CPU time from ``/proc/<pid>/stat``, the interleaved
schedule and the summary of runs. No I/O here but :func:`tree_cpu_s` reading ``/proc``.

``/proc/<pid>/stat`` fields (proc(5), "/proc/pid/stat"): after the command name in
parentheses, field 4 is the parent pid, 14 ``utime``, 15 ``stime``, 16 ``cutime`` and 17
``cstime`` (CPU of waited-for children), all in clock ticks (``os.sysconf("SC_CLK_TCK")``,
100 on Linux).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
"""Clock ticks per second of the ``/proc/<pid>/stat`` times (proc(5))."""


@dataclass(frozen=True)
class Stat:
    """The fields of one ``/proc/<pid>/stat`` line that the benchmark uses; times in ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int


def parse_stat(text: str) -> Stat:
    """Parse a ``/proc/<pid>/stat`` line. The command name (field 2) may hold spaces and
    parentheses, so the fields are counted from its last ``)``.

    Raises ``ValueError`` naming the line when it has too few fields."""
    head, sep, tail = text.rpartition(")")
    fields = tail.split()
    if not sep or len(fields) < 15:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    pid = int(head.split("(", 1)[0])
    # tail starts at field 3 (state): field n is fields[n - 3]
    return Stat(
        pid, int(fields[1]), int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])
    )


def tree_ticks(root: int, stats: Iterable[Stat]) -> int:
    """CPU ticks of process ``root`` and every live descendant (``utime + stime``), plus the
    ``cutime + cstime`` each of them holds for its children already reaped. ``stats`` is a
    snapshot of all processes; a ``root`` absent from it gives ``KeyError``."""
    by_pid = {s.pid: s for s in stats}
    children: dict[int, list[int]] = {}
    for s in by_pid.values():
        children.setdefault(s.ppid, []).append(s.pid)
    total, todo = 0, [by_pid[root].pid]
    while todo:
        s = by_pid[todo.pop()]
        total += s.utime + s.stime + s.cutime + s.cstime
        todo += children.get(s.pid, [])
    return total


def read_stats(proc: Path = Path("/proc")) -> list[Stat]:
    """A snapshot of ``/proc/*/stat`` (processes that end while it is read are skipped)."""
    out = []
    for d in proc.iterdir():
        if d.name.isdigit():
            try:
                out.append(parse_stat((d / "stat").read_text()))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return out


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and its children, live or reaped."""
    return tree_ticks(root, read_stats()) / CLK_TCK


def schedule(subjects: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """Interleaved runs: ``rounds`` times every subject in turn (A B C A B C ...), as
    ``(round, subject)``; a slow drift of the machine's load spreads over all subjects alike."""
    if rounds < 1 or not subjects:
        raise ValueError(f"need at least one round and one subject, got {rounds}, {subjects!r}")
    return [(r, s) for r in range(rounds) for s in subjects]


@dataclass(frozen=True)
class Run:
    """One measured window of one gateway: CPU seconds of its process tree and values the
    counter got (both over the same ``seconds``)."""

    subject: str
    round: int
    seconds: float
    cpu_s: float
    values: int
    payload_bytes: int = 0

    @property
    def cpu_ms_per_1000(self) -> float | None:
        """CPU milliseconds per 1000 values delivered (``None`` when none arrived)."""
        return 1e6 * self.cpu_s / self.values if self.values else None

    @property
    def bytes_per_value(self) -> float | None:
        """MQTT payload bytes per value delivered (``None`` when none arrived)."""
        return self.payload_bytes / self.values if self.values else None

    @property
    def values_per_s(self) -> float:
        return self.values / self.seconds

    @property
    def cpu_pct_of_core(self) -> float:
        return 100.0 * self.cpu_s / self.seconds


def summarise(runs: Sequence[Run], ours: str) -> dict[str, dict[str, float | None]]:
    """Per subject: median, min and max of CPU ms per 1000 values, median values/s, % of a core
    and payload bytes per value,
    and ``ratio`` = ours' median / that subject's median (``None`` where undefined)."""
    by: dict[str, list[Run]] = {}
    for r in runs:
        by.setdefault(r.subject, []).append(r)
    out: dict[str, dict[str, float | None]] = {}
    for subject, rs in by.items():
        per = [x for x in (r.cpu_ms_per_1000 for r in rs) if x is not None]
        wire = [x for x in (r.bytes_per_value for r in rs) if x is not None]
        out[subject] = {
            "cpu_ms_per_1000": statistics.median(per) if per else None,
            "cpu_ms_per_1000_min": min(per) if per else None,
            "cpu_ms_per_1000_max": max(per) if per else None,
            "values_per_s": statistics.median(r.values_per_s for r in rs),
            "cpu_pct_of_core": statistics.median(r.cpu_pct_of_core for r in rs),
            "bytes_per_value": statistics.median(wire) if wire else None,
            "runs": float(len(rs)),
        }
    base = out.get(ours, {}).get("cpu_ms_per_1000")
    for fig in out.values():
        theirs = fig["cpu_ms_per_1000"]
        fig["ratio"] = base / theirs if base is not None and theirs else None
    return out


def flat(summary: Mapping[str, Mapping[str, float | None]], ours: str) -> dict[str, float | None]:
    """The summary as the benchmark runner's JSON keys: ``peer_<subject>_<figure>`` and
    ``peer_ratio_ours_<subject>`` for every subject but ``ours``."""
    out: dict[str, float | None] = {}
    for subject, fig in summary.items():
        for k, v in fig.items():
            if k != "ratio":
                out[f"peer_{subject}_{k}"] = None if v is None else round(v, 3)
        if subject != ours:
            r = fig.get("ratio")
            out[f"peer_ratio_ours_{subject}"] = None if r is None else round(r, 3)
    return out
