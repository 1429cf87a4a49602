"""``pumproom-agent buffer``: what the store-and-forward buffer holds, for a technician.

Reads the buffer file (read-only, with sqlite-utils) while the agent runs or not: samples waiting
for the platform with their seq and time range, events waiting, the session counter, the file's
size, and the points with the most waiting samples.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils


def summary(path: str | Path) -> dict[str, Any]:
    """The buffer's contents as a dict (see the module docstring).

    Raises:
        FileNotFoundError: no buffer file at ``path``.
        sqlite3.DatabaseError: the file is not a buffer.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no buffer file")
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        db = sqlite_utils.Database(conn)
        first, last, count, t0, t1 = next(db.query(
            "SELECT min(seq) a, max(seq) b, count(*) c, min(ts) d, max(ts) e FROM samples"
        )).values()  # fmt: skip
        top = list(db.query(
            "SELECT p.name, count(*) n FROM samples s JOIN points p ON p.id = s.point"
            " GROUP BY s.point ORDER BY n DESC LIMIT 10"
        ))  # fmt: skip
        meta = {r["key"]: r["value"] for r in db["meta"].rows}
        return {
            "file": str(p),
            "bytes": sum(f.stat().st_size for f in p.parent.glob(p.name + "*") if f.is_file()),
            "samples_waiting": count,
            "seq_range": [first, last] if count else None,
            "time_range": [_iso(t0), _iso(t1)] if count else None,
            "events_waiting": db["events"].count,
            "session": meta.get("session"),
            "top_points": {r["name"]: r["n"] for r in top},
        }
    finally:
        conn.close()


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def render(info: dict[str, Any]) -> str:
    """The summary as text lines."""
    lines = [
        f"buffer {info['file']} ({info['bytes'] / 1e6:.1f} MB on disk, session {info['session']})",
        f"samples waiting for the platform: {info['samples_waiting']}",
    ]
    if info["seq_range"]:
        lines.append(f"  seq {info['seq_range'][0]}..{info['seq_range'][1]}, "
                     f"taken {info['time_range'][0]} .. {info['time_range'][1]} (UTC)")  # fmt: skip
        lines += [f"  {n:>8}  {name}" for name, n in info["top_points"].items()]
    lines.append(f"events waiting: {info['events_waiting']}")
    return "\n".join(lines)
