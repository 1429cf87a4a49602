"""Alarm records in the buffer: the current state of every alarm that is not normal, written in
the same transaction as the event of its transition, so after a crash the buffer never holds an
event without the state it led to (or the other way round).

Table ``alarms (id TEXT PRIMARY KEY, body TEXT)``: ``body`` is
:meth:`agent.alarms.state.Alarm.to_json` as JSON; a record back in ``normal`` is deleted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from agent.store.records import Event


def create(db: sqlite3.Connection) -> None:
    """Create the table (an older buffer gets it on its next open)."""
    db.execute("CREATE TABLE IF NOT EXISTS alarms (id TEXT PRIMARY KEY, body TEXT NOT NULL)")


def add(
    db: sqlite3.Connection,
    add_event: Callable[[sqlite3.Connection, dict[str, Any]], Event],
    body: dict[str, Any],
    alarm_id: str,
    record: dict[str, Any] | None,
) -> Event:
    """Buffer the event ``body`` and store (``record``) or delete (``None``) the alarm's record."""
    event = add_event(db, body)
    if record is None:
        db.execute("DELETE FROM alarms WHERE id = ?", (alarm_id,))
    else:
        db.execute(
            "INSERT INTO alarms VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            (alarm_id, json.dumps(record)),
        )
    return event


def load(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Every stored record by alarm id."""
    return {i: json.loads(b) for i, b in db.execute("SELECT id, body FROM alarms")}


def drop(db: sqlite3.Connection, ids: list[str]) -> None:
    """Delete the records of ``ids`` (alarms whose rules are no longer configured)."""
    db.executemany("DELETE FROM alarms WHERE id = ?", [(i,) for i in ids])
