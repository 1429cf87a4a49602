"""The pytest plugin as a tester uses it: a separate pytest run, in a folder with no conftest,
that gets the ``hil_sim`` fixture from the installed entry point alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTER_SUITE = """
import socket
import time
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

SCENARIO = Path(__file__).with_name("door.yaml")


@pytest.mark.hil_sim(scenario=SCENARIO, speed=4.0)
def test_endpoints_truth_and_report(hil_sim):
    host, port = hil_sim.modbus_tcp
    client = ModbusTcpClient(host, port=port, timeout=5)
    assert client.connect()
    reply = client.read_holding_registers(300, count=2, device_id=1)  # cabinet outlet pressure
    client.close()
    assert not reply.isError(), reply
    assert Path(hil_sim.rtu_link).is_symlink()
    ua_host, ua_port = hil_sim.opcua_endpoint.split("//")[1].split("/")[0].split(":")
    socket.create_connection((ua_host, int(ua_port)), timeout=5).close()
    assert hil_sim.command({"cmd": "ping"})["t_s"] >= 0
    deadline = time.monotonic() + 60
    while hil_sim.truth().series("room.door")[-1][1] is not True:  # door opened at plant 2 s
        assert time.monotonic() < deadline, "the scenario's door never opened"
        time.sleep(0.2)
    truth = hil_sim.truth()
    assert truth.states and "plant.p_index" in truth.states[0]["values"]
    assert [e["name"] for e in truth.events] == ["0:set"]
    assert truth.event_ms("0:set") <= truth.series("room.door")[-1][0]
    Path(hil_sim.workdir / "uplink.jsonl").write_text("")  # no agent in this suite
    report = hil_sim.report(plots=False)
    assert report.html.exists() and report.passed  # a v1 scenario: nothing expected
    print("TESTER-SUITE-OK", hil_sim.modbus_tcp, hil_sim.opcua_endpoint)


@pytest.mark.hil_sim(scenario="normal-day")
def test_a_shipped_scenario_keeps_its_own_clock(hil_sim):
    deadline = time.monotonic() + 60
    while not hil_sim.truth().states:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert hil_sim.truth().states[0]["tod_s"] < 3600  # normal-day starts at 00:00, not 10:00
    print("SHIPPED-OK")
"""


def test_a_tester_suite_gets_the_fixture_from_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "door.yaml").write_text("- {at: 2, cmd: set, name: door, value: true}\n")
    (tmp_path / "test_gateway.py").write_text(TESTER_SUITE)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert (
        "2 passed" in run.stdout and "TESTER-SUITE-OK" in run.stdout and "SHIPPED-OK" in run.stdout
    )
