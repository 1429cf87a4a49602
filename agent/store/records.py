"""The buffer's records and errors: what goes in, what comes out, what it counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.core.model import Reading, Sample


@dataclass(frozen=True, slots=True)
class Evicted:
    """Samples evicted undelivered: seqs ``first_seq`` .. ``last_seq``, ``count`` rows.

    ``cause``: ``"max_bytes"`` (the configured byte bound, ``buffer.max_bytes``) or
    ``"disk_full"`` (the file system has no more room for the buffer)."""

    first_seq: int
    last_seq: int
    count: int
    cause: str = "max_bytes"


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll's readings, stamped: wall-clock ms (UTC) and whether the clock was synced."""

    readings: Sequence[Reading]
    ts_ms: int
    synced: bool


@dataclass(slots=True)
class AppendResult:
    """What :meth:`Store.append` did: the stamped samples, what the size bound evicted, and the
    good readings whose value could not be kept (``(point, value's repr)``; each was buffered as
    a bad-value sample with reason ``unstorable``, see :mod:`agent.store.values`)."""

    samples: list[Sample]
    evicted: list[Evicted] = field(default_factory=list)
    unstorable: list[tuple[str, str]] = field(default_factory=list)


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
    """The buffer cannot be used: an operation failed, or the file cannot be opened."""


class StoreCorrupt(StoreError):
    """The buffer file is damaged: SQLite says it is not a database (``SQLITE_NOTADB``) or its
    pages are malformed (``SQLITE_CORRUPT``), https://sqlite.org/rescode.html. What it holds
    cannot be read; the agent moves it aside and starts a new buffer."""


class StoreUnavailable(StoreError):
    """The buffer file cannot be opened for a reason outside the file (read-only file system,
    permission denied, a missing or non-folder parent, a lock held by another process, a full
    disk, an I/O error). The file, and every sample it holds, is left as it is.

    ``cause``: the cause in a few words (e.g. ``"read-only file system"``).
    ``installation``: True when the cause is how the machine is set up (folder, permissions,
    mount): restarting will not fix it. False for a cause that may pass (a lock, a full disk,
    an I/O error)."""

    def __init__(self, message: str, cause: str, installation: bool) -> None:
        super().__init__(message)
        self.cause = cause
        self.installation = installation
