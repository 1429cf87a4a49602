"""The status page's rendering of one snapshot: alarms (the ``alarms`` key, when an agent has
it) on top in words, values rounded with units, coded values in words, quality spelled out."""

from __future__ import annotations

from agent.statuspage.render import fmt_value, sections

SNAP = {
    "site": "s", "gateway": "g", "uptime_s": 1.0, "uplink": {"connected": True}, "buffer": {},
    "connections": [{"name": "rtu:/dev/ttyUSB0", "connected": True, "ok": True, "polls": 1,
                     "polls_failed": 0, "overruns": 0, "last_error": None}],
    "alarms": [  # the shape of agent.alarms.runtime.status_entry
        {"id": "p_out.low", "point": "p_out", "rule": "low", "code": "LOW_OUTLET", "priority": "high",
         "state": "unack_active", "active": True, "value": 0.1234, "limit": 0.2, "unit": "MPa",
         "raised_at": 1796432400000},
        {"id": "flow.high", "point": "flow", "rule": "high", "code": "BURST", "priority": "high",
         "state": "normal", "active": False, "value": 50.0, "limit": 40.0, "unit": "m³/h",
         "raised_at": 1796430000000},
    ],
    "points": {
        "pump1.state": {"value": 4, "q": "g", "unit": None, "text": "fault", "reason": None},
        "p_out": {"value": 0.41234, "q": "g", "unit": "MPa", "text": None, "reason": None},
        "flow": {"value": None, "q": "c", "unit": "m³/h", "text": None, "reason": "timeout"},
    },
    "devices": [{"name": "vfd1", "description": "", "profile": "invt-gd200a",
                 "connection": "rtu:/dev/ttyUSB0", "points": ["pump1.state", "p_out", "flow"]}],
}  # fmt: skip


def test_alarms_values_words_and_quality() -> None:
    out = sections(SNAP, None, 0.0)
    assert (
        "LOW_OUTLET on p_out: 0.123 MPa (limit 0.200 MPa), high, active, not acknowledged, since "
        "2026-12-05 01:00:00 UTC"
    ) in out["alarms"]
    assert "BURST" not in out["alarms"]  # back to normal and acknowledged: nothing to show
    dev = out["devices"]
    assert "0.412 MPa" in dev and ">fault<" in dev and "comm fail: timeout" in dev
    assert (fmt_value(42.519, "Hz"), fmt_value(1234.4, "V"), fmt_value(True)) == (
        "42.5 Hz",
        "1234 V",
        "yes",
    )


def test_the_control_loops_state_and_setpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from agent.config import load_config
    from agent.control.loop import ControlLoop
    from agent.core.cache import Cache
    from agent.status import control_state
    from tests.control.rig import control_section
    from tests.tools.conftest import EXAMPLE

    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["control"] = control_section("supervisory")
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    config = load_config(site)
    assert config.control is not None
    state = control_state(ControlLoop(config.control, Cache(), {}))
    assert state is not None
    assert (state["state"], state["mode"], state["setpoint_mpa"]) == ("starting", "auto", 0.4)
    html = sections({**SNAP, "control": state}, None, 0.0)["control"]
    assert "starting (auto)" in html and "0.400 MPa" in html


def test_a_modbus_exception_reason_is_given_in_words() -> None:
    from agent.tools.reasons import in_words

    assert in_words("modbus:exception:11").startswith(
        "modbus:exception:11 (gateway target device failed to respond"
    )
    assert in_words("modbus:exception:99") == "modbus:exception:99"  # not in §7: as it is
    assert in_words("timeout") == "timeout" and in_words(None) == "no value"


def test_a_bit_is_written_in_the_words_read_shows_it_in() -> None:
    import pytest

    from agent.config import load_config
    from agent.tools.target import TargetError, configured_points
    from agent.tools.write import parse_value
    from tests.procs import EXAMPLE

    (horn,) = configured_points(load_config(EXAMPLE), ["cabinet.horn_off"])
    said = {w: parse_value(horn, w) for w in ("yes", "No", "1", "0", "on", "off", "true")}
    assert said == {"yes": True, "No": False, "1": True, "0": False, "on": True, "off": False,
                    "true": True}  # fmt: skip
    with pytest.raises(TargetError, match="write 1/0, yes/no, true/false or on/off"):
        parse_value(horn, "maybe")
