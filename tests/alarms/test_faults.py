"""Fault maps: vendor codes to the common causes, vendor code kept; the shipped maps load."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.alarms.faults import Cause, FaultMapError, load_fault_map
from agent.config.checks_alarms import SHIPPED_FAULTMAPS, fault_map_path


@pytest.mark.parametrize("path", sorted(SHIPPED_FAULTMAPS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_map_loads_and_cites_its_manual(path: Path) -> None:
    m = load_fault_map(path)
    assert m.entries
    assert "[S" in path.read_text() or "manual" in path.read_text().lower()


def test_drive_code_register() -> None:
    m = load_fault_map(SHIPPED_FAULTMAPS / "invt_gd200a.yaml")
    assert m.decode(0) == []
    (f,) = m.decode(10)
    assert (f.cause, f.vendor) == (Cause.UNDERVOLTAGE, "UV")
    (f,) = m.decode(999)
    assert (f.cause, f.vendor) == (Cause.UNKNOWN, "999")  # an unknown fault is still a fault


def test_cabinet_bitmap_gives_one_fault_per_set_bit() -> None:
    m = load_fault_map(SHIPPED_FAULTMAPS / "wilo_cc_faults.yaml")
    faults = m.decode((1 << 4) | (1 << 6) | (1 << 15))
    assert [(f.cause, f.vendor) for f in faults] == [
        (Cause.DRY_RUN, "bit 4"),
        (Cause.PUMP_FAULT, "bit 6"),
        (Cause.UNKNOWN, "bit 15"),
    ]


def test_analyser_status_word_normal_is_one() -> None:
    m = load_fault_map(SHIPPED_FAULTMAPS / "xylem_cl500_status.yaml")
    assert m.decode(1) == []
    assert m.decode(4)[0].cause is Cause.CALIBRATION


def test_a_map_beside_the_config_wins_and_a_bad_one_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "faultmaps").mkdir()
    own = tmp_path / "faultmaps" / "invt_gd200a.yaml"
    own.write_text("encoding: code\nnone: 0\ncodes: {10: {cause: nonsense, vendor: UV}}\n")
    assert fault_map_path("invt_gd200a", tmp_path) == own
    with pytest.raises(FaultMapError, match=r"invt_gd200a\.yaml"):
        load_fault_map(own)
    assert fault_map_path("no_such", tmp_path) is None
