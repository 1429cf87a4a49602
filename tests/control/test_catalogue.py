"""The loop's ``ctl.*`` telemetry points reach the point catalogue (meta) when ``control:`` is
configured, in the contract's shape, and the events it raises map to contract events."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agent import contract, schemas
from agent.catalogue import point_meta
from agent.config import load_config
from agent.control.events import _TABLE, to_contract
from agent.control.state import CATALOGUE, catalogue_points
from tests.control.rig import control_section, site_yaml

ROOT = Path(__file__).resolve().parents[2]


def _meta(points: list[dict]) -> dict:
    msg = contract.meta(contract.Identity("s", "g", 3), points, ts_ms=1732870800125)
    return json.loads(msg)


def _config(tmp: Path, control: dict | None):
    data = site_yaml(15020, str(tmp / "tty"), control)
    data["buffer"]["path"] = str(tmp / "b.sqlite")
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path)


def test_ctl_points_in_meta_with_control(tmp_path: Path) -> None:
    cfg = _config(tmp_path, control_section("direct"))
    points = cfg.catalogue() + catalogue_points(cfg.control)
    names = [p.name for p in points]
    assert names[-len(CATALOGUE) :] == [c[0] for c in CATALOGUE]
    assert len(set(names)) == len(names)
    ctl = {p.name: p for p in points if p.name.startswith("ctl.")}
    assert ctl["ctl.sp"].unit == "MPa" and ctl["ctl.mv"].unit == "Hz"
    assert not any(p.writable for p in ctl.values())
    schemas.validate("meta", _meta([point_meta(p) for p in points]))


def test_no_ctl_points_without_control(tmp_path: Path) -> None:
    cfg = _config(tmp_path, None)
    assert catalogue_points(cfg.control) == []


def test_every_listed_event_kind_is_a_valid_contract_event() -> None:
    for kind in [*_TABLE, "interlock", "stage_on", "stage_off", "pump_lost", "sleep", "started"]:
        body = to_contract({"type": f"control.{kind}", "t": 1732870800125, "pump": 1,
                            "name": "low_suction", "raised": True, "cmd_id": "c-1",
                            "by": "ops", "from": 0.40, "to": 0.45})  # fmt: skip
        msg = contract.events(contract.Identity("s", "g", 3), [(7, body)], sent_ms=1732870800200)
        schemas.validate("event", json.loads(msg))
