"""The store-and-forward buffer: a transactional SQLite outbox for samples and events.

* :mod:`agent.store.outbox` — :class:`Store`: the schema and the operations (append, begin, ack,
  events, counters, command memory), durability and ordering rules;
* :mod:`agent.store.space` — the byte bound, the file system's free space, eviction, a full disk;
* :mod:`agent.store.writer` — the one writer thread and its batched transactions;
* :mod:`agent.store.rows` — how an append writes its rows: a multi-row INSERT per chunk, explicit
  seqs;
* :mod:`agent.store.values` — how a value is kept: exact, with its type (bool, int64/uint64, float);
* :mod:`agent.store.commands` — the command memory, bounded on its own (count, age);
* :mod:`agent.store.records` — what goes in and comes out (:class:`Poll`, :class:`AppendResult`,
  :class:`Evicted`, :class:`Event`, :class:`StoreCounters`, :class:`StoreError` and the two
  ways opening fails: :class:`StoreCorrupt`, :class:`StoreUnavailable`).
"""

from agent.store.outbox import Store
from agent.store.records import (
    AppendResult,
    Event,
    Evicted,
    Poll,
    StoreCorrupt,
    StoreCounters,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "AppendResult",
    "Event",
    "Evicted",
    "Poll",
    "Store",
    "StoreCorrupt",
    "StoreCounters",
    "StoreError",
    "StoreUnavailable",
]
