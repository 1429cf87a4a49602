"""Writing polls into the ``samples`` table: one multi-row INSERT per chunk instead of one per row.

The cost of a buffered sample is mostly SQLite's per-statement work and the binding of its
parameters, not the B-tree (issue 17: 2.6 µs of 7 bound values per row by ``executemany``, 0.6 µs
as rows of a multi-row ``INSERT … SELECT … FROM (VALUES …)``). So the common sample, a good
finite float or an int64 (``kind`` NULL, no reason), binds three values (seq, point id, value) in
a statement whose time and clock flag are bound once for its poll; every other sample (not good,
a bool, a uint64, a value that cannot be kept) takes the general row of :func:`to_row`, one
``executemany`` row each, exactly as before.

Seqs are given explicitly, counting on from the highest seq ever assigned (``sqlite_sequence``,
read by the caller inside the transaction). ``AUTOINCREMENT`` keeps its promise with explicit
rowids: a row inserted with a larger rowid raises the table's ``sqlite_sequence`` entry
(https://sqlite.org/autoinc.html), so seqs are still never reused and readers of
``sqlite_sequence`` see the same counter as before. The file format is unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from agent.core.model import Quality, Sample
from agent.store.records import Poll
from agent.store.values import INT64_MAX, INT64_MIN, UNSTORABLE, to_row

CHUNKS = (256, 64, 16, 4, 1)
"""Rows per multi-row statement, largest first: a poll's fast rows are cut into these sizes, so
the connection's statement cache holds five statements, never one per poll size. 256 rows bind
770 values, under SQLITE_MAX_VARIABLE_NUMBER's 999 of SQLite before 3.32
(https://sqlite.org/limits.html §9)."""

MAX_FINITE = 1.7976931348623157e308
"""The largest finite double (IEEE 754 binary64); a NaN fails every comparison with it."""

_GOOD = Quality.GOOD
_new = tuple.__new__
"""``_new(Sample, (…))``: a named tuple made without its Python-level ``__new__`` (a third
cheaper; the same object)."""


def _fast_sql(n: int) -> str:
    return (
        "INSERT INTO samples (seq, point, ts, value, quality, reason, synced, kind)"
        " SELECT column1, column2, ?, column3, 0, NULL, ?, NULL FROM (VALUES "
        + ",".join(["(?,?,?)"] * n)
        + ")"
    )


_FAST_SQL = {n: _fast_sql(n) for n in CHUNKS}
_GENERAL_SQL = (
    "INSERT INTO samples (seq, point, ts, value, quality, reason, synced, kind)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def next_seq(db: sqlite3.Connection) -> int:
    """The seq the next sample gets: one above the highest ever assigned (``sqlite_sequence``,
    which AUTOINCREMENT keeps at or above every rowid; the table's own maximum is taken too, so
    a file whose counter was tampered with cannot make an explicit seq collide)."""
    row = db.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'samples'), 0),"
        " coalesce((SELECT max(seq) FROM samples), 0))"
    ).fetchone()
    return int(row[0]) + 1


def insert_polls(
    db: sqlite3.Connection,
    polls: Sequence[Poll],
    first_seq: int,
    point_id: Callable[[str], int],
) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Insert every reading of ``polls``, in order, as samples ``first_seq``, ``first_seq + 1``…

    Args:
        db: the writer thread's connection, inside a transaction.
        polls: the polls, oldest first.
        first_seq: seq of the first reading (:func:`next_seq`).
        point_id: point name → its id in the ``points`` table (adds unknown names).

    Returns:
        The stamped samples (the value each reads back as, :func:`agent.store.values.to_row`)
        and the good readings whose value could not be kept (``(point, value's repr)``).

    Raises:
        sqlite3.Error: as the INSERTs raise it (``SQLITE_FULL`` aborts the transaction).
    """
    out: list[Sample] = []
    unstorable: list[tuple[str, str]] = []
    general: list[tuple[object, ...]] = []
    seq = first_seq
    for p in polls:
        ts, synced = p.ts_ms, p.synced
        fast: list[object] = []
        for r in p.readings:
            v = r.value
            cls = v.__class__
            if r.quality is _GOOD and (
                (cls is float and -MAX_FINITE <= v <= MAX_FINITE)  # type: ignore[operator]
                or (cls is int and INT64_MIN <= v <= INT64_MAX)  # type: ignore[operator]
            ):
                fast += (seq, point_id(r.point), v)
                out.append(_new(Sample, (seq, r.point, ts, v, _GOOD, None, synced)))
            else:
                # one reading at a time: a value SQLite cannot take becomes a bad-value sample
                # of its own instead of failing the whole batch (agent.store.values)
                (value, kind, q, reason), back = to_row(r)
                if reason == UNSTORABLE and r.quality is _GOOD:
                    unstorable.append((r.point, repr(r.value)[:80]))
                general.append((seq, point_id(r.point), ts, value, q, reason, synced, kind))
                out.append(Sample(seq, r.point, ts, back, q, reason, synced))
            seq += 1
        _insert_fast(db, fast, ts, synced)
    if general:
        db.executemany(_GENERAL_SQL, general)
    return out, unstorable


def _insert_fast(db: sqlite3.Connection, flat: list[object], ts: int, synced: bool) -> None:
    """Insert ``flat`` (seq, point id, value, seq, point id, value…) of one poll."""
    left = len(flat) // 3
    at = 0
    for n in CHUNKS:
        while left >= n:
            end = at + 3 * n
            db.execute(_FAST_SQL[n], [ts, synced, *flat[at:end]])
            at, left = end, left - n
