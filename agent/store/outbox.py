"""The store-and-forward buffer: a transactional SQLite outbox for samples and events.

Every sample is committed here (WAL journal) before it is offered to the uplink, and a row leaves
only when the uplink calls :meth:`Store.ack` after the broker's PUBACK. Order and eviction come
from the sequence number (``seq``, SQLite ``AUTOINCREMENT``: strictly increasing, never reused even
after the newest rows are deleted, per https://sqlite.org/autoinc.html), never from wall time.

Threading: one dedicated writer thread owns the only connection. Callers on the event loop submit
operations; the thread takes every queued operation at once and runs them in ONE transaction, so a
burst of appends and acks costs one commit (one fsync). The event loop never waits on the disk.
Acks do not wait for a transaction of their own: :meth:`Store.ack` notes the seqs and the next
transaction (usually the next poll's append) deletes them first, or one of their own after
:data:`ACK_LINGER_S`; every read (:meth:`Store.begin`, :meth:`Store.pending`) runs after them.

Durability (``synchronous``):

* ``full`` (default): each transaction is fsynced before its futures resolve. A power cut loses
  nothing that ``append`` has returned.
* ``normal``: in WAL mode, commits are durable against an agent crash, but a power cut can lose the
  transactions since the last checkpoint (https://sqlite.org/pragma.html#pragma_synchronous);
  kinder to SD cards.

Size bound and full disks: :mod:`agent.store.space`; the writer thread: :mod:`agent.store.writer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agent.core.model import Quality, Sample
from agent.store import alarm_rows, commands, rows
from agent.store.records import AppendResult, Event, Evicted, Poll, StoreCounters
from agent.store.space import WAL_AUTOCHECKPOINT_PAGES, WAL_RESERVE_BYTES, SpaceKeeper
from agent.store.values import from_row
from agent.store.writer import TransactionThread

log = logging.getLogger("agent.store")

SCHEMA_VERSION = 1
COMMAND_MEMORY_MS = commands.MEMORY_MS
COMMAND_MEMORY_IDS = commands.MEMORY_IDS
ACK_LINGER_S = 2.0
"""Longest an acknowledged sample's row waits for a transaction to delete it, s. Longer than the
usual 1 s poll interval, so a pump room's acks ride along with its next appends and cost no commit
of their own. An agent killed in between (SIGKILL, power cut) sends those samples again after its
restart: at least once, as always; the platform drops them by seq. A clean stop deletes them."""


class Store(SpaceKeeper, TransactionThread):
    """Async facade over the SQLite outbox. Create with :meth:`open`; finish with :meth:`close`.

    Args:
        path: database file; its folder is created.
        max_bytes: bound on the pages in use, bytes (at least 1 MiB).
        synchronous: ``"full"`` or ``"normal"``, see the module docstring.
        command_ids: most command ids remembered (:data:`agent.store.commands.MEMORY_IDS`).
    """

    def __init__(
        self,
        path: str | Path,
        max_bytes: int,
        synchronous: str = "full",
        command_ids: int = COMMAND_MEMORY_IDS,
    ) -> None:
        self.path = Path(path)
        self.command_ids = command_ids
        """Most command ids remembered (:meth:`remember_command`)."""
        self._commands_bytes: int | None = None
        """Bytes of the command memory's pages (None: to be measured again)."""
        self.max_bytes = max_bytes
        self.synchronous = synchronous
        self.counters = StoreCounters()
        self._seq_base = 0
        self.created = False
        """Whether :meth:`open` created the file's tables (a new buffer, numbered from
        ``seq_base``) rather than continuing an existing buffer."""
        TransactionThread.__init__(self)
        self._point_ids: dict[str, int] = {}
        self._point_names: dict[int, str] = {}
        self._page_size = 4096
        self.pending_rows = 0
        self.limit_bytes = max_bytes
        """The size bound in force (``max_bytes``); the free space on the file system may
        bound the buffer further, see :meth:`_disk_bound`."""
        self._unreported: list[Evicted] = []
        """Samples in the buffer now (kept by the writer thread; read it from anywhere)."""
        self._eviction_log: dict[str, Any] = {}
        """Per eviction cause, what was evicted since it was last logged (space.py)."""
        self._acks_lock = threading.Lock()
        self._acks: list[int] = []
        """Seqs acknowledged and not yet deleted (:meth:`ack`; the lock guards the swap)."""
        self._acks_taken = 0
        """How many times a transaction has taken the waiting acks."""
        self._acks_in_tx: list[int] = []
        """The acks the writer thread's current transaction deletes (put back on rollback)."""
        self._acks_in_tx_rows = 0
        """How many rows those deletes removed (uncounted on rollback)."""

    @classmethod
    async def open(
        cls,
        path: str | Path,
        max_bytes: int,
        synchronous: str = "full",
        seq_base: int = 0,
        command_ids: int = COMMAND_MEMORY_IDS,
    ) -> Store:
        """Open (or create) the buffer and start its writer thread.

        ``seq_base``: used only when the file is *new* (created by this call; :attr:`created`
        tells): every counter (sample and event seqs, the session, command-response seqs) starts
        above it, so the platform, which deduplicates on (gateway, stream, seq), never mistakes a
        new buffer's messages for an old one's. The agent passes wall-clock ms × 1000
        (:func:`agent.app.open_store`). An existing file ignores it and continues from its own
        counters (AUTOINCREMENT: never reused, even after every row was acknowledged).

        Raises:
            StoreCorrupt: the file exists but is damaged or not a SQLite database.
            StoreUnavailable: the file cannot be opened for another reason (read-only file
                system, permission, a lock held elsewhere, a full disk...); it is left as it is.
        """
        store = cls(path, max_bytes, synchronous, command_ids)
        store._seq_base = seq_base
        try:
            await store._start()
        except BaseException:
            await store.close()
            raise
        return store

    async def append(self, polls: Sequence[Poll]) -> AppendResult:
        """Commit polls' readings as samples, in order; returns them with their seqs."""
        return await self._submit(lambda db: self._append(db, polls))

    async def begin(
        self, limit: int, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[Sample]:
        """Return up to ``limit`` buffered samples with ``after_seq < seq <= upto_seq`` (no upper
        bound when ``None``), oldest first."""
        upto = (1 << 62) if upto_seq is None else upto_seq
        return await self._submit(lambda db: self._begin(db, limit, after_seq, upto))

    async def last_seq(self) -> int:
        """The highest seq ever assigned (for a new buffer: its ``seq_base``, 0 by default)."""
        return await self._submit(self._last_seq)

    def ack(self, seqs: Iterable[int]) -> None:
        """Delete delivered samples (call only after a successful PUBACK, on the event loop).

        Never blocks: the rows are deleted at the start of the next transaction, at the latest
        :data:`ACK_LINGER_S` from now (see the module docstring).
        """
        ids = list(seqs)
        if not ids:
            return
        with self._acks_lock:
            first = not self._acks
            self._acks.extend(ids)
            taken = self._acks_taken
        if first:
            asyncio.get_running_loop().call_later(ACK_LINGER_S, self._flush_acks, taken)

    def _flush_acks(self, taken: int | None = None) -> None:
        """Queue an empty transaction (its prelude deletes the waiting acks) if acks are waiting
        and no transaction has taken acks since the ``taken`` count (None: in any case)."""
        with self._acks_lock:
            waiting = bool(self._acks) and taken in (None, self._acks_taken)
        if waiting:
            self._post(_nothing)

    def _prelude(self, db: sqlite3.Connection) -> None:
        """Writer thread, first thing in every transaction: delete the acknowledged samples."""
        with self._acks_lock:
            ids, self._acks = self._acks, []
            self._acks_taken += 1  # the acks that come next have a linger timer of their own
        self._acks_in_tx = ids
        self._acks_in_tx_rows = self._delete(db, "samples", ids) if ids else 0

    def _restore_acks(self) -> None:
        """Writer thread, after a rollback: the transaction's ack deletes were rolled back too.
        Put them back first in line, uncount them, and give them a deadline again."""
        with self._acks_lock:
            self._acks[:0], ids = self._acks_in_tx, self._acks_in_tx
            self._acks_in_tx = []
        self.counters.acked -= self._acks_in_tx_rows
        self._acks_in_tx_rows = 0
        if ids and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(
                    lambda: asyncio.get_running_loop().call_later(ACK_LINGER_S, self._flush_acks)
                )

    async def close(self) -> None:
        """Delete the samples acknowledged so far, stop the writer thread, close the file."""
        self._flush_acks()
        await TransactionThread.close(self)

    def reject(self, seqs: Sequence[int]) -> None:
        """Count samples whose delivery failed; they stay buffered and are sent again."""
        self.counters.rejected += len(seqs)

    async def add_event(self, body: dict[str, Any]) -> Event:
        """Buffer one event; its seq (the event stream's) is returned inside the :class:`Event`."""
        return await self._submit(lambda db: self._add_event(db, body))

    async def begin_events(self, limit: int) -> list[Event]:
        """Return up to ``limit`` buffered events, oldest first."""
        return await self._submit(lambda db: self._begin_events(db, limit))

    async def ack_events(self, seqs: Iterable[int]) -> None:
        """Delete delivered events."""
        ids = list(seqs)
        await self._submit(lambda db: self._delete(db, "events", ids))

    async def add_alarm_event(
        self, body: dict[str, Any], alarm_id: str, record: dict[str, Any] | None
    ) -> Event:
        """Buffer an alarm transition's event and, in the same transaction, the alarm's record
        (``None``: back to normal, deleted); see :mod:`agent.store.alarm_rows`."""
        return await self._submit(
            lambda db: alarm_rows.add(db, self._add_event, body, alarm_id, record)
        )

    async def alarm_records(self) -> dict[str, dict[str, Any]]:
        """The stored alarm records by id (to rebuild the alarm list after a restart)."""
        return await self._submit(alarm_rows.load)

    async def drop_alarm_records(self, ids: list[str]) -> None:
        """Forget the records of alarms whose rules are gone from the configuration."""
        await self._submit(lambda db: alarm_rows.drop(db, ids))

    async def pending(self) -> int:
        """Number of buffered (unacknowledged) samples."""
        return await self._submit(
            lambda db: db.execute("SELECT count(*) FROM samples").fetchone()[0]
        )

    async def next_session(self) -> int:
        """Increment and return the persisted MQTT session number (grows on every connect)."""
        return await self._submit(self._next_session)

    async def next_seq(self, stream: str) -> int:
        """Increment and return the persisted, gap-free sequence number of ``stream`` (e.g.
        ``"cmd"`` for command responses)."""
        return await self._submit(lambda db: self._next_counter(db, f"seq.{stream}"))

    async def command_answer(self, cmd_id: str) -> dict[str, Any] | None:
        """The answer last given to command ``cmd_id`` within 24 h, or ``None``."""
        now = time.time_ns() // 1_000_000
        return await self._submit(lambda db: commands.answer(db, cmd_id, now))

    async def remember_command(self, cmd_id: str, answer: dict[str, Any]) -> None:
        """Keep the answer given to ``cmd_id`` (for duplicate detection).

        The command memory is bounded on its own (:mod:`agent.store.commands`): ids older than
        24 h and all but the newest :attr:`command_ids` are forgotten. Its pages do not count
        against ``max_bytes``, so remembering commands never evicts a sample."""
        now = time.time_ns() // 1_000_000  # wall time: a reboot must not reset the memory
        await self._submit(lambda db: self._remember_command(db, cmd_id, answer, now))

    def _remember_command(
        self, db: sqlite3.Connection, cmd_id: str, answer: dict[str, Any], now_ms: int
    ) -> None:
        commands.remember(db, cmd_id, answer, now_ms, self.command_ids)
        self._commands_bytes = None

    def _command_bytes(self, db: sqlite3.Connection) -> int:
        """Bytes of the command memory's pages (measured again after each change)."""
        if self._commands_bytes is None:
            self._commands_bytes = commands.table_bytes(db)
        return self._commands_bytes

    def _after_rollback(self) -> None:
        """Roll back whatever is open and reload the state kept in memory (point ids, pending
        count), which may describe rows of the rolled-back transaction."""
        db = self._db
        assert db is not None
        self._restore_acks()
        self._commands_bytes = None
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._point_ids.clear()
            self._point_names.clear()
            for pid, name in db.execute("SELECT id, name FROM points"):
                self._point_ids[name] = pid
                self._point_names[pid] = name
            self.pending_rows = db.execute("SELECT count(*) FROM samples").fetchone()[0]
        except sqlite3.Error as exc:
            log.error("buffer: cannot reload state after a rollback: %s", exc)

    def _setup(self, db: sqlite3.Connection) -> None:
        """Set WAL, durability and timeouts; create the schema (runs before any job)."""
        # The first statement that reads the file: "file is not a database" shows here. What an
        # error means (damage, or a lock, a read-only folder...) is decided by the writer thread
        # (agent.store.writer.open_error), never here: only damage may move a buffer aside.
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("%s: journal mode is %s, not WAL", self.path, mode)
        db.execute(f"PRAGMA synchronous={'FULL' if self.synchronous == 'full' else 'NORMAL'}")
        db.execute("PRAGMA busy_timeout=5000")
        # 1 MiB of page cache (SQLite's default is 2 MiB): the hot pages are the newest rows,
        # and the cache filling up over the first hours looked like a leak in the soak test.
        db.execute("PRAGMA cache_size=-1024")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        # after a checkpoint, a WAL file grown past this is truncated back (pragma.html)
        db.execute(f"PRAGMA journal_size_limit={WAL_RESERVE_BYTES}")
        db.execute("BEGIN")
        self._create_schema(db)
        db.execute("COMMIT")
        self._make_reserve()

    def _create_schema(self, db: sqlite3.Connection) -> None:
        # A plain catalogue query: importing sqlite_utils for this cost 17 MB of RSS.
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "points" not in tables:
            db.execute("CREATE TABLE points (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
            db.execute(
                "CREATE TABLE samples (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " point INTEGER NOT NULL, ts INTEGER NOT NULL, value,"
                " quality INTEGER NOT NULL, reason TEXT, synced INTEGER NOT NULL, kind INTEGER)"
            )
            db.execute(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"
            )
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            base = self._seq_base
            self.created = True
            db.execute(
                "INSERT INTO meta VALUES ('schema', ?), ('session', ?), ('seq.cmd', ?),"
                " ('seq_base', ?)",
                (SCHEMA_VERSION, base, base, base),
            )
            if base:
                db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('samples', ?), ('events', ?)",
                    (base, base),
                )
        columns = {r[1] for r in db.execute("PRAGMA table_info(samples)")}
        if "kind" not in columns:  # a buffer older than agent.store.values: bools read as 0/1
            db.execute("ALTER TABLE samples ADD COLUMN kind INTEGER")
        db.execute(
            "CREATE TABLE IF NOT EXISTS commands (id TEXT PRIMARY KEY,"
            " received INTEGER NOT NULL, answer TEXT NOT NULL)"
        )
        alarm_rows.create(db)
        self._page_size = db.execute("PRAGMA page_size").fetchone()[0]
        self.pending_rows = db.execute("SELECT count(*) FROM samples").fetchone()[0]
        for pid, name in db.execute("SELECT id, name FROM points"):
            self._point_ids[name] = pid
            self._point_names[pid] = name

    def _point_id(self, db: sqlite3.Connection, name: str) -> int:
        pid = self._point_ids.get(name)
        if pid is None:
            pid = db.execute("INSERT INTO points (name) VALUES (?)", (name,)).lastrowid
            assert pid is not None
            self._point_ids[name] = pid
            self._point_names[pid] = name
        return pid

    def _append(self, db: sqlite3.Connection, polls: Sequence[Poll]) -> AppendResult:
        result = AppendResult(samples=[])
        result.evicted.extend(self._unreported)
        result.evicted.extend(self._make_room(db))
        ids, pid = self._point_ids, self._point_id

        def point_id(name: str) -> int:
            return ids.get(name) or pid(db, name)

        # SQLITE_FULL here aborts the whole transaction: _run_batch frees space and retries.
        result.samples, result.unstorable = rows.insert_polls(
            db, polls, rows.next_seq(db), point_id
        )
        n = len(result.samples)
        self.counters.appended += n
        self.pending_rows += n
        return result

    def _last_seq(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'samples'").fetchone()
        return int(row[0]) if row else 0

    def _begin(
        self, db: sqlite3.Connection, limit: int, after_seq: int, upto_seq: int
    ) -> list[Sample]:
        names = self._point_names
        return [
            Sample(seq, names[pid], ts, from_row(value, kind), Quality(q), reason, bool(synced))
            for seq, pid, ts, value, q, reason, synced, kind in db.execute(
                "SELECT seq, point, ts, value, quality, reason, synced, kind FROM samples"
                " WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after_seq, upto_seq, limit),
            )
        ]

    def _delete(self, db: sqlite3.Connection, table: str, seqs: list[int]) -> int:
        """Delete ``seqs`` from ``table``; returns the rows deleted."""
        # A batch is mostly one run of consecutive seqs: one range delete per run walks the
        # primary key once instead of one lookup per row.
        cur = db.executemany(f"DELETE FROM {table} WHERE seq BETWEEN ? AND ?", _runs(seqs))
        if table == "samples":
            self.counters.acked += cur.rowcount  # rows really deleted (an ack may repeat)
            self.pending_rows -= cur.rowcount
        return int(cur.rowcount)

    def _add_event(self, db: sqlite3.Connection, body: dict[str, Any]) -> Event:
        cur = db.execute("INSERT INTO events (body) VALUES (?)", (json.dumps(body),))
        assert cur.lastrowid is not None
        return Event(cur.lastrowid, body)

    def _begin_events(self, db: sqlite3.Connection, limit: int) -> list[Event]:
        return [
            Event(seq, json.loads(body))
            for seq, body in db.execute(
                "SELECT seq, body FROM events ORDER BY seq LIMIT ?", (limit,)
            )
        ]

    def _next_session(self, db: sqlite3.Connection) -> int:
        return self._next_counter(db, "session")

    def _next_counter(self, db: sqlite3.Connection, key: str) -> int:
        db.execute(
            "INSERT INTO meta VALUES (?, 1) ON CONFLICT(key) DO UPDATE SET value = value + 1",
            (key,),
        )
        return int(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


def _runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, de-duplicated ``seqs`` as runs of consecutive numbers: [(first, last), ...]."""
    runs: list[tuple[int, int]] = []
    ordered = sorted(set(seqs))
    if not ordered:
        return runs
    first = last = ordered[0]
    for s in ordered[1:]:
        if s != last + 1:
            runs.append((first, last))
            first = s
        last = s
    runs.append((first, last))
    return runs


def _nothing(db: sqlite3.Connection) -> None:
    """An empty job: its transaction runs the prelude (the pending acks' deletes) only."""
