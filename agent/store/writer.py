"""One writer thread that owns the buffer's SQLite connection and batches work into transactions.

Callers on the event loop submit operations (functions of the connection); the thread takes every
queued operation at once and runs them in ONE transaction, each in a savepoint of its own (one
operation's error rolls back only that operation), so a burst of appends and acks costs one commit
(one fsync). The event loop never waits on the disk. The thread outlives any SQLite error.

Subclasses provide :meth:`_setup` (once, before any job), :meth:`_prelude` (first in every
transaction), :meth:`_after_rollback` (reload what they keep in memory) and :meth:`_recover_full`
(free space after ``SQLITE_FULL``; the failed transaction is then run once more). :meth:`_post`
queues a job that nobody waits for.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agent.store import lockfile
from agent.store.records import (
    AppendResult,
    StoreCorrupt,
    StoreCounters,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger("agent.store")

T = TypeVar("T")
Job = tuple[Callable[[sqlite3.Connection], Any], Any]


class TransactionThread:
    """The writer thread and its job queue (see the module docstring)."""

    path: Path
    counters: StoreCounters
    _unreported: list[Any]

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._lock: int | None = None
        """The descriptor holding the buffer's lock (:mod:`agent.store.lockfile`)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        """The event loop that started the thread (for timers the thread asks for)."""

    async def _start(self) -> None:
        """Start the thread; returns once :meth:`_setup` has run (or raises what it raised)."""
        loop = self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=((loop, ready),), name="store-writer", daemon=True
        )
        self._thread.start()
        await ready

    async def close(self) -> None:
        """Stop the writer thread after it has finished queued work; close the database."""
        if self._thread is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join, 10.0)
        self._thread = None

    def _setup(self, db: sqlite3.Connection) -> None:
        raise NotImplementedError

    def _after_rollback(self) -> None:
        raise NotImplementedError

    def _recover_full(self, exc: Exception) -> None:
        raise NotImplementedError

    def _prelude(self, db: sqlite3.Connection) -> None:
        """Runs first in every transaction, before its jobs (the store deletes acked rows)."""
        raise NotImplementedError

    def _post(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        """Queue ``fn`` without waiting for it (its errors are logged, not raised)."""
        self._jobs.put((fn, None))

    async def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, (loop, fut)))
        return await fut

    def _run(self, ready: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = lockfile.acquire(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._setup(self._db)
        except (OSError, sqlite3.Error, StoreError) as exc:
            if self._db is not None:
                self._db.close()
            lockfile.release(self._lock)
            self._lock = None
            err = exc if isinstance(exc, StoreError) else open_error(self.path, exc)
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
        lockfile.release(self._lock)
        self._lock = None

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
        self._prelude(db)
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

    def _fail_all(self, exc: Exception) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            _resolve(job[1], exc, error=True)


def _resolve(target: Any, value: Any, *, error: bool) -> None:
    if target is None:  # a posted job: nobody waits for it
        if error:
            log.error("buffer: %s", value)
        return
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


# SQLite primary result codes (https://sqlite.org/rescode.html); extended codes keep the primary
# code in their low byte.
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_AUTH = 23
SQLITE_NOTADB = 26


def _is_full(exc: BaseException) -> bool:
    """SQLITE_FULL: "database or disk is full" (the disk, or ``max_page_count``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == SQLITE_FULL) or "full" in str(exc)


_INSTALLATION_ERRNOS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a parent is not a directory",
    errno.EISDIR: "the path is a directory",
    errno.EEXIST: "a file is in the way of its folder",  # mkdir(2) on a non-directory
}
"""Causes that are how the machine is set up (folder, mount, permissions): a restart will not
fix them."""


def open_error(path: Path, exc: BaseException) -> StoreError:
    """What an error raised while opening the buffer at ``path`` means.

    :class:`StoreCorrupt` only for damage SQLite itself reports (``SQLITE_CORRUPT``,
    ``SQLITE_NOTADB``): only that may move a buffer aside. Everything else is
    :class:`StoreUnavailable`, with ``installation`` True for a read-only file system, missing
    permissions or a missing/non-folder parent (found from the OS error, or, for SQLite's
    unspecific ``SQLITE_CANTOPEN``/``SQLITE_READONLY``, by looking at the path), False for a lock
    held by another process, a full disk, an I/O error.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreCorrupt(f"{path}: not a usable SQLite database: {exc}")
    cause, installation = None, False
    if isinstance(exc, OSError):
        cause = _INSTALLATION_ERRNOS.get(exc.errno or 0)
        installation = cause is not None
        cause = cause or (exc.strerror or str(exc)).lower()
    elif primary in (SQLITE_BUSY, SQLITE_LOCKED):
        cause = "locked by another process"
    elif primary == SQLITE_FULL:
        cause = "file system full"
    elif primary == SQLITE_IOERR:
        cause = "I/O error"
    elif primary in (SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH):
        cause = _why_not_writable(path)
        installation = cause is not None
        cause = cause or "cannot open"
    if cause is None:
        cause = "error"
    return StoreUnavailable(f"{path}: {cause} ({exc})", cause, installation)


def _why_not_writable(path: Path) -> str | None:
    """Why the buffer file (and its ``-wal``/``-shm`` files beside it) cannot be created or
    written at ``path``, from the file system; ``None`` if nothing is visibly wrong.
    ``os.access`` reports a read-only mount even to root (access(2): EROFS)."""
    parent = path.parent
    if not parent.exists():
        return _INSTALLATION_ERRNOS[errno.ENOENT] + f" ({parent})"
    if not parent.is_dir():
        return _INSTALLATION_ERRNOS[errno.ENOTDIR] + f" ({parent})"
    if path.is_dir():
        return _INSTALLATION_ERRNOS[errno.EISDIR]
    try:
        if os.statvfs(parent).f_flag & os.ST_RDONLY:
            return _INSTALLATION_ERRNOS[errno.EROFS]
    except OSError:
        pass
    if not os.access(parent, os.W_OK | os.X_OK):
        return _INSTALLATION_ERRNOS[errno.EACCES] + f" (folder {parent})"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return _INSTALLATION_ERRNOS[errno.EACCES]
    return None
