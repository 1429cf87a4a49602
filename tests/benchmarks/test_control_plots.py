"""``agent/control/plots.py`` draws a benchmark record (synthetic here): the day on the plant's
time of day, and a record with series of different lengths refused naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.control import plots


def _record(n: int, tod: dict[str, float] | None) -> dict[str, object]:
    return {
        "t_s": [i * 0.1 for i in range(n)],
        "p_out_mpa": [0.40 + 0.001 * (i % 7) for i in range(n)],
        "sp_mpa": [0.40] * n,
        "flow_m3h": [5.0] * n,
        "freq_hz": [[40.0] * n, [40.0] * n, [0.0] * n],
        "band_mpa": 0.01,
        "title": "synthetic",
        "events": [[1.0, "+6 m³/h"]],
        "time_of_day": tod,
    }


def test_the_day_is_drawn_on_the_plants_time_of_day(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    record = _record(9001, {"tod_at_0_s": 0.0, "day_speed": 96.0})
    x, label = plots._x(record)
    assert label == "plant time of day (hh:mm)"
    assert x[4500] == pytest.approx(12.0)  # 450 s × 96 = 12 h
    path = tmp_path / "day-direct.json"
    path.write_text(json.dumps(record))
    png = plots.plot_file(path)
    assert png == tmp_path / "day-direct.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_record_with_uneven_series_is_refused_by_name(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    record = _record(50, None)
    record["sp_mpa"] = [0.40] * 49
    path = tmp_path / "step-supervisory.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"step-supervisory\.json.*lengths differ"):
        plots.plot_file(path)
