"""The buffer's size: the byte bound, the file system's free space, eviction, a full disk.

``max_bytes`` bounds the pages in use, less those of the command memory (bounded on its own by
count and age, :mod:`agent.store.commands`). When an append would exceed it, the oldest samples are
evicted first; the evicted seq range is returned so the caller can raise a data-loss event. The
free space of the file system bounds it too: enough room is always kept for the WAL to reach its
checkpoint size (a full disk would otherwise deadlock WAL mode: the checkpoint that shrinks the WAL
must first grow the database file). When another file takes the space anyway (``SQLITE_FULL``),
the transaction is rolled back, the WAL truncated, the oldest samples evicted and the transaction
run once more; evictions are reported like those of the size bound.

Each :class:`Evicted` says which bound did it (``cause``: ``max_bytes`` or ``disk_full``), and so
does the log: one WARNING at the first eviction, then a summary at most once a minute.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from agent.store.records import Evicted, StoreCounters

log = logging.getLogger("agent.store")

WAL_AUTOCHECKPOINT_PAGES = 128
"""WAL pages after which SQLite checkpoints (its default is 1000): 512 KiB with 4 KiB pages, so
the WAL stays small next to the database on a small card (https://sqlite.org/wal.html §5)."""
WAL_RESERVE_BYTES = 768 * 1024
"""Free space kept for the WAL (its checkpoint size plus slack), bytes."""
GROWTH_RESERVE_BYTES = 128 * 1024
"""Free space kept for one transaction to grow the database file, bytes."""
DISK_FULL_CHUNK_BYTES = 256 * 1024
"""When the file system is what bounds the buffer, eviction frees this much below the bound at
once: about 8000 samples (~30 bytes each in the samples table), some 20 s of the example site's
appends, instead of a few rows on every append."""
EVICTION_LOG_INTERVAL_S = 60.0
"""After the first eviction's WARNING, at most one summary line per this many seconds."""
RESERVE_FILE_BYTES = 512 * 1024
"""Size of ``<buffer>-reserve``, a file of zeros kept beside the buffer and deleted when the file
system is full anyway, so the checkpoint and the eviction that free space can run; made again
once there is room."""


class SpaceKeeper:
    """Keeps the buffer within its byte bound and the file system's free space (a mixin of
    :class:`agent.store.Store`; runs in the writer thread)."""

    path: Path
    limit_bytes: int
    counters: StoreCounters
    pending_rows: int
    _page_size: int
    _unreported: list[Evicted]
    _db: sqlite3.Connection | None
    _eviction_log: dict[str, _EvictionNote]
    _acks_in_tx: list[int]

    def _after_rollback(self) -> None:
        raise NotImplementedError

    def _prelude(self, db: sqlite3.Connection) -> None:
        raise NotImplementedError

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

    def _used_bytes(self, db: sqlite3.Connection) -> int:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self._page_size)

    def _command_bytes(self, db: sqlite3.Connection) -> int:
        """Bytes of pages the command memory holds (bounded on its own, see
        :meth:`agent.store.Store.remember_command`); not part of ``max_bytes``."""
        raise NotImplementedError

    def _bound_bytes(self, db: sqlite3.Connection, cause: str) -> int:
        """Pages in use that count against the bound of ``cause``: for ``max_bytes`` all but the
        command memory's (remembered command ids never cost telemetry), for ``disk_full`` all."""
        used = self._used_bytes(db)
        return used - self._command_bytes(db) if cause == "max_bytes" else used

    def _disk_bound(self, db: sqlite3.Connection) -> int:
        """The most bytes of pages in use that still leave the file system room for the WAL to
        reach its checkpoint size plus one transaction (:data:`WAL_RESERVE_BYTES`,
        :data:`GROWTH_RESERVE_BYTES`). Without that room a full disk deadlocks WAL mode: the
        checkpoint that would shrink the WAL must grow the database file first.

        The pages in use may fill the file's free pages (SQLite reuses them without growing the
        file) plus what the file system can give beyond that room: file size + free − room.
        Evicting rows frees pages inside the file, not on the file system, so a bound computed
        from the pages in use alone would ask for the same eviction again on every append."""
        free = _free_bytes(self.path.parent)
        if free is None:
            return self.limit_bytes
        need = self._space_needed()
        if free >= need + self.limit_bytes:
            return self.limit_bytes  # cannot bind: spare the page-count queries
        file_bytes = db.execute("PRAGMA page_count").fetchone()[0] * self._page_size
        return int(file_bytes + free - need)

    def _space_needed(self) -> int:
        """Free bytes the file system must keep for the WAL and one transaction."""
        try:
            wal = os.path.getsize(f"{self.path}-wal")
        except OSError:
            wal = 0
        return max(0, WAL_RESERVE_BYTES - wal) + GROWTH_RESERVE_BYTES

    def _make_room(
        self, db: sqlite3.Connection, limit: int | None = None, cause: str = "max_bytes"
    ) -> list[Evicted]:
        """Evict the oldest samples until the pages in use fit ``limit`` (default: the tighter
        of ``max_bytes`` and :meth:`_disk_bound`). For the byte bound each step frees 5 % of the
        rows; when the file system binds, down to :data:`DISK_FULL_CHUNK_BYTES` below the bound,
        so the appends of the next seconds fit without another eviction."""
        if limit is None:
            disk = self._disk_bound(db)
            if disk < self.limit_bytes:
                limit, cause = disk, "disk_full"
            else:
                limit = self.limit_bytes
            if not self._reserve.exists():
                self._make_reserve()
        used = self._bound_bytes(db, cause)
        if used <= limit:
            return []
        target = limit - DISK_FULL_CHUNK_BYTES if cause == "disk_full" else limit
        evicted: list[Evicted] = []
        while used > target:
            rows = db.execute("SELECT count(*) FROM samples").fetchone()[0]
            if rows == 0:
                break
            evicted.extend(self._evict(db, max(rows // 20, 100), cause))
            used = self._bound_bytes(db, cause)
        if evicted:
            self._note_eviction(evicted, used, limit)
        return evicted

    def _evict(self, db: sqlite3.Connection, n: int, cause: str = "max_bytes") -> list[Evicted]:
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
        return [Evicted(row[0], row[1], row[2], cause)]

    def _note_eviction(self, evicted: list[Evicted], used: int, limit: int) -> None:
        """Log an eviction: one WARNING at once, then at most one summary per
        :data:`EVICTION_LOG_INTERVAL_S` per cause, with the count evicted since the last line
        (an append per poll round would otherwise log several lines a second)."""
        cause = evicted[0].cause
        note = self._eviction_log.setdefault(cause, _EvictionNote())
        note.add(evicted)
        now = time.monotonic()
        if note.logged_at is not None and now - note.logged_at < EVICTION_LOG_INTERVAL_S:
            return
        since = "" if note.logged_at is None else f" in the last {now - note.logged_at:.0f} s"
        what = f"evicted {note.count} oldest samples{since} (seq {note.first_seq}..{note.last_seq})"
        if cause == "disk_full":
            free = _free_bytes(self.path.parent)
            log.warning(
                "buffer %s: FILE SYSTEM FULL (%s bytes free on %s, %d kept free for the WAL):"
                " %s; %d bytes of samples kept, below max_bytes %d",
                self.path,
                "?" if free is None else free,
                self.path.parent,
                self._space_needed(),
                what,
                used,
                self.limit_bytes,
            )
        else:
            log.warning("buffer %s: max_bytes %d reached: %s", self.path, self.limit_bytes, what)
        note.logged_at = now
        note.count = 0
        note.first_seq = note.last_seq = None

    def _recover_full(self, exc: Exception) -> None:
        """The file system is full (another file took the space). Truncate the WAL (its frames
        go into the database file) and, in a transaction of its own, delete the delivered samples
        still waiting for their delete, then evict the oldest samples down to 80 % of the pages
        in use now. The evicted ranges are reported by the next append
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
                self._prelude(db)  # delivered samples make room first: they are no loss
                evicted = self._make_room(db, min(target, self._disk_bound(db)), "disk_full")
                if not evicted and not self._acks_in_tx:  # nothing freed: free a slice anyway
                    rows = db.execute("SELECT count(*) FROM samples").fetchone()[0]
                    evicted = self._evict(db, max(rows // 10, 100), "disk_full")
                    if evicted:
                        self._note_eviction(evicted, self._used_bytes(db), target)
                db.execute("COMMIT")
                self._unreported.extend(evicted)
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            except sqlite3.Error as eexc:
                self._after_rollback()
                target = int(target * 0.8)
                log.error("buffer: eviction on a full disk failed (%s); trying more", eexc)


@dataclass
class _EvictionNote:
    """Evictions of one cause since the last log line about them."""

    logged_at: float | None = None
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None

    def add(self, evicted: list[Evicted]) -> None:
        self.count += sum(e.count for e in evicted)
        if self.first_seq is None:
            self.first_seq = evicted[0].first_seq
        self.last_seq = evicted[-1].last_seq


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
