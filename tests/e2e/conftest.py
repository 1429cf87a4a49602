"""Fixtures for end-to-end tests: simulator, private Mosquitto, agent and subscriber as real
processes on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import AgentProc, Mosquitto, Simulator, Subscriber


@pytest.fixture
def site() -> str:
    return "e2e-" + uuid.uuid4().hex[:8]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    s = Simulator(tmp_path).start()
    yield s
    s.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path).start()
    yield b
    b.resume() if b.proc else None
    b.stop()


@pytest.fixture
def subscriber(broker: Mosquitto, site: str) -> Iterator[Subscriber]:
    s = Subscriber(broker.port, site, validate=True).start()
    yield s
    s.stop()
    s.assert_valid()  # every uplink message of every e2e test keeps the contract (agent/schemas)


@pytest.fixture
def agent(tmp_path: Path, broker: Mosquitto, sim: Simulator, site: str) -> Iterator[AgentProc]:
    a = AgentProc(tmp_path, broker.port, sim, site)
    yield a
    a.stop()
    if a.log.exists():
        print(a.log.read_text()[-4000:])
