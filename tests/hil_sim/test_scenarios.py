"""Scenario files v2: every shipped scenario validates; errors name file, item and key; timed and
state-triggered events fire on the real simulator; ``for_s`` undoes; the event log."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hil_sim.faults import CATALOGUE
from hil_sim.scenario import (
    SHIPPED_DIR,
    ScenarioError,
    load_scenario,
    parse_scenario,
    shipped_names,
)
from hil_sim.sim import SimOptions, Simulator
from tests.control.rig import until
from tests.hil_sim.conftest import free_port

README = Path(__file__).resolve().parents[2] / "hil_sim" / "README.md"
LIBRARY = {
    "normal-day", "morning-peak", "night-low-flow", "main-burst", "suction-loss", "pump-trip",
    "power-blip", "sensor-faults", "comms-faults", "water-quality", "intrusion-flood",
    "low-pressure-complaint",
}  # fmt: skip
"""The library issue 16 asks for (≥ 12)."""


def offline_sim(scenario_doc: dict | list, **kw) -> Simulator:
    """A simulator without servers (nothing started; ``advance`` steps it)."""
    scenario = parse_scenario(scenario_doc, "test.yaml")
    return Simulator(
        SimOptions.for_scenario(scenario, rtu_link=None, control_port=None, **kw),
        announce=lambda line: None,
    )


def test_the_library_is_shipped_and_every_scenario_validates_on_a_simulator() -> None:
    assert LIBRARY <= set(shipped_names())
    for name in shipped_names():
        scenario = load_scenario(name)
        if name != "example":  # the old-format example has no expectations
            assert scenario.expect and scenario.duration_s, name
            assert scenario.name == name and scenario.description, name
            assert scenario.duration_s <= 60 or name == "low-pressure-complaint"
        # plant overrides, initial names, trigger points and fault targets check against the
        # simulator itself (no servers are started)
        offline_sim(yaml.safe_load((SHIPPED_DIR / f"{name}.yaml").read_text()))
        for item in scenario.expect:
            after = item.get("after")
            if after is not None:  # an expectation's t0 is an event the scenario names
                names = {e.name for e in scenario.events}
                assert after.removesuffix(":end") in names, (name, after)


def test_the_readme_lists_every_catalogue_fault_and_parameter() -> None:
    text = README.read_text()
    for spec in CATALOGUE.values():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{spec.name}`")), "")
        assert row, spec.name
        for key in spec.params:
            assert f"`{key}`" in row, (spec.name, key)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"events": [{"at": 1, "cmd": "ping", "bogus": 1, "fault": "door"}]}, "events[0]"),
        ({"events": [{"cmd": "ping"}]}, "events[0]: needs 'at'"),
        ({"events": [{"at": 1, "fault": "drive_trip", "target": "pump2"}]}, "events[0].code"),
        (
            {"events": [{"at": 1, "fault": "drive_trip", "target": "pump2", "code": "x"}]},
            "events[0].code: expected an integer",
        ),
        ({"events": [{"at": 1, "fault": "nope"}]}, "events[0].fault: unknown fault 'nope'"),
        ({"events": [{}, {"at": 1, "fault": "door", "colour": 2}]}, "events[0]"),
        ({"events": [{"at": 1, "fault": "door", "colour": 2}]}, "events[0].colour: unknown"),
        ({"events": [{"when": {"point": "p_out", "op": "=~", "value": 1}, "cmd": "ping"}]},
         "events[0].when.op"),
        ({"events": [{"at": 1, "cmd": "ping", "for_s": 3}]}, "events[0].for_s"),
        ({"events": [{"at": 1, "cmd": "ping", "name": "a"}, {"at": 2, "cmd": "ping", "name": "a"}]},
         "events[1].name: 'a' is not unique"),
        ({"events": [], "demand": {"pattern": [1.0] * 23}}, "demand.pattern: expected 24"),
        ({"events": [], "start_time": "25:00"}, "start_time"),
        ({"events": [], "colour": "red"}, "unknown key(s) ['colour']"),
        ({"events": [{"at": 1, "cmd": "sett"}]}, "events[0].cmd: unknown command 'sett'"),
        ({"events": [{"at": 1, "cmd": "set", "value": 2}]}, "events[0]: a set command needs"),
        ({"events": [{"at": 1, "fault": "comms_crc", "target": 7, "probability": 2}]},
         "events[0].probability"),
    ],
)  # fmt: skip
def test_errors_name_the_file_item_and_key(doc, message) -> None:
    with pytest.raises(ScenarioError, match=r"^test\.yaml: ") as info:
        parse_scenario(doc, "test.yaml")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"events": [], "plant": {"riser": {"hieght_m": 3}}}, "plant.riser.hieght_m: unknown"),
        ({"events": [], "initial": {"pump9.mode": 0}}, "initial.pump9.mode"),
        ({"events": [{"when": {"point": "p_top", "op": "<", "value": 0.1}, "cmd": "ping"}]},
         "events[0].when.point: 'p_top' is not a truth key"),
        ({"events": [{"at": 1, "fault": "sensor_offset", "target": "p_mid", "offset": 1}]},
         "events[0].target"),
        ({"events": [{"at": 1, "fault": "drive_trip", "target": "pump4", "code": 1}]},
         "events[0].target"),
        ({"events": [{"at": 1, "fault": "comms_silent", "target": 77}]}, "events[0].target"),
        ({"events": [{"at": 1, "cmd": "set", "name_": "setpiont", "value": 0.4}]},
         "events[0].name_: unknown name 'setpiont'"),  # was only a failed event at 1 s
    ],
)  # fmt: skip
def test_errors_found_against_the_simulator_name_the_key(doc, message) -> None:
    with pytest.raises(ScenarioError, match=r"^test\.yaml: ") as info:
        offline_sim(doc)
    assert message in str(info.value)


def test_overrides_reach_the_plant() -> None:
    sim = offline_sim(
        {
            "start_time": "18:30",
            "plant": {"households": 260, "riser": {"height_m": 22.0}},
            "demand": {"peak_factor": 3.0, "random_draws": False, "factor": 1.5, "day_speed": 4},
            "initial": {"setpoint": 0.45, "pump3.mode": 0},
            "events": [],
        }
    )
    pl = sim.plant
    assert pl.time_of_day_s == 18.5 * 3600
    assert (pl.params.households, pl.params.riser.height_m) == (260, 22.0)
    assert max(pl.params.pattern) == pytest.approx(3.0)
    assert sum(pl.params.pattern) == pytest.approx(24.0)  # the day's volume is kept
    assert (pl.demand_factor, pl.day_speed, pl.setpoint, pl.pumps[2].mode) == (1.5, 4, 0.45, 0)
    sim.advance(20.0)
    assert pl.pumps[2].drive.f_out_hz == 0.0  # pump 3 out of service from the start
    assert not pl.params.random_draws and pl.required_m3h > 0
    assert not pl.demand.draws  # no Poisson draws: the mean itself


def test_a_state_trigger_fires_once_and_for_s_undoes_with_the_event_log() -> None:
    sim = offline_sim(
        {
            "start_time": "07:00",
            "seed": 6,
            "demand": {"random_draws": False, "factor": 1.8},
            "events": [
                {"name": "trip", "at": 10, "when": {"point": "pump2.running", "op": "==",
                 "value": True}, "fault": "drive_trip", "target": "pump2", "code": 11,
                 "for_s": 20},
                {"name": "low", "when": {"point": "pump2.fault_code", "op": ">=", "value": 11},
                 "cmd": "set", "name_": "door", "value": True},
            ],
        }
    )  # fmt: skip
    sim.advance(9.0)
    assert sim.truth()["pump2.running"] is True  # running, but the trigger waits for t >= 10
    assert sim.event_log == []
    while not sim.event_log:
        sim.advance(0.25)
        assert sim.plant.t_s < 20, "the trigger did not fire"
    fired_at = sim.event_log[0][1]
    assert sim.event_log[0][2:] == ("trip", {"fault": "drive_trip", "target": "pump2",
                                             "code": 11, "for_s": 20.0})  # fmt: skip
    sim.advance(1.0)
    assert sim.truth()["pump2.fault_code"] == 11
    assert sim.plant.room.door_open  # the second trigger saw the first one's effect
    assert [e[2] for e in sim.event_log] == ["trip", "low"]
    sim.advance(fired_at + 20.0 - sim.plant.t_s - 0.5)
    assert sim.truth()["pump2.fault_code"] == 11  # still in force just before for_s ends
    sim.advance(1.0)
    assert sim.truth()["pump2.fault_code"] == 0  # undone
    wall_ms, plant_s, name, desc = sim.event_log[-1]
    assert (name, desc) == ("trip:end", {"fault": "drive_trip"})
    assert plant_s == pytest.approx(fired_at + 20.0, abs=0.6) and wall_ms > 1.7e12
    sim.advance(30.0)  # pump 2 runs again: a fired trigger never fires twice
    assert [e[2] for e in sim.event_log] == ["trip", "low", "trip:end"]
    assert sim.runner is not None and sim.runner.done


def test_a_failing_event_is_recorded_not_silent() -> None:
    sim = offline_sim([{"at": 1, "cmd": "set", "name": "setpoint", "value": 5.0}])
    sim.advance(2.0)
    ((_, _, name, desc),) = sim.event_log
    assert name == "0:set:failed" and "outside" in desc["error"]


async def test_a_scenario_runs_on_the_started_servers(tmp_path) -> None:
    """Options from the scenario (speed, seed, start time); OPC UA truth keys accepted by a
    trigger before the server served them; the runner plays while ``run`` steps in real time."""
    scenario = parse_scenario(
        {
            "start_time": "22:00",
            "speed": 20.0,
            "seed": 4,
            "events": [
                {"name": "door", "at": 2, "fault": "door", "for_s": 10},
                {"name": "seen", "when": {"point": "room.door", "op": "==", "value": True},
                 "cmd": "ping"},
            ],
        },
        "t.yaml",
    )  # fmt: skip
    options = SimOptions.for_scenario(
        scenario,
        modbus_tcp_port=0,
        opcua_port=free_port(),
        rtu_link=str(tmp_path / "ttyRTU0"),
        control_port=0,
    )
    assert (options.speed, options.seed, options.start_time_of_day_s) == (20.0, 4, 22 * 3600.0)
    sim = Simulator(options, announce=lambda line: None)
    await sim.start()
    try:
        import asyncio

        task = asyncio.create_task(sim.run())
        ended = await until(lambda: "door:end" in [e[2] for e in sim.event_log], 30)
        sim.request_stop()
        await task
    finally:
        await sim.stop()
    assert ended, sim.event_log
    names = [e[2] for e in sim.event_log]
    assert names.index("door") < names.index("seen") < names.index("door:end")
    assert sim.plant.room.door_open is False


def test_hil_sim_run_plays_a_shipped_scenario_headless(tmp_path) -> None:
    """``hil-sim run --scenario NAME`` (a shipped name, not a path) from the CLI: the servers
    come up, the state-triggered trip fires and ends (speed 10 from the command line)."""
    from tests.procs import Simulator as SimProc
    from tests.procs import wait_for

    proc = SimProc(tmp_path, "--scenario", "pump-trip", "--speed", "10", "--start-time", "07:00")
    proc.start()
    try:
        wait_for(lambda: "trip ended" in proc.log.read_text(), 60, "the trip to fire and end")
        log = proc.log.read_text()
        assert "scenario t=" in log and "'fault': 'drive_trip'" in log
        truth = proc.command({"cmd": "truth"})["values"]
        assert truth["pump2.fault_code"] == 0  # undone after for_s
    finally:
        proc.stop()


def test_hil_sim_run_refuses_a_bad_scenario_naming_the_key(tmp_path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("events:\n  - {at: 1, fault: drive_trip, target: pump2, code: x}\n")
    out = subprocess.run(
        [sys.executable, "-m", "hil_sim.cli", "run", "--scenario", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert f"{bad}: events[0].code: expected an integer" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "hil_sim.cli", "run", "--scenario", "no-such-scenario"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0 and "shipped: " in out.stderr and "pump-trip" in out.stderr
