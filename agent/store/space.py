"""The buffer's size: the byte bound, the file system's free space, eviction, a full disk.

``max_bytes`` bounds the pages in use. When an append would exceed it, the oldest samples are
evicted first; the evicted seq range is returned so the caller can raise a data-loss event. The
free space of the file system bounds it too: enough room is always kept for the WAL to reach its
checkpoint size (a full disk would otherwise deadlock WAL mode: the checkpoint that shrinks the WAL
must first grow the database file). When another file takes the space anyway (``SQLITE_FULL``),
the transaction is rolled back, the WAL truncated, the oldest samples evicted and the transaction
run once more; evictions are reported like those of the size bound.
"""

from __future__ import annotations

import logging
import os
import sqlite3
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

    def _after_rollback(self) -> None:
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
