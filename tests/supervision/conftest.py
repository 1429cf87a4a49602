"""A real agent on the simulator's control cabinet (Modbus TCP, polled every 0.2 s), a private
Mosquitto and a platform-side subscriber, with the agent's fault-injection file
(:mod:`agent.faultpoint`) and its status page."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.faultpoint import FAULT_ENV
from tests.procs import AgentProc, Mosquitto, Simulator, Subscriber, cabinet_only_example

POLL_S = 0.2


@pytest.fixture(scope="package")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(tmp_path_factory.mktemp("sim")).start()
    yield s
    s.stop()


@pytest.fixture
def site() -> str:
    return "sv-" + uuid.uuid4().hex[:8]


@pytest.fixture
def cabinet_config(tmp_path: Path, sim: Simulator) -> Path:
    """config/example.yaml with only the cabinet, pointed at the simulator."""
    doc = cabinet_only_example(sim.tcp_port, POLL_S)
    path = tmp_path / "site.yaml"
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
    s = Subscriber(broker.port, site, validate=True).start()
    yield s
    s.stop()


@pytest.fixture
def fault_file(tmp_path: Path) -> Path:
    return tmp_path / "faults.txt"


@pytest.fixture
def agent(
    tmp_path: Path,
    broker: Mosquitto,
    sim: Simulator,
    site: str,
    cabinet_config: Path,
    fault_file: Path,
) -> Iterator[AgentProc]:
    a = AgentProc(
        tmp_path, broker.port, sim, site, config=cabinet_config, device_sets=[],
        env={FAULT_ENV: str(fault_file)},
    )  # fmt: skip
    yield a
    if a.proc is not None:
        a.stop(9)
    if a.log.exists():
        print(a.log.read_text()[-4000:])


def status_json(agent: AgentProc) -> dict[str, Any] | None:
    """The agent's ``/status.json``, or ``None`` while it does not answer."""
    try:
        url = f"http://127.0.0.1:{agent.status_port}/status.json"
        with urllib.request.urlopen(url, timeout=2) as r:  # loopback only
            return json.loads(r.read())
    except OSError:
        return None
