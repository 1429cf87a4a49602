"""What a reload applies (agent/reload.py ``plan``), on config/example.yaml (with its control
loop) loaded with ``--set``-style overrides, as ``pumproom-agent run`` loads it."""

from __future__ import annotations

import yaml

from agent.config import load_config
from agent.reload import control_points, plan
from tests.control.rig import control_section, site_yaml
from tests.procs import EXAMPLE


def _load(*sets: str):
    """config/example.yaml without its alarms (see the last test)."""
    return load_config(str(EXAMPLE), ("alarms=null", *sets))


def test_identical_is_empty():
    assert plan(_load(), _load()).empty


def test_a_changed_device_restarts_only_its_connection():
    change = plan(_load(), _load("devices.analyser.poll_interval_s=0.5"))
    assert change.devices and change.stop == ["analyser"]
    assert [c.spec.name for c in change.start] == ["analyser"] and not change.restart_needed


def test_other_sections_need_a_restart_and_are_not_applied():
    change = plan(_load(), _load("uplink.batch_interval_s=0.2", "buffer.max_bytes=1048576"))
    assert change.restart_needed == ["uplink", "buffer"]
    assert not change.devices and not change.stop and not change.start


def test_a_device_the_control_loop_holds_needs_a_restart(tmp_path):
    """With a control loop (the rig's supervisory section), a device it reads or writes is
    wired into the loop: changing it is not applied; any other device still is."""
    path = tmp_path / "site.yaml"
    path.write_text(
        yaml.safe_dump(site_yaml(15020, "/dev/ttyRTU0", control_section("supervisory")))
    )

    def load(*sets: str):
        return load_config(str(path), sets)

    running = load()
    assert {"p_out", "pump1.cmd", "setpoint"} <= control_points(running)
    rtu = next(c.spec.name for c in running.connections() if c.spec.name.startswith("rtu:"))
    # the PV's transmitter (above the bus's other 1 s timeouts of the example: a change of the
    # connection; 0.9 s, below them, was none since the rig keeps the example's timeouts)
    change = plan(running, load("devices.pt_outlet.timeout_s=1.5"))
    assert change.restart_needed == [f"control outputs on {rtu}"]
    assert not change.devices and not change.stop and not change.start


def test_a_description_change_restarts_no_connection_but_is_applied():
    change = plan(_load(), _load("devices.cabinet.points.0.description=outlet header"))
    assert change.devices and not change.empty  # applied: meta and units follow
    assert change.stop == [] and change.start == [] and not change.restart_needed


def test_with_alarms_a_device_change_is_applied_and_the_rules_follow():
    """The alarm rules are compiled again against the new devices (agent/reload.py)."""
    running = load_config(str(EXAMPLE), ())
    assert running.alarms is not None
    change = plan(running, load_config(str(EXAMPLE), ("devices.analyser.poll_interval_s=0.5",)))
    assert change.devices and change.stop == ["analyser"] and not change.restart_needed


def test_devices_together_with_alarms_need_a_restart():
    """Rules and the points they name changed at once: not applied piecemeal."""
    running = load_config(str(EXAMPLE), ())
    new = load_config(
        str(EXAMPLE),
        ("devices.analyser.poll_interval_s=0.5", "alarms.comm_loss_delay_s=9"),
    )
    change = plan(running, new)
    assert change.restart_needed == ["alarms", "devices (with alarms:, which changed too)"]
    assert not change.devices and not change.stop and not change.start
