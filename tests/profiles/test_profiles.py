"""Device profiles against the simulator serving the same maps.

* every point of config/example.yaml that comes from a profile has the address, type, word order,
  bit, scale, unit, writable flag and bounds of the simulator's register map (the simulator keeps
  its own tables: hil_sim never imports agent/);
* per profile, the agent's own driver reads the simulator's device through that profile (Modbus
  TCP, and RTU over the pty for the drives and transmitters) and every point's decoded value
  equals the simulator's truth (the plant is not stepping, so the values hold still);
* a broken override names the site file's line, a broken profile point the profile's line.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import drivers
from agent.config import ConfigError, load_config
from agent.config import profiles as profile_files
from agent.core.model import Quality
from drivers.specs import ModbusPoint
from hil_sim.devices.registers import CONFIG_TABLE
from hil_sim.sim import SimOptions, Simulator
from tests.hil_sim.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example.yaml"
SHIPPED = profile_files.available()


def _example(sim_: Simulator | None = None):
    sets: list[str] = []
    if sim_ is not None:
        assert sim_.tcp_server is not None
        for d in ("cabinet", "flowmeter", "circ_drive", "cl500"):
            sets.append(f"devices.{d}.port={sim_.tcp_server.port}")
        for d in ("vfd1", "vfd2", "vfd3", "pt_suction", "pt_outlet"):
            sets.append(f"devices.{d}.port={sim_.options.rtu_link}")
    return load_config(EXAMPLE, sets)


def test_every_shipped_profile_is_used_by_the_example_and_cites_sources() -> None:
    config = _example()
    used = {d.profile for d in config.devices if d.profile}
    assert used == set(SHIPPED)
    for prof in profile_files.load_all():
        assert prof.sources and any("§4" in s for s in prof.sources), prof.name
        assert prof.identify, f"{prof.name}: scan cannot suggest it"


def test_profile_points_match_the_simulators_register_maps() -> None:
    config = _example()
    specs = {s.name: s for cp in config.connections() for grp in cp.groups.values() for s in grp}
    info = {p.name: p for p in config.catalogue()}
    served = Simulator(SimOptions(), announce=lambda line: None)  # not started: maps only
    compared = 0
    for dev in (*served.tcp_devices, *served.rtu_devices):
        for mp in dev.map.points:
            if mp.name.endswith(".hr"):
                continue
            spec = specs[mp.name]
            assert isinstance(spec, ModbusPoint)
            got = (spec.unit_id, spec.table.value, spec.address, spec.dtype.value, spec.bit)
            assert got == (dev.unit_id, mp.table, mp.address, mp.dtype, mp.bit), mp.name
            if spec.width > 1:
                assert spec.word_order.value == mp.word_order, mp.name
            assert math.isclose(spec.scale, mp.scale) and spec.offset == mp.offset, mp.name
            assert spec.writable == mp.writable, mp.name
            assert (spec.valid_min, spec.valid_max) == (mp.valid_min, mp.valid_max), mp.name
            assert (info[mp.name].unit or "") == mp.unit, mp.name
            assert CONFIG_TABLE[mp.table]
            compared += 1
    assert compared == sum(len(d.points) for d in config.devices if d.transport != "opcua")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Simulator]:
    """One started simulator for every profile (servers up, the plant NOT stepping: values
    hold still between the reads and the truth)."""
    tmp = tmp_path_factory.mktemp("profiles")
    options = SimOptions(
        modbus_tcp_port=0, opcua_port=free_port(), rtu_link=str(tmp / "ttyRTU0"),
        control_port=0, seed=1, start_time_of_day_s=8 * 3600.0,
    )  # fmt: skip
    simulator = Simulator(options, announce=lambda line: None)
    await simulator.start()
    simulator.advance(30.0)  # past the start transient: pumps running, flow, pressures
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("name", SHIPPED)
async def test_profile_reads_the_simulated_device_exactly(name: str, sim: Simulator) -> None:
    config = _example(sim)
    devices = [d for d in config.devices if d.profile == name]
    assert devices
    truth = sim.truth()
    checked = 0
    for cp in config.connections():
        points = [
            s for grp in cp.groups.values() for s in grp if s.device in {d.name for d in devices}
        ]
        if not points:
            continue
        driver = drivers.create(cp.spec)
        try:
            await driver.connect()
            readings = await driver.read(driver.plan(points))
        finally:
            await driver.close()
        for point, reading in zip(points, readings, strict=True):
            assert reading.quality is Quality.GOOD, (point.name, reading.reason)
            expected = truth[point.name]
            if isinstance(expected, float):
                assert reading.value == pytest.approx(expected, rel=1e-6, abs=1e-9), point.name
            else:
                assert reading.value == expected, point.name
            checked += 1
    assert checked == sum(len(d.points) for d in devices)


def test_an_override_of_a_point_the_profile_lacks_names_the_site_line(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "    prefix: pump1.\n", "    prefix: pump1.\n    overrides: {freq_rf: {valid_max: 45}}\n"
    )
    site.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(site)
    line = text.splitlines().index("    overrides: {freq_rf: {valid_max: 45}}") + 1
    assert [str(p) for p in err.value.problems] == [
        f"{site}:{line}:17: devices.vfd1.overrides.freq_rf: profile 'invt-gd200a' has no point"
        " 'freq_rf' (did you mean 'freq_ref'?)"
    ]


def test_a_site_profile_beside_the_config_wins_and_its_errors_name_its_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "profiles").mkdir()
    own = (ROOT / "config" / "profiles" / "xylem-cl500.yaml").read_text(encoding="utf-8")
    own = own.replace("type: float32, word_order: little", "type: float23, word_order: little")
    (tmp_path / "profiles" / "xylem-cl500.yaml").write_text(own, encoding="utf-8")
    site = tmp_path / "site.yaml"
    site.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(site)
    (problem,) = err.value.problems
    line = own.splitlines().index(next(x for x in own.splitlines() if "float23" in x)) + 1
    assert str(problem).startswith(f"{tmp_path / 'profiles' / 'xylem-cl500.yaml'}:{line}:")
    assert "devices.cl500.points.cl500.chlorine.type" in str(problem)


def test_profile_default_alarm_rules_fill_in_where_the_site_gives_none(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for name in ("pump1.fault_code", "pump2.fault_code", "pump3.fault_code", "p_in"):
        del data["alarms"]["points"][name]
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    rules = load_config(site).alarms.points  # type: ignore[union-attr]
    for n in (1, 2, 3):  # the INVT profile's fault-code rule, through its fault map
        (rule,) = rules[f"pump{n}.fault_code"]
        assert (rule.kind, rule.fault_map, rule.code) == ("fault", "invt_gd200a", "DRIVE_FAULT")
    assert [r.code for r in rules["p_in"]] == ["SENSOR_FAULT"]  # the transmitter's default
    assert [r.code for r in rules["p_out"]] == ["HIGH_OUTLET", "SENSOR_FAULT"]  # the site's own
    del data["alarms"]
    site.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    assert load_config(site).alarms is None  # no alarms section: no alarms, profiles or not
