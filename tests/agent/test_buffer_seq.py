"""Where a buffer's seqs start, on a real SQLite file opened the way the agent opens it
(:func:`agent.app.open_store`): every new buffer above wall-clock ms × 1000, an existing one
continuing from its last seq, so the platform's dedup on (gateway, stream, seq) never drops new
data as "already seen"."""

from __future__ import annotations

import os
from pathlib import Path

from agent.app import open_store
from agent.config import SiteConfig, load_config
from agent.core.model import Reading, clock
from agent.store import Poll, Store

YAML = """\
site:
  id: demo
devices:
  - name: cabinet
    transport: modbus-tcp
    host: 127.0.0.1
    port: 15020
    unit_id: 1
    points:
      - {{name: p_out, register: holding, address: 0, type: float32}}
uplink:
  broker: mqtt://127.0.0.1:1883
buffer:
  path: {path}
"""


def _config(tmp_path: Path, buffer: Path) -> SiteConfig:
    path = tmp_path / "site.yaml"
    path.write_text(YAML.format(path=buffer), encoding="utf-8")
    return load_config(path)


def _lose(buffer: Path) -> None:
    """Delete the buffer file with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{buffer}{suffix}").unlink(missing_ok=True)
    assert not os.path.exists(buffer)


async def _append(store: Store, n: int) -> list[int]:
    polls = [Poll([Reading("p_out", 0.4 + i / 1000)], clock.now_ms(), True) for i in range(n)]
    return [s.seq for s in (await store.append(polls)).samples]


async def test_a_reopened_buffer_logs_its_backlog(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, tmp_path / "buffer.sqlite")
    store = await open_store(config)
    try:
        seqs = await _append(store, 3)
    finally:
        await store.close()
    caplog.set_level("INFO", logger="agent")
    store = await open_store(config)
    await store.close()
    said = [r.getMessage() for r in caplog.records if "reopened" in r.getMessage()]
    assert said == [
        f"buffer {config.buffer.path}: reopened, 3 samples from before wait for the platform's"
        f" PUBACK; seqs continue after {seqs[-1]}"
    ]


async def test_new_buffer_starts_from_the_clock_and_a_restart_continues(tmp_path: Path) -> None:
    buffer = tmp_path / "data" / "buffer.sqlite"
    config = _config(tmp_path, buffer)

    before_ms = clock.now_ms()
    store = await open_store(config)
    try:
        assert store.created
        first = await _append(store, 3)
        session = await store.next_session()
        cmd_seq = await store.next_seq("cmd")
        event = await store.add_event({"type": "test"})
    finally:
        await store.close()
    assert buffer.is_file()
    assert first[0] > before_ms * 1000, "a first start does not number from 1"
    assert first[0] <= clock.now_ms() * 1000 + 1
    assert first == [first[0], first[0] + 1, first[0] + 2]
    assert min(session, cmd_seq, event.seq) > before_ms * 1000, "every stream and the session"

    # a restart on the same file, every sample acknowledged: continue, never a new clock base
    store = await open_store(config)
    try:
        assert not store.created
        store.ack(first)
        assert await store.pending() == 0
    finally:
        await store.close()
    store = await open_store(config)
    try:
        assert not store.created
        again = await _append(store, 2)
        assert await store.next_session() == session + 1
    finally:
        await store.close()
    assert again == [first[-1] + 1, first[-1] + 2]

    # the file is gone (deleted, SD card swapped): the new buffer starts above the old seqs
    _lose(buffer)
    store = await open_store(config)
    try:
        assert store.created
        fresh = await _append(store, 1)
        assert await store.next_session() > session + 1
    finally:
        await store.close()
    assert fresh[0] > again[-1], "a new buffer's seqs are new to the platform"
    assert fresh[0] > before_ms * 1000
