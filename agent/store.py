"""The store-and-forward buffer: a transactional SQLite outbox for samples and events.

Every sample is committed here (WAL journal) before it is offered to the uplink, and a row leaves
only when the uplink calls :meth:`Store.ack` after the broker's PUBACK. Order and eviction come
from the sequence number (``seq``, SQLite ``AUTOINCREMENT``: strictly increasing, never reused even
after the newest rows are deleted, per https://sqlite.org/autoinc.html), never from wall time.

Threading: one dedicated writer thread owns the only connection. Callers on the event loop submit
operations; the thread takes every queued operation at once and runs them in ONE transaction, so a
burst of appends and acks costs one commit (one fsync). The event loop never waits on the disk.

Durability (``synchronous``):

* ``full`` (default): each transaction is fsynced before its futures resolve. A power cut loses
  nothing that ``append`` has returned.
* ``normal``: in WAL mode, commits are durable against an agent crash, but a power cut can lose the
  transactions since the last checkpoint (https://sqlite.org/pragma.html#pragma_synchronous);
  kinder to SD cards.

Size bound: ``max_bytes`` bounds the pages in use. When an append would exceed it, the oldest
samples are evicted first; the evicted seq range is returned so the caller can raise a data-loss
event. The free space of the file system bounds it too: enough room is always kept for the WAL
to reach its checkpoint size (a full disk would otherwise deadlock WAL mode: the checkpoint that
shrinks the WAL must first grow the database file). When another file takes the space anyway
(``SQLITE_FULL``), the transaction is rolled back, the WAL truncated, the oldest samples evicted
and the transaction run once more; evictions are reported like those of the size bound. The
writer thread survives any SQLite error (the failing operations raise :class:`StoreError`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agent.model import Quality, Reading, Sample

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 1
WAL_AUTOCHECKPOINT_PAGES = 128
"""WAL pages after which SQLite checkpoints (its default is 1000): 512 KiB with 4 KiB pages, so
the WAL stays small next to the database on a small card (https://sqlite.org/wal.html §5)."""
WAL_RESERVE_BYTES = 768 * 1024
"""Free space kept for the WAL (its checkpoint size plus slack), bytes."""
GROWTH_RESERVE_BYTES = 128 * 1024
"""Free space kept for one transaction to grow the database file, bytes."""
RESERVE_FILE_BYTES = 512 * 1024
"""Size of ``<buffer>-reserve``, a file of zeros kept beside the buffer and deleted when the file
system is full anyway, so the checkpoint and the eviction that free space can run; made again
once there is room."""
COMMAND_MEMORY_MS = 24 * 3600 * 1000
"""How long command ids are remembered to answer duplicates (uplink-protocol.md §6.7: ≥ 24 h)."""


@dataclass(frozen=True, slots=True)
class Evicted:
    """Samples evicted by the size bound: seqs ``first_seq`` .. ``last_seq``, ``count`` rows."""

    first_seq: int
    last_seq: int
    count: int


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll's readings, stamped: wall-clock ms (UTC) and whether the clock was synced."""

    readings: Sequence[Reading]
    ts_ms: int
    synced: bool


@dataclass(slots=True)
class AppendResult:
    """What :meth:`Store.append` did: the stamped samples and what the size bound evicted."""

    samples: list[Sample]
    evicted: list[Evicted] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Event:
    """One buffered event (alarm, audit or data-loss record). ``body`` is its JSON object."""

    seq: int
    body: dict[str, Any]


@dataclass(slots=True)
class StoreCounters:
    """Counters since start: rows appended, acked, evicted, rejected; transactions committed."""

    appended: int = 0
    acked: int = 0
    evicted: int = 0
    rejected: int = 0
    transactions: int = 0


class StoreError(Exception):
    """The buffer file cannot be used at all (not a database, permission denied)."""


class Store:
    """Async facade over the SQLite outbox. Create with :meth:`open`; finish with :meth:`close`.

    Args:
        path: database file; its folder is created.
        max_bytes: bound on the pages in use, bytes (at least 1 MiB).
        synchronous: ``"full"`` or ``"normal"``, see the module docstring.
    """

    def __init__(self, path: str | Path, max_bytes: int, synchronous: str = "full") -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.synchronous = synchronous
        self.counters = StoreCounters()
        self._jobs: queue.SimpleQueue[tuple[Callable[[sqlite3.Connection], Any], Any] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._point_ids: dict[str, int] = {}
        self._point_names: dict[int, str] = {}
        self._page_size = 4096
        self.pending_rows = 0
        self.limit_bytes = max_bytes
        """The size bound in force (``max_bytes``); the free space on the file system may
        bound the buffer further, see :meth:`_disk_bound`."""
        self._unreported: list[Evicted] = []
        """Samples in the buffer now (kept by the writer thread; read it from anywhere)."""

    @classmethod
    async def open(cls, path: str | Path, max_bytes: int, synchronous: str = "full") -> Store:
        """Open (or create) the buffer and start its writer thread.

        Raises:
            StoreError: the file exists but is not a usable database.
        """
        store = cls(path, max_bytes, synchronous)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        store._thread = threading.Thread(
            target=store._run, args=((loop, ready),), name="store-writer", daemon=True
        )
        store._thread.start()
        try:
            await ready
        except BaseException:
            await store.close()
            raise
        return store

    # ---- public async API -------------------------------------------------------------------

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
        """The highest seq ever assigned (0 for a new buffer)."""
        return await self._submit(self._last_seq)

    async def ack(self, seqs: Iterable[int]) -> None:
        """Delete delivered samples (call only after a successful PUBACK)."""
        ids = list(seqs)
        await self._submit(lambda db: self._delete(db, "samples", ids))

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
        return await self._submit(lambda db: self._command_answer(db, cmd_id))

    async def remember_command(self, cmd_id: str, answer: dict[str, Any]) -> None:
        """Keep the answer given to ``cmd_id`` (for duplicate detection, 24 h)."""
        await self._submit(lambda db: self._remember_command(db, cmd_id, answer))

    async def close(self) -> None:
        """Stop the writer thread after it has finished queued work; close the database."""
        if self._thread is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join, 10.0)
        self._thread = None

    # ---- writer thread ------------------------------------------------------------------------

    async def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, (loop, fut)))
        return await fut

    def _run(self, ready: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._setup(self._db)
        except (OSError, sqlite3.Error, StoreError) as exc:
            if self._db is not None:
                self._db.close()
            err = exc if isinstance(exc, StoreError) else StoreError(f"{self.path}: {exc}")
            _resolve(ready, err, error=True)
            self._fail_all(err)
            return
        _resolve(ready, None, error=False)
        while True:
            job = self._jobs.get()
            if job is None:
                break
            batch = [job]
            while True:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)
                    break
                batch.append(nxt)
            try:
                self._run_batch(batch)
            except Exception as exc:  # the writer thread must outlive any disk trouble
                log.exception("buffer: transaction failed")
                self._after_rollback()
                for _fn, target in batch:
                    _resolve(target, StoreError(f"{self.path}: {exc}"), error=True)
        self._db.close()

    def _run_batch(self, batch: list[tuple[Callable[[sqlite3.Connection], Any], Any]]) -> None:
        try:
            results = self._transaction(batch)
        except sqlite3.OperationalError as exc:
            self._after_rollback()
            if not _is_full(exc):
                raise
            # SQLITE_FULL (the disk, or the WAL, cannot grow): free space, then try once more.
            self._recover_full(exc)
            try:
                results = self._transaction(batch)
            except sqlite3.Error:
                self._after_rollback()
                raise
        if any(isinstance(v, AppendResult) for _, v, err in results if not err):
            self._unreported.clear()  # handed over inside a committed append
        for target, value, error in results:
            _resolve(target, value, error=error)

    def _transaction(
        self, batch: list[tuple[Callable[[sqlite3.Connection], Any], Any]]
    ) -> list[tuple[Any, Any, bool]]:
        """Run every job of ``batch`` in one transaction, each in a savepoint (a job's own error
        rolls back only that job). A full disk aborts the whole transaction (SQLite may already
        have rolled it back: https://sqlite.org/lang_transaction.html, "Response To Errors
        Within A Transaction") and is raised."""
        db = self._db
        assert db is not None
        results: list[tuple[Any, Any, bool]] = []
        db.execute("BEGIN IMMEDIATE")
        for fn, target in batch:
            db.execute("SAVEPOINT job")
            try:
                results.append((target, fn(db), False))
                db.execute("RELEASE job")
            except sqlite3.OperationalError as exc:
                if _is_full(exc) or not db.in_transaction:
                    raise
                db.execute("ROLLBACK TO job")
                db.execute("RELEASE job")
                results.append((target, exc, True))
            except Exception as exc:
                db.execute("ROLLBACK TO job")
                db.execute("RELEASE job")
                results.append((target, exc, True))
        db.execute("COMMIT")
        self.counters.transactions += 1
        return results

    def _after_rollback(self) -> None:
        """Roll back whatever is open and reload the state kept in memory (point ids, pending
        count), which may describe rows of the rolled-back transaction."""
        db = self._db
        assert db is not None
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

    def _recover_full(self, exc: Exception) -> None:
        """The file system is full (another file took the space). Truncate the WAL (its frames
        go into the database file) and evict the oldest samples down to 80 % of the pages in use
        now, in a transaction of its own. The evicted ranges are reported by the next append
        (:attr:`AppendResult.evicted`)."""
        db = self._db
        assert db is not None
        for attempt in range(2):
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                break
            except sqlite3.Error as cexc:
                if attempt == 0 and self._reserve.exists():
                    log.warning("buffer: checkpoint failed (%s): using the reserve", cexc)
                    self._reserve.unlink(missing_ok=True)
                else:
                    log.warning("buffer: checkpoint on a full disk failed: %s", cexc)
        target = int(self._used_bytes(db) * 0.8)
        log.error(
            "buffer %s: file system full (%s); evicting the oldest samples down to %d bytes",
            self.path,
            exc,
            target,
        )
        for _ in range(5):
            try:
                db.execute("BEGIN IMMEDIATE")
                evicted = self._make_room(db, min(target, self._disk_bound(db)))
                if not evicted:  # nothing to evict by size: free a slice anyway
                    rows = db.execute("SELECT count(*) FROM samples").fetchone()[0]
                    evicted = self._evict(db, max(rows // 10, 100))
                db.execute("COMMIT")
                self._unreported.extend(evicted)
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            except sqlite3.Error as eexc:
                self._after_rollback()
                target = int(target * 0.8)
                log.error("buffer: eviction on a full disk failed (%s); trying more", eexc)

    def _fail_all(self, exc: Exception) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            _resolve(job[1], exc, error=True)

    # ---- operations (run in the writer thread, inside a transaction) --------------------------

    def _setup(self, db: sqlite3.Connection) -> None:
        """Set WAL, durability and timeouts; create the schema (runs before any job)."""
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable SQLite database: {exc}") from exc
        if mode.lower() != "wal":
            log.warning("%s: journal mode is %s, not WAL", self.path, mode)
        db.execute(f"PRAGMA synchronous={'FULL' if self.synchronous == 'full' else 'NORMAL'}")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        # after a checkpoint, a WAL file grown past this is truncated back (pragma.html)
        db.execute(f"PRAGMA journal_size_limit={WAL_RESERVE_BYTES}")
        db.execute("BEGIN")
        self._create_schema(db)
        db.execute("COMMIT")
        self._make_reserve()

    @property
    def _reserve(self) -> Path:
        return self.path.with_name(self.path.name + "-reserve")

    def _make_reserve(self) -> None:
        """Create the reserve file if it is missing and there is room for it (never fails)."""
        try:
            if self._reserve.exists():
                return
            st = os.statvfs(self.path.parent)
            if st.f_bavail * st.f_frsize < RESERVE_FILE_BYTES + WAL_RESERVE_BYTES:
                return
            with open(self._reserve, "wb") as f:
                f.write(bytes(RESERVE_FILE_BYTES))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            log.warning("buffer: cannot make the reserve file %s: %s", self._reserve, exc)
            self._reserve.unlink(missing_ok=True)

    def _create_schema(self, db: sqlite3.Connection) -> None:
        # A plain catalogue query: importing sqlite_utils for this cost 17 MB of RSS.
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "points" not in tables:
            db.execute("CREATE TABLE points (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
            db.execute(
                "CREATE TABLE samples (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " point INTEGER NOT NULL, ts INTEGER NOT NULL, value,"
                " quality INTEGER NOT NULL, reason TEXT, synced INTEGER NOT NULL)"
            )
            db.execute(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"
            )
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            db.execute("INSERT INTO meta VALUES ('schema', ?), ('session', 0)", (SCHEMA_VERSION,))
        db.execute(
            "CREATE TABLE IF NOT EXISTS commands (id TEXT PRIMARY KEY,"
            " received INTEGER NOT NULL, answer TEXT NOT NULL)"
        )
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
        rows = [
            (
                ids.get(r.point) or pid(db, r.point),
                p.ts_ms,
                int(r.value) if r.value.__class__ is bool else r.value,
                r.quality,
                r.reason,
                p.synced,
            )
            for p in polls
            for r in p.readings
        ]
        # SQLITE_FULL here aborts the whole transaction: _run_batch frees space and retries.
        db.executemany(
            "INSERT INTO samples (point, ts, value, quality, reason, synced)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        last = db.execute("SELECT seq FROM sqlite_sequence WHERE name='samples'").fetchone()[0]
        seq = last - len(rows) + 1
        out = result.samples
        for p in polls:
            for r in p.readings:
                out.append(Sample(seq, r.point, p.ts_ms, r.value, r.quality, r.reason, p.synced))
                seq += 1
        self.counters.appended += len(rows)
        self.pending_rows += len(rows)
        return result

    def _used_bytes(self, db: sqlite3.Connection) -> int:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self._page_size)

    def _disk_bound(self, db: sqlite3.Connection) -> int:
        """The most bytes of pages in use that still leave the file system room for the WAL to
        reach its checkpoint size plus one transaction (:data:`WAL_RESERVE_BYTES`,
        :data:`GROWTH_RESERVE_BYTES`). Without that room a full disk deadlocks WAL mode: the
        checkpoint that would shrink the WAL must grow the database file first."""
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return self.limit_bytes
        free = st.f_bavail * st.f_frsize
        try:
            wal = os.path.getsize(f"{self.path}-wal")
        except OSError:
            wal = 0
        need = max(0, WAL_RESERVE_BYTES - wal) + GROWTH_RESERVE_BYTES
        if free >= need:
            return self.limit_bytes
        return self._used_bytes(db) - (need - free)

    def _make_room(self, db: sqlite3.Connection, limit: int | None = None) -> list[Evicted]:
        evicted: list[Evicted] = []
        if limit is None:
            limit = min(self.limit_bytes, self._disk_bound(db))
            if not self._reserve.exists():
                self._make_reserve()
        while self._used_bytes(db) > limit:
            rows = db.execute("SELECT count(*) FROM samples").fetchone()[0]
            if rows == 0:
                break
            evicted.extend(self._evict(db, max(rows // 20, 100)))
        return evicted

    def _evict(self, db: sqlite3.Connection, n: int) -> list[Evicted]:
        row = db.execute(
            "SELECT min(seq), max(seq), count(*) FROM"
            " (SELECT seq FROM samples ORDER BY seq LIMIT ?)",
            (n,),
        ).fetchone()
        if not row[2]:
            return []
        db.execute("DELETE FROM samples WHERE seq <= ?", (row[1],))
        self.counters.evicted += row[2]
        self.pending_rows -= row[2]
        log.warning("buffer full: evicted %d oldest samples (seq %d..%d)", row[2], row[0], row[1])
        return [Evicted(row[0], row[1], row[2])]

    def _last_seq(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'samples'").fetchone()
        return int(row[0]) if row else 0

    def _begin(
        self, db: sqlite3.Connection, limit: int, after_seq: int, upto_seq: int
    ) -> list[Sample]:
        names = self._point_names
        return [
            Sample(seq, names[pid], ts, value, Quality(q), reason, bool(synced))
            for seq, pid, ts, value, q, reason, synced in db.execute(
                "SELECT seq, point, ts, value, quality, reason, synced FROM samples"
                " WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after_seq, upto_seq, limit),
            )
        ]

    def _delete(self, db: sqlite3.Connection, table: str, seqs: list[int]) -> None:
        # A batch is mostly one run of consecutive seqs: one range delete per run walks the
        # primary key once instead of one lookup per row.
        cur = db.executemany(f"DELETE FROM {table} WHERE seq BETWEEN ? AND ?", _runs(seqs))
        if table == "samples":
            self.counters.acked += len(seqs)
            self.pending_rows -= cur.rowcount

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

    def _command_answer(self, db: sqlite3.Connection, cmd_id: str) -> dict[str, Any] | None:
        horizon = time.time_ns() // 1_000_000 - COMMAND_MEMORY_MS
        row = db.execute(
            "SELECT answer FROM commands WHERE id = ? AND received > ?", (cmd_id, horizon)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _remember_command(
        self, db: sqlite3.Connection, cmd_id: str, answer: dict[str, Any]
    ) -> None:
        now = time.time_ns() // 1_000_000  # wall time: a reboot must not reset the memory
        db.execute("DELETE FROM commands WHERE received < ?", (now - COMMAND_MEMORY_MS,))
        db.execute(
            "INSERT INTO commands VALUES (?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET answer = excluded.answer",
            (cmd_id, now, json.dumps(answer)),
        )


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


def _resolve(target: Any, value: Any, *, error: bool) -> None:
    loop, fut = target

    def settle() -> None:
        if fut.done():
            return
        if error:
            fut.set_exception(value)
        else:
            fut.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _is_full(exc: BaseException) -> bool:
    """SQLITE_FULL: "database or disk is full" (the disk, or ``max_page_count``)."""
    return getattr(exc, "sqlite_errorcode", None) == 13 or "full" in str(exc)
