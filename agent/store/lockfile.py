"""One process per buffer: an exclusive lock beside the buffer file.

Two agents on one buffer (a second ``pumproom-agent run`` with the same config, a test copy left
running) would interleave their samples under one gateway's seqs and delete each other's rows on
PUBACK. SQLite's own locking only serialises their transactions; it does not stop that. So the
store takes ``flock(LOCK_EX | LOCK_NB)`` on ``<buffer>.lock`` for as long as it is open, and a
second opener gets :class:`~agent.store.records.StoreUnavailable` at once, naming the holder's
pid (written into the lock file). The kernel drops the lock when the holder's process ends,
however it ends (kill -9 included): a stale lock file never blocks a restart.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from agent.store.records import StoreUnavailable


def acquire(buffer: Path) -> int:
    """Lock ``buffer``'s lock file; return its descriptor (keep it open while the store is).

    Raises:
        StoreUnavailable: another process holds it (``installation`` False: a restart after
            that process ends succeeds).
        OSError: the lock file cannot be created (the caller words it as for the buffer
            itself: a read-only file system, permissions, a missing folder).
    """
    path = Path(f"{buffer}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StoreUnavailable(
                f"{path}: cannot lock: {exc.strerror}", exc.strerror or str(exc), False
            ) from exc
        raise StoreUnavailable(
            f"{buffer}: in use by another process{holder}: one agent per buffer (stop the other,"
            " or give this one its own buffer.path)",
            "held by another process",
            installation=False,
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release(fd: int | None) -> None:
    """Drop the lock (closing the descriptor releases it); ``None`` is a no-op."""
    if fd is not None:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
