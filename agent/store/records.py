"""The buffer's records and errors: what goes in, what comes out, what it counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.model import Reading, Sample


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
