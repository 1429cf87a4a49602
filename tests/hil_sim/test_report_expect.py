"""The report's figures and `expect:` items on synthetic truth and capture files (each kind of
expectation passing and failing), the loaders' errors, and the truth recorder's bounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hil_sim.report import make_report
from hil_sim.report.expect import ExpectationError, load_scenario_expectations
from hil_sim.report.uplink import load_uplink
from hil_sim.truth import TruthRecorder, load_truth

T0 = 1_780_000_000_000  # wall ms of the first state
SITE, GW = "syn", "gw-syn"


def _truth_lines() -> list[dict[str, Any]]:
    """60 s at speed 1: a burst from 20 s to 30 s drops the outlet to 0.30 MPa and the top floor
    below the 0.10 MPa service level; pump 2 starts at 20 s and stops at 40 s."""
    lines: list[dict[str, Any]] = []
    for s in range(61):
        burst = 20 <= s < 30
        values = {
            "p_out": 0.30 if burst else 0.40,
            "setpoint": 0.40,
            "plant.p_index": 0.08 if burst else 0.25,
            "pump1.running": True,
            "pump2.running": 20 <= s < 40,
            "room.door": s >= 46,
        }
        lines.append(
            {
                "kind": "state",
                "t": T0 + s * 1000,
                "plant_s": float(s),
                "tod_s": 36000.0 + s,
                "values": values,
            }
        )
        if s == 20:
            lines.append(
                {
                    "kind": "event",
                    "t": T0 + s * 1000,
                    "plant_s": 20.0,
                    "name": "burst",
                    "description": {},
                }
            )
        if s == 30:
            lines.append(
                {
                    "kind": "event",
                    "t": T0 + s * 1000,
                    "plant_s": 30.0,
                    "name": "burst:end",
                    "description": {},
                }
            )
        if s == 35:
            lines.append(
                {
                    "kind": "event",
                    "t": T0 + s * 1000,
                    "plant_s": 35.0,
                    "name": "complaint",
                    "description": {},
                }
            )
    lines.append(
        {
            "kind": "change",
            "t": T0 + 45_500,
            "plant_s": 45.5,
            "tod_s": 36045.5,
            "values": {"room.door": True},
        }
    )
    lines.append(
        {
            "kind": "end",
            "t": T0 + 60_000,
            "plant_s": 60.0,
            "lines": 70,
            "dropped": 0,
            "truncated": False,
        }
    )
    return lines


def _msg(topic: str, r: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "r": r,
        "topic": f"pumproom/v1/{SITE}/{GW}/{topic}",
        "retain": False,
        "body": {"gw": GW, **body},
    }


def _capture_lines() -> list[dict[str, Any]]:
    """p_out every second except seqs 41..45 (evicted: one data_loss event); room.door with its
    change at 46 s; LOW_OUTLET raised at 23 s, cleared at 33 s; setpoint.set answered OK at 38 s;
    one duplicate delivery."""
    out = [_msg("status", T0, {"state": "online", "ts": T0})]
    seq = 100
    for s in range(61):
        seq += 1
        if 41 <= s <= 45:
            continue
        t = T0 + s * 1000
        p = 0.30 if 20 <= s < 30 else 0.40
        series = {
            "p_out": {"u": "MPa", "s": [[seq * 2, t, p + 0.001]]},
            "room.door": {"s": [[seq * 2 + 1, t, s >= 46]]},
        }
        out.append(
            _msg("telemetry", t + 200, {"stream": "telemetry", "hist": False, "series": series})
        )
        if s == 10:
            out.append(out[-1])  # the broker's redelivery
    out.append(
        _msg(
            "event",
            T0 + 47_000,
            {
                "events": [
                    {
                        "seq": 1,
                        "type": "data_loss",
                        "t": T0 + 47_000,
                        "stream": "telemetry",
                        "seq_range": [142 * 2, 146 * 2 + 1],
                        "count": 10,
                        "reason": "buffer_full",
                    }
                ]
            },
        )
    )
    out.append(
        _msg(
            "event",
            T0 + 23_100,
            {
                "events": [
                    {
                        "seq": 2,
                        "type": "alarm",
                        "t": T0 + 23_000,
                        "code": "LOW_OUTLET",
                        "state": "active",
                    }
                ]
            },
        )
    )
    out.append(
        _msg(
            "event",
            T0 + 33_100,
            {
                "events": [
                    {
                        "seq": 3,
                        "type": "alarm",
                        "t": T0 + 33_000,
                        "code": "LOW_OUTLET",
                        "state": "cleared",
                    }
                ]
            },
        )
    )
    out.append(
        _msg(
            "cmd/req",
            T0 + 35_500,
            {"v": 1, "id": "c-1", "method": "setpoint.set", "params": {"value": 0.45}},
        )
    )
    out.append(
        _msg("cmd/res", T0 + 35_600, {"id": "c-1", "phase": "ack", "code": "OK", "ts": T0 + 35_600})
    )
    out.append(
        _msg(
            "cmd/res",
            T0 + 38_000,
            {"id": "c-1", "phase": "result", "code": "OK", "ts": T0 + 38_000},
        )
    )
    out.append(
        {
            "r": T0 + 50_000,
            "topic": f"pumproom/v1/{SITE}/{GW}/telemetry",
            "retain": False,
            "body": {"_b64": "2Nl3"},
        }
    )
    return out


CASES = [  # (item, passes)
    ({"alarm": "LOW_OUTLET", "raised_within_s": 5, "after": "burst"}, True),
    ({"alarm": "LOW_OUTLET", "raised_within_s": 2, "after": "burst"}, False),
    ({"alarm": "LOW_OUTLET", "cleared_within_s": 5, "after": "burst:end"}, True),
    ({"alarm": "LOW_SUCTION", "cleared_within_s": 60}, False),
    ({"no_alarm": "LOW_SUCTION"}, True),
    ({"no_alarm": "LOW_OUTLET"}, False),
    ({"truth": "index_pressure_mpa", "above": 0.2, "within_s": 5, "after": "burst:end"}, True),
    ({"truth": "plant.p_index", "above": 0.2, "within_s": 5, "after": "burst"}, False),
    ({"truth": "outlet_pressure_mpa", "below": 0.45, "always": True}, True),
    ({"truth": "p_out", "above": 0.35, "always": True}, False),
    ({"uplink": "data_loss", "max": 1}, True),
    ({"uplink": "data_loss", "max": 0}, False),
    ({"uplink": "coverage", "point": "p_out", "min_fraction": 0.9, "interval_s": 1.0}, True),
    ({"uplink": "coverage", "point": "p_out", "min_fraction": 0.95, "interval_s": 1.0}, False),
    ({"control": "time_in_band", "band_mpa": 0.01, "min_fraction": 0.8}, True),
    ({"control": "time_in_band", "band_mpa": 0.01, "min_fraction": 0.9}, False),
    ({"control": "starts_per_hour", "max": 1}, True),
    ({"control": "starts_per_hour", "max": 0}, False),
    ({"command": "setpoint.set", "result": "OK", "within_s": 5, "after": "complaint"}, True),
    ({"command": "setpoint.set", "result": "OK", "within_s": 2, "after": "complaint"}, False),
    ({"command": "alarm.ack", "result": "OK", "within_s": 60}, False),
    ({"alarm": "LOW_OUTLET", "raised_within_s": 60, "after": "no-such-event"}, False),
]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    truth, up, scen = tmp_path / "truth.jsonl", tmp_path / "uplink.jsonl", tmp_path / "scen.yaml"
    truth.write_text("".join(json.dumps(x) + "\n" for x in _truth_lines()))
    up.write_text("".join(json.dumps(x) + "\n" for x in _capture_lines()))
    items = "".join(f"  - {json.dumps(item)}\n" for item, _ in CASES)
    scen.write_text(f"name: synthetic\nduration_s: 60\nevents: []\nexpect:\n{items}")
    return truth, up, scen


def test_each_expectation_kind_passes_and_fails(
    files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    truth, up, scen = files
    rep = make_report(truth, up, tmp_path / "out", scen, plots=False)
    verdicts = [(o.item, o.passed, o.measured) for o in rep.outcomes]
    assert [v[1] for v in verdicts] == [passes for _, passes in CASES], verdicts
    assert rep.outcomes[0].measured == "active after 3.0 s"  # time to detection
    assert rep.outcomes[-1].measured.startswith("no event 'no-such-event'")
    assert not rep.passed and rep.html.exists()
    assert (
        "FAIL" in rep.html.read_text()
        and json.loads((tmp_path / "out" / "report.json").read_text())["passed"] is False
    )


def test_figures_of_the_synthetic_run(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    truth, up, _ = files
    fig = make_report(truth, up, tmp_path / "out", plots=False).figures
    p_out = fig.points["p_out"]
    assert p_out.good == 56 and p_out.interval_s == 1.0
    assert p_out.gaps == [(T0 + 40_000, T0 + 46_000)]  # 6 s without a sample: > 3 intervals
    assert p_out.error_max == pytest.approx(0.001)
    assert fig.seq_missing == 10 and fig.seq_explained == 10  # evicted, and said so
    assert fig.data_loss_events == 1 and fig.data_loss_samples == 10
    assert fig.points["room.door"].latency_s == [
        pytest.approx(0.7)
    ]  # changed 45.5 s, arrived 46.2 s
    assert fig.time_in_band == pytest.approx(51 / 61)
    assert fig.starts == {"pump1": 0, "pump2": 1, "pump3": 0} and fig.max_starts_in_hour == 1
    assert fig.index_min == 0.08 and fig.index_below_service_s == 10.0
    assert load_uplink(up).duplicates == 2  # both series of the redelivered batch
    assert fig.undecoded == 1  # the CBOR message: counted, said in the page, not guessed at


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ({"alarm": "X", "raised_within_s": 5, "within": 3}, "expect[1]: unknown key(s) ['within']"),
        ({"alarms": "X"}, "expect[1]: no kind key"),
        ({"truth": "p_out", "above": 0.3}, "expect[1]: a truth item needs within_s or always"),
        ({"uplink": "latency", "max": 1}, "expect[1]: unknown uplink check 'latency'"),
        ({"uplink": "coverage", "point": "p_out"}, "expect[1]: missing key(s) ['min_fraction']"),
        (
            {"alarm": "X", "raised_within_s": 5, "cleared_within_s": 5},
            "expect[1]: alarm: needs exactly one of",
        ),
    ],
)
def test_a_malformed_item_names_file_and_index(
    tmp_path: Path, item: dict[str, Any], says: str
) -> None:
    scen = tmp_path / "bad.yaml"
    scen.write_text(f"name: bad\nexpect:\n  - {{no_alarm: FLOOD}}\n  - {json.dumps(item)}\n")
    with pytest.raises(ExpectationError) as err:
        load_scenario_expectations(scen)
    assert str(err.value).startswith(f"{scen}: ") and says in str(err.value)


def test_a_v1_scenario_has_no_expectations(tmp_path: Path) -> None:
    scen = tmp_path / "v1.yaml"
    scen.write_text("- {at: 1, cmd: clear_faults}\n")
    assert load_scenario_expectations(scen).expect == []


def test_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    truth = tmp_path / "t.jsonl"
    truth.write_text(json.dumps(_truth_lines()[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=rf"{truth}:2: not a truth line"):
        load_truth(truth)
    up = tmp_path / "u.jsonl"
    up.write_text(
        '{"r": 1, "topic": "a/b/c/telemetry", "retain": false, "body": {"series": {"p": {"s": [["x"]]}}}}\n'
    )
    with pytest.raises(ValueError, match=rf"{up}:1: not an uplink capture record"):
        load_uplink(up)


class _Source:
    def __init__(self) -> None:
        self.event_log: list[tuple[int, float, str, dict[str, Any]]] = []
        self.values: dict[str, bool | int | float] = {"p_out": 0.4, "pump1.running": False}

    def truth(self) -> dict[str, bool | int | float]:
        return dict(self.values)


def test_recorder_states_changes_events_and_end(tmp_path: Path) -> None:
    src, path = _Source(), tmp_path / "truth.jsonl"
    rec = TruthRecorder(path, every_s=1.0)
    rec.start()
    for i in range(40):  # 2 s in 50 ms steps
        t = T0 + i * 50
        src.values["p_out"] = 0.4 + i * 1e-4  # a float: only in states
        src.values["pump1.running"] = i >= 10
        if i == 5:
            src.event_log.append((t, i * 0.05, "trip", {"fault": "drive_trip"}))
        rec.record(src, t, i * 0.05, 36000.0 + i * 0.05)
    rec.close()
    truth = load_truth(path)
    assert [s["t"] for s in truth.states] == [T0, T0 + 1000]
    assert [(c["t"], c["values"]) for c in truth.changes] == [(T0 + 500, {"pump1.running": True})]
    assert [(e["name"], e["t"]) for e in truth.events] == [("trip", T0 + 250)]
    assert truth.end == {
        "kind": "end",
        "t": T0 + 1950,
        "plant_s": 1.95,
        "lines": 5,
        "dropped": 0,
        "truncated": False,
    }


def test_recorder_bounds_drop_and_count(tmp_path: Path) -> None:
    src = _Source()
    rec = TruthRecorder(tmp_path / "truth.jsonl", every_s=0.05, max_bytes=500)
    rec.start()
    for i in range(200):
        if i == 150:
            src.event_log.append((T0, 0.0, "late", {}))
        rec.record(src, T0 + i * 50, i * 0.05, 0.0)
    rec.close()
    truth = load_truth(tmp_path / "truth.jsonl")
    assert truth.end is not None and truth.end["truncated"] is True
    assert truth.end["dropped"] == 200 - len(truth.states) > 150
    assert [e["name"] for e in truth.events] == ["late"]  # events pass the size bound


def test_every_shipped_scenario_has_expectations_the_report_understands() -> None:
    from hil_sim.scenario import shipped_names

    names = shipped_names()
    assert "normal-day" in names
    for name in names:
        scen = load_scenario_expectations(
            name
        )  # by shipped name; raises on an item it cannot check
        assert scen.name and (scen.expect or name == "example"), name


def test_a_scenario_event_the_simulator_refused_fails_the_report(tmp_path: Path) -> None:
    """A refused event (``NAME:failed`` in the truth) reported PASS before: the run did not
    play the scenario as written (newcomer trial)."""
    truth, up = tmp_path / "truth.jsonl", tmp_path / "uplink.jsonl"
    refused = {"kind": "event", "t": T0 + 5000, "plant_s": 5.0, "name": "0:set:failed",
               "description": {"error": "bad setpoint=5.0: outside 0.1..0.8 MPa"}}  # fmt: skip
    truth.write_text("".join(json.dumps(x) + "\n" for x in [*_truth_lines(), refused]))
    up.write_text("".join(json.dumps(x) + "\n" for x in _capture_lines()))
    rep = make_report(truth, up, tmp_path / "out", plots=False)
    assert not rep.passed
    (o,) = rep.outcomes
    assert o.item == {"event": "0:set:failed"} and "outside 0.1..0.8 MPa" in o.measured
