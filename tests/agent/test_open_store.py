"""Opening the buffer at start (:func:`agent.app.open_store`) on real files: only a damaged file is
moved aside; a read-only folder, a lock held by another process, a path the OS refuses leave the
file and every sample in it as they are, and the agent ends with one ERROR line (no traceback)
and an exit code systemd's ``RestartPreventExitStatus=2`` understands: 2 for the installation,
1 for what a restart may cure. The CLI cases run ``python -m agent.cli run`` as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.app import open_store
from agent.config import load_config
from agent.core.model import Reading
from agent.store import Poll, Store, StoreUnavailable
from tests.fs import tmpfs
from tests.procs import EXAMPLE, ROOT, free_port


def _agent(buffer: Path, *sets: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``pumproom-agent run`` on config/example.yaml with the buffer at ``buffer``; the broker
    and the devices point at closed loopback ports. Returns (exit code, stdout + stderr)."""
    import os

    args = [sys.executable, "-m", "agent.cli", "run", "-c", str(EXAMPLE)]
    for s in (
        f"buffer.path={buffer}",
        f"uplink.broker=mqtt://127.0.0.1:{free_port()}",
        f"status.listen=127.0.0.1:{free_port()}",
        *sets,
    ):
        args += ["--set", s]
    proc = subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,  # the lock case waits SQLite's 5 s busy timeout; 3 workers on 2 cores
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout + proc.stderr


def _prefill(path: Path, n: int) -> None:
    async def fill() -> None:
        store = await Store.open(path, 1 << 26)
        try:
            await store.append([Poll([Reading("p_out", 0.4 + i / 1000)], 1000 + i, True)
                                for i in range(n)])  # fmt: skip
        finally:
            await store.close()

    asyncio.run(fill())


def _rows(path: Path) -> int:
    # immutable: readable on a read-only mount too (no -shm to create)
    with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM samples").fetchone()[0])


def _one_error_line(output: str, *needles: str) -> str:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def ro_mount(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs at ``tmp_path/ro`` holding a buffer with 500 samples, then remounted
    read-only (needs mount(2): root outside a restricted container)."""
    with tmpfs(tmp_path / "ro", "4m") as mnt:
        _prefill(mnt / "buffer.sqlite", 500)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt


def test_read_only_file_system_leaves_the_buffer_and_exits_2(ro_mount: Path) -> None:
    buffer = ro_mount / "buffer.sqlite"
    before = buffer.read_bytes()
    code, out = _agent(buffer)
    assert code == 2, out
    _one_error_line(out, str(buffer), "read-only file system")
    assert sorted(p.name for p in ro_mount.iterdir()) == [
        "buffer.sqlite",
        "buffer.sqlite-reserve",
        "buffer.sqlite.lock",  # the prefill's (agent.store.lockfile): the lock file stays
    ]
    assert buffer.read_bytes() == before and _rows(buffer) == 500, "the backlog stays"


def test_a_new_buffer_on_a_read_only_file_system_exits_2(ro_mount: Path) -> None:
    code, out = _agent(ro_mount / "new" / "buffer.sqlite")
    assert code == 2, out
    _one_error_line(out, "read-only file system")


def test_a_file_in_the_way_of_the_folder_exits_2(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    code, out = _agent(tmp_path / "data" / "buffer.sqlite")
    assert code == 2, out
    _one_error_line(out, str(tmp_path / "data" / "buffer.sqlite"))


def test_a_locked_buffer_is_not_moved_aside_and_keeps_its_rows(tmp_path: Path) -> None:
    buffer = tmp_path / "buffer.sqlite"
    _prefill(buffer, 300)
    holder = sqlite3.connect(buffer, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")  # held until the agent has given up
        code, out = _agent(buffer)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1, f"a lock may pass: exit 1 so systemd retries\n{out}"
    _one_error_line(out, str(buffer), "locked")
    assert not list(tmp_path.glob("buffer.sqlite.corrupt-*")), "a locked buffer is not damaged"
    assert _rows(buffer) == 300

    async def reopen() -> int:
        store = await Store.open(buffer, 1 << 26, seq_base=10**15)
        try:
            assert not store.created
            return await store.last_seq()
        finally:
            await store.close()

    assert asyncio.run(reopen()) == 300, "the same buffer continues once the lock is gone"


def test_a_damaged_file_is_still_moved_aside(tmp_path: Path) -> None:
    buffer = tmp_path / "buffer.sqlite"
    garbage = b"\x13\x37 not a database " * 4096
    buffer.write_bytes(garbage)
    config = load_config(EXAMPLE, (f"buffer.path={buffer}",))

    async def start() -> tuple[bool, list]:
        store = await open_store(config)
        try:
            return store.created, await store.begin_events(10)
        finally:
            await store.close()

    created, events = asyncio.run(start())
    assert created, "a new buffer was started"
    aside = list(tmp_path.glob("buffer.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage, "kept, byte for byte"
    assert [e.body["reason"] for e in events] == ["buffer_corrupt"]
    assert events[0].body["file"] == str(aside[0])


def test_a_second_agent_on_a_buffer_in_use_exits_1_and_touches_nothing(tmp_path: Path) -> None:
    """Two agents on one buffer interleaved their samples under one gateway and deleted each
    other's rows (newcomer trial: both ran 10 minutes on one file). The second now stops at
    once, naming the holder; the first's rows are untouched."""
    buffer = tmp_path / "buffer.sqlite"
    _prefill(buffer, 300)

    async def hold_and_try_again() -> str:
        first = await Store.open(buffer, 1 << 26)
        try:
            with pytest.raises(StoreUnavailable) as second:
                await Store.open(buffer, 1 << 26)
            return str(second.value)
        finally:
            await first.close()

    said = asyncio.run(hold_and_try_again())
    assert f"in use by another process (pid {os.getpid()})" in said, said
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time;"
         f"fd = os.open({str(buffer) + '.lock'!r}, os.O_RDWR);"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, out = _agent(buffer)
    finally:
        holder.kill()
        holder.wait()
    assert code == 1, f"the other may end: exit 1 so systemd retries\n{out}"
    _one_error_line(out, str(buffer), "in use by another process")
    assert _rows(buffer) == 300
    assert asyncio.run(_last_seq(buffer)) == 300, "once the holder is gone, the buffer opens"


async def _last_seq(buffer: Path) -> int:
    store = await Store.open(buffer, 1 << 26)
    try:
        return await store.last_seq()
    finally:
        await store.close()
