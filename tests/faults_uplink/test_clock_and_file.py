"""The wall clock stepped back and forward, a corrupt buffer file at start, and the WAL while a
large backlog drains."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path

from agent.core.model import CLOCK_OFFSET_ENV
from tests.faults_uplink.conftest import account, appended, wait_delivered
from tests.faults_uplink.test_buffer_full import _prefill
from tests.procs import AgentProc, Subscriber, wait_for

HOUR_MS = 3_600_000


def test_wall_clock_stepped_back_and_forward_neither_reorders_deletes_nor_resends(
    subscriber: Subscriber, agent: AgentProc, tmp_path: Path
) -> None:
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    agent.env = {CLOCK_OFFSET_ENV: str(offset)}
    agent.start()
    wait_for(lambda: subscriber.samples(), 20, "first telemetry")
    time.sleep(2.0)
    steps = []
    for step in (-HOUR_MS, +HOUR_MS):
        offset.write_text(str(step))
        steps.append((time.time() * 1000, step))
        time.sleep(3.0)
    wait_delivered(agent, subscriber, appended(agent), 20)
    counts = account("clock_steps", agent, subscriber)
    samples = subscriber.samples()
    assert counts["duplicates"] == 0, "no restart, no fault: nothing is sent twice"
    base = agent.seq_base()
    assert base > 0, "a new buffer's seqs start from the clock"
    assert {s[0] for s in samples} == set(range(base + 1, base + counts["polled"] + 1)), (
        "seqs contiguous"
    )
    arrival: dict[str, list[int]] = defaultdict(list)
    for seq, point, *_ in samples:
        arrival[point].append(seq)
    for point, seqs in arrival.items():
        assert seqs == sorted(seqs), f"{point}: samples arrived out of seq order"
    now = time.time() * 1000
    back = [t for _s, _p, t, *_ in samples if t < steps[0][0] - HOUR_MS / 2]
    ahead = [t for _s, _p, t, *_ in samples if t > now + HOUR_MS / 2]
    assert back and ahead, "timestamps follow the stepped clock, back and forward"
    assert all(abs(t - (now - HOUR_MS)) < 20_000 for t in back)
    assert all(abs(t - (now + HOUR_MS)) < 20_000 for t in ahead)
    print(f"{len(back)} samples stamped an hour back, {len(ahead)} an hour ahead")


def test_corrupt_buffer_file_is_moved_aside_and_polling_goes_on(
    subscriber: Subscriber, agent: AgentProc
) -> None:
    # a real buffer whose pages are then damaged (the header stays valid)
    _prefill(agent.buffer, 20_000)
    size = agent.buffer.stat().st_size
    with open(agent.buffer, "r+b") as f:
        for at in range(8192, size, 16384):
            f.seek(at)
            f.write(os.urandom(512))
    agent.start()
    wait_for(lambda: subscriber.samples(), 20, "telemetry from a new buffer")
    aside = list(agent.workdir.glob("buffer.sqlite.corrupt-*"))
    assert aside, "the corrupt file is kept, moved aside"
    assert "unusable" in agent.log.read_text(), "the corruption is logged"

    def loss_event() -> list[dict]:
        return [e for t, b, _ in subscriber.snapshot() if t.endswith("/event") for e in b["events"]
                if e.get("type") == "data_loss" and e.get("reason") == "buffer_corrupt"]  # fmt: skip

    event = wait_for(loss_event, 10, "the buffer_corrupt data_loss event")[0]
    assert event["seq"] > agent.seq_base(), "the loss event's own seq is new to the platform too"
    assert event["file"] == str(aside[0]), "the platform is told where the old buffer went"
    base = agent.seq_base()
    first = min(s[0] for s in subscriber.samples())
    assert base > 20_000 and first == base + 1, (
        "a new buffer was started, its seqs above any the lost one can have used"
    )
    wait_delivered(agent, subscriber, appended(agent), 20, base)
    account("corrupt_buffer_at_start", agent, subscriber)


def test_wal_stays_bounded_while_a_large_backlog_drains(
    subscriber: Subscriber, agent: AgentProc
) -> None:
    backlog = 150_000
    _prefill(agent.buffer, backlog)
    wal = Path(f"{agent.buffer}-wal")
    largest = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                largest[0] = max(largest[0], wal.stat().st_size)
            except OSError:
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        agent.start()
        wait_delivered(agent, subscriber, backlog, 60)
    finally:
        done.set()
        watcher.join()
    wait_delivered(agent, subscriber, appended(agent), 20)
    counts = account("wal_bounded_drain", agent, subscriber, largest_wal_bytes=largest[0])
    assert counts["polled"] > backlog
    assert 0 < largest[0] < 8 << 20, f"WAL grew to {largest[0]} bytes"
