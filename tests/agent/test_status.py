"""The status page's error columns: when the last error happened and whether the connection
works now. A real Modbus TCP slave of the simulator, the agent's poller for it, and the status
server read over HTTP (``/status.json`` and ``/``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import drivers
from agent import status
from agent.app import Agent
from agent.config import load_config
from agent.core.model import clock
from agent.poller import ConnectionPoller
from hil_sim.modbus import Faults, ModbusTcpServer, RequestCounters
from tests.drivers.conftest import make_bank

YAML = """\
site:
  id: demo
devices:
  - name: cabinet
    transport: modbus-tcp
    host: 127.0.0.1
    port: {port}
    unit_id: 1
    timeout_s: 0.2
    poll_interval_s: 0.1
    points:
      - {{name: p_out, register: holding, address: 0, type: float32}}
uplink:
  broker: mqtt://127.0.0.1:1883
buffer:
  path: {buffer}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:  # loopback only
        return r.read().decode()


async def _fetch(port: int) -> tuple[dict[str, Any], str]:
    base = f"http://127.0.0.1:{port}"
    snap = json.loads(await asyncio.to_thread(_get, base + "/status.json"))
    return snap, await asyncio.to_thread(_get, base + "/")


async def _until(what: str, check, timeout_s: float = 15.0) -> Any:
    end = time.monotonic() + timeout_s
    while not (got := await check()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)
    return got


def _utc_ms(iso: str) -> float:
    assert iso.endswith("Z"), iso
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


async def test_an_error_after_recovery_shows_its_time_and_ok(tmp_path: Path) -> None:
    sim = ModbusTcpServer("127.0.0.1", 0, {1: make_bank(1)}, Faults(), RequestCounters())
    await sim.start()
    site = tmp_path / "site.yaml"
    site.write_text(YAML.format(port=sim.port, buffer=tmp_path / "b.sqlite"), encoding="utf-8")
    agent = Agent(load_config(site))
    (conn,) = agent.config.connections()
    poller = ConnectionPoller(drivers.create(conn.spec), conn.groups, lambda *_: None)
    agent.pollers = [poller]
    page_port = _free_port()
    runner = await status.serve(agent, "127.0.0.1", page_port)
    assert runner is not None
    task = asyncio.create_task(poller.run(), name="poller-cabinet")
    try:

        async def connection(pred) -> dict[str, Any] | None:
            snap, page = await _fetch(page_port)
            c = snap["connections"][0]
            return (c, page) if pred(c) else None

        c, page = await _until("a good poll", lambda: connection(lambda c: c["ok"]))
        assert c["last_error"] is None and c["last_error_at"] is None and "OK" in page

        sim.faults.unit(1).silent = True  # the device stops answering
        failed_at = clock.now_ms()
        c, page = await _until("the error", lambda: connection(lambda c: c["last_error"]))
        assert c["ok"] is False, c
        assert "timeout" in c["last_error"] or "no answer" in c["last_error"], c
        assert "not recovered" in page

        sim.faults.unit(1).silent = False  # it answers again
        c, page = await _until("the recovery", lambda: connection(lambda c: c["ok"]))
        recovered_at = clock.now_ms()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
        await sim.stop()

    # the error is still shown, but with when it happened and that the connection works now
    assert c["ok"] is True and c["connected"] is True
    assert c["last_error"], c
    at = _utc_ms(c["last_error_at"])
    assert failed_at - 200 <= at <= recovered_at, (failed_at, c["last_error_at"], recovered_at)
    assert 0 <= c["last_error_age_s"] <= (clock.now_ms() - failed_at) / 1000 + 0.2
    assert c["last_error_at"] in page and "recovered, OK now" in page
    unit = c["driver"]["devices"]["cabinet"]
    assert unit["ok"] is True and unit["last_error"] is not None
    assert unit["last_ok_age_s"] <= unit["last_error_age_s"]  # ages in 0.1 s steps
    assert _utc_ms(unit["last_error_at"]) <= recovered_at
    assert c["driver"]["ok"] is True and c["driver"]["last_error_at"] is not None
