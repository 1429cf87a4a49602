"""Fixtures for the technician's tools: a quiet simulator for the CLI (nobody else on its RTU
bus), and a simulator + private Mosquitto + agent for ``status`` and the status page; one of each
for the whole package (they only read, bar the writes of test_write, which restore what they
change)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import EXAMPLE, ROOT, AgentProc, Mosquitto, Simulator, wait_for

ARTEFACTS = Path(os.environ.get("PUMPROOM_ARTEFACTS", ROOT / "test-artefacts"))
"""Where tests leave files for people to look at (screenshots); gitignored."""


@pytest.fixture(scope="package")
def quiet_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(tmp_path_factory.mktemp("quiet")).start()  # at 10:00 (procs.START_TIME)
    wait_for(lambda: s.command({"cmd": "truth"})["values"]["flow"] > 0.5, 30, "water flowing")
    s.command({"cmd": "freeze", "on": True})  # values hold still: reads compare with the truth
    yield s
    s.stop()


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    """A running agent on config/example.yaml against its own simulator."""
    work = tmp_path_factory.mktemp("live")
    sim = Simulator(work).start()
    broker = Mosquitto(work).start()
    agent = AgentProc(work, broker.port, sim, "tools-" + uuid.uuid4().hex[:6]).start()
    try:
        wait_for(lambda: "status page on" in agent.log.read_text(), 30, "the status page")
        yield agent
    finally:
        agent.stop()
        broker.stop()
        sim.stop()


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``pumproom-agent ARGS`` from the checkout; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )


def example_sets(sim: Simulator) -> list[str]:
    """``--set`` arguments pointing config/example.yaml at ``sim``."""
    out: list[str] = []
    for s in sim.overrides():
        out += ["--set", s]
    return out


__all__ = ["ARTEFACTS", "EXAMPLE", "cli", "example_sets"]
