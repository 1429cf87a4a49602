"""Fixtures and checks for the store-and-forward fault suite: real Mosquitto, simulator and agent
processes on loopback.

The agent polls only the simulator's control cabinet (Modbus TCP, ~40 points) every 0.1 s, so a
backlog builds at ~400 samples/s. Each test ends with :func:`account`, which compares every seq
the buffer ever assigned with what the platform-side subscriber received (plus what is still
buffered, plus what a data-loss event reported as evicted), asserts nothing is lost, prints the
duplicates and records the counts in :data:`REPORT` for ``python -m tests.benchmarks.buffer``.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.procs import (
    AgentProc,
    Mosquitto,
    Simulator,
    Subscriber,
    cabinet_only_example,
    seq_report,
    wait_for,
)

REPORT = Path(tempfile.gettempdir()) / "pumproom-faults-uplink.json"
"""Per-test counts (polled, received, duplicates, lost, evicted), read by the buffer benchmark."""

POLL_S = 0.1
"""Poll interval of the cabinet in these tests, seconds."""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(tmp_path_factory.mktemp("sim")).start()
    yield s
    s.stop()


@pytest.fixture
def site() -> str:
    return "fu-" + uuid.uuid4().hex[:8]


@pytest.fixture
def cabinet_config(tmp_path: Path, sim: Simulator) -> Path:
    """A config with only the cabinet of config/example.yaml, pointed at the simulator."""
    doc = cabinet_only_example(sim.tcp_port, POLL_S)
    doc["uplink"]["batch_interval_s"] = 0.2
    path = tmp_path / "cabinet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path).start()
    yield b
    if b.proc is not None:
        b.resume()
    b.stop()


@pytest.fixture
def subscriber(broker: Mosquitto, site: str) -> Iterator[Subscriber]:
    s = Subscriber(broker.port, site).start()
    yield s
    s.stop()


@pytest.fixture
def agent(
    tmp_path: Path, broker: Mosquitto, sim: Simulator, site: str, cabinet_config: Path
) -> Iterator[AgentProc]:
    a = AgentProc(tmp_path, broker.port, sim, site, config=cabinet_config, device_sets=[])
    yield a
    a.stop(9) if a.proc is not None else None
    if a.log.exists():
        print(a.log.read_text()[-3000:])


def buffer_query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Run one read-only query on the buffer file (safe while the agent runs: WAL readers)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def appended(agent: AgentProc) -> int:
    """Highest seq the buffer has assigned so far (0 before the first)."""
    if not agent.buffer.exists():
        return 0
    rows = buffer_query(agent.buffer, "SELECT seq FROM sqlite_sequence WHERE name='samples'")
    return int(rows[0][0]) if rows else 0


def evicted_seqs(sub: Subscriber) -> set[int]:
    """Seqs that data-loss events reported as evicted."""
    out: set[int] = set()
    for e in data_loss_events(sub):
        if "seq_range" in e:  # buffer_full / max_age; buffer_corrupt and not_buffered have none
            lo, hi = e["seq_range"]
            out.update(range(lo, hi + 1))
    return out


def data_loss_events(sub: Subscriber) -> list[dict[str, Any]]:
    """Every data-loss event the platform received (duplicates removed by event seq)."""
    seen: dict[int, dict[str, Any]] = {}
    for topic, body, _ in sub.snapshot():
        if topic.endswith("/event"):
            for e in body["events"]:
                if e.get("type") == "data_loss":
                    seen[e["seq"]] = e
    return [seen[k] for k in sorted(seen)]


def received_seqs(sub: Subscriber) -> set[int]:
    return {s[0] for s in sub.samples()}


def wait_delivered(
    agent: AgentProc, sub: Subscriber, upto: int, timeout_s: float, base: int | None = None
) -> None:
    """Wait until the platform has every seq base+1..``upto`` (except reported evictions);
    ``base`` defaults to the buffer's :meth:`~tests.procs.AgentProc.seq_base`."""
    if base is None:
        base = agent.seq_base()

    def done() -> bool:
        want = set(range(base + 1, upto + 1)) - evicted_seqs(sub)
        return want <= received_seqs(sub)

    def missing() -> str:
        want = set(range(base + 1, upto + 1)) - evicted_seqs(sub) - received_seqs(sub)
        return f"{len(want)} of seqs {base + 1}..{upto} delivered late or never, e.g. {sorted(want)[:5]}"

    try:
        wait_for(done, timeout_s, "delivery", step_s=0.2)
    except AssertionError:
        raise AssertionError(missing()) from None


def account(
    name: str, agent: AgentProc, sub: Subscriber, *, stop: bool = True, **extra: Any
) -> dict[str, Any]:
    """Stop the agent (SIGTERM, exit 0), then check nothing is lost and record the counts.

    Every seq 1..N the buffer assigned must be received by the platform, still buffered, or
    inside a data-loss event's seq range. Returns the counts.
    """
    if stop:
        assert agent.stop() == 0, "SIGTERM must stop the agent cleanly (exit 0)"
    # let the subscriber take what the broker still has in flight
    last = -1
    while (n := len(sub.snapshot())) != last:
        last = n
        time.sleep(0.5)
    samples = sub.samples()
    copies: dict[int, tuple[Any, ...]] = {}
    for seq, point, t, value, q, reason, _hist in samples:
        first = copies.setdefault(seq, (point, t, value, q, reason))
        assert first == (point, t, value, q, reason), f"seq {seq} re-sent with other content"
    buffered = agent.buffered_seqs()
    evicted = evicted_seqs(sub)
    n, base = agent.appended(), agent.seq_base()
    missing, duplicates = seq_report((s[0] for s in samples), buffered | evicted, n, base)
    counts = {
        "polled": n - base,
        "received": len(samples),
        "unique": len({s[0] for s in samples}),
        "duplicates": duplicates,
        "duplicate_ratio": round(duplicates / max(1, n - base), 5),
        "still_buffered": len(buffered),
        "evicted": len(evicted),
        "lost": len(missing),
        **extra,
    }
    print(f"{name}: {counts}")
    _record(name, counts)
    assert not missing, f"{len(missing)} samples lost, e.g. seqs {sorted(missing)[:10]}"
    return counts


def _record(name: str, counts: dict[str, Any]) -> None:
    try:
        data = json.loads(REPORT.read_text())
    except (OSError, ValueError):
        data = {}
    data[name] = {**counts, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    REPORT.write_text(json.dumps(data, indent=1))
