"""Opening the buffer at start: a new file's seqs start above any an older buffer can have
used, a damaged file is moved aside (kept) and a new one started with a ``data_loss`` event.
"""

from __future__ import annotations

import logging
import os
import time

from agent.config import SiteConfig
from agent.core.model import clock
from agent.store import Store, StoreCorrupt, StoreUnavailable

log = logging.getLogger("agent")


def new_buffer_seq_base() -> int:
    """Where a new buffer's counters (sample, event, session and command-response seqs) start:
    the wall clock in ms × 1000.

    A new buffer (first start, the file deleted, the SD card swapped, a corrupt file replaced)
    cannot know the seqs its predecessor used, and the platform deduplicates on (gateway, stream,
    seq): starting at 1 again would make it drop new data as already seen. Wall-clock ms × 1000
    is above any seq an older buffer can have reached (that would take 1000 samples per ms since
    it started) and stays below 2**53, exact in JSON numbers, until the year 2255. It assumes the
    clock is not far behind the one the old buffer saw (an unsynced RTC back in 1970 is not).
    """
    return clock.now_ms() * 1000


async def open_store(config: SiteConfig) -> Store:
    """Open the buffer. An existing one continues from its last seq; a new file starts at
    :func:`new_buffer_seq_base`. A *damaged* file (SQLite: not a database, or malformed pages:
    :class:`~agent.store.StoreCorrupt`) is moved aside (kept), a new one started, and a
    ``data_loss`` event (reason ``buffer_corrupt``) is the new buffer's first event. Any other
    failure to open leaves the file, and its unsent samples, as they are.

    Raises:
        StoreUnavailable: the buffer cannot be opened (read-only file system, permission, a lock
            held by another process, a full disk...) or a damaged one cannot be moved aside;
            ``installation`` tells whether a restart can help (see :func:`agent.app.run`).
    """
    buf = config.buffer
    try:
        store = await Store.open(
            buf.path, buf.max_bytes, buf.synchronous, seq_base=new_buffer_seq_base()
        )
    except StoreCorrupt as exc:
        aside = f"{buf.path}.corrupt-{int(time.time())}"
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(buf.path + suffix, aside + suffix)
            except FileNotFoundError:
                pass
            except OSError as mexc:
                raise StoreUnavailable(
                    f"{buf.path}: damaged ({exc}), and it cannot be moved aside to"
                    f" {aside + suffix}: {mexc.strerror or mexc}",
                    mexc.strerror or str(mexc),
                    installation=True,
                ) from mexc
        log.error(
            "buffer %s is unusable (%s); moved aside to %s, starting a new one",
            buf.path,
            exc,
            aside,
        )
        # The lost file's counters are unknown: start the new ones above any it can have used.
        store = await Store.open(
            buf.path, buf.max_bytes, buf.synchronous, seq_base=new_buffer_seq_base()
        )
        log.info("buffer %s: new, seqs start after %d", buf.path, await store.last_seq())
        await store.add_event(
            {"type": "data_loss", "t": clock.now_ms(), "stream": "telemetry",
             "reason": "buffer_corrupt", "file": aside}
        )  # fmt: skip
        return store
    if store.created:
        log.info("buffer %s: new, seqs start after %d", buf.path, await store.last_seq())
    else:
        log.info(
            "buffer %s: reopened, %d samples from before wait for the platform's PUBACK; seqs"
            " continue after %d",
            buf.path,
            await store.pending(),
            await store.last_seq(),
        )
    return store
