"""``pumproom-agent buffer`` on a real buffer file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from agent.core.model import Quality, Reading
from agent.store import Poll, Store
from tests.procs import EXAMPLE, ROOT


async def _fill(path: Path) -> None:
    store = await Store.open(path, 1 << 22)
    r = await store.append([
        Poll([Reading("p_out", 0.4), Reading("flow", None, Quality.COMM_FAIL, "timeout")], 1_700_000_000_000, True),
        Poll([Reading("p_out", 0.41)], 1_700_000_001_000, True),
    ])  # fmt: skip
    store.ack([r.samples[0].seq])
    await store.add_event({"type": "info", "code": "X"})
    await store.close()


def test_buffer_command_reports_what_waits(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    asyncio.run(_fill(path))
    out = subprocess.run(
        [sys.executable, "-m", "agent", "buffer", "-c", str(EXAMPLE), "--set", f"buffer.path={path}", "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["samples_waiting"] == 2 and info["seq_range"] == [2, 3]
    assert info["time_range"] == ["2023-11-14T22:13:20+00:00", "2023-11-14T22:13:21+00:00"]
    assert info["events_waiting"] == 1 and info["top_points"] == {"flow": 1, "p_out": 1}


def test_buffer_command_without_a_buffer_says_so(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent", "buffer", "-c", str(EXAMPLE), "--set", f"buffer.path={tmp_path / 'none.sqlite'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )  # fmt: skip
    assert out.returncode == 1 and "no buffer file" in out.stderr
