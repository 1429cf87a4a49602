"""The buffer's command memory: the answer given to each command id, for duplicate detection.

Writer-thread functions over the ``commands`` table (``id`` TEXT PRIMARY KEY, ``received`` wall
ms, ``answer`` JSON). The memory is bounded on its own, by age and by count, and its pages are
left out of the buffer's ``max_bytes`` (:meth:`agent.store.space.SpaceKeeper._bound_bytes`): a
flood of commands (8,000 refused ones under a 1 MiB bound evicted all 10,000 waiting samples
before) can never evict telemetry.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

MEMORY_MS = 24 * 3600 * 1000
"""How long command ids are remembered to answer duplicates (uplink-protocol.md §6.7: ≥ 24 h)."""
MEMORY_IDS = 10_000
"""Most command ids remembered; beyond it the oldest are forgotten first. An answer is a few
hundred bytes (at most about the 16 KiB request bound), so typically ~3 MB on disk."""


def answer(db: sqlite3.Connection, cmd_id: str, now_ms: int) -> dict[str, Any] | None:
    """The answer given to ``cmd_id`` within :data:`MEMORY_MS` of ``now_ms``, or ``None``."""
    row = db.execute(
        "SELECT answer FROM commands WHERE id = ? AND received > ?", (cmd_id, now_ms - MEMORY_MS)
    ).fetchone()
    return json.loads(row[0]) if row else None


def remember(
    db: sqlite3.Connection, cmd_id: str, body: dict[str, Any], now_ms: int, max_ids: int
) -> None:
    """Keep ``body`` as the answer to ``cmd_id``; forget ids older than :data:`MEMORY_MS` and
    all but the newest ``max_ids`` (by rowid: insertion order; an update keeps its rowid)."""
    db.execute("DELETE FROM commands WHERE received < ?", (now_ms - MEMORY_MS,))
    db.execute(
        "INSERT INTO commands VALUES (?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET answer = excluded.answer",
        (cmd_id, now_ms, json.dumps(body)),
    )
    db.execute(
        "DELETE FROM commands WHERE rowid <="
        " (SELECT rowid FROM commands ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
        (max_ids,),
    )


def table_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the pages of the commands table and its index (SQLite's ``dbstat`` table,
    https://sqlite.org/dbstat.html; without it, an estimate from the rows' lengths)."""
    try:
        row = db.execute(
            "SELECT sum(pgsize) FROM dbstat"
            " WHERE name IN ('commands', 'sqlite_autoindex_commands_1')"
        ).fetchone()
    except sqlite3.OperationalError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
        row = db.execute(
            "SELECT sum(2 * length(id) + length(answer) + 24) * 1.25 FROM commands"
        ).fetchone()
    return int(row[0] or 0)
