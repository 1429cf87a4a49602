"""`hil-sim report` on a real run: simulator (truth file, and the uplink capture with
``--capture-uplink``), agent, private Mosquitto; a door opened by the scenario, the broker stopped for a while, then the report.

The figures are checked against what the run did, not against numbers written down: coverage ≈ 1
while healthy, the broker's outage is an uplink gap with the outage's length and its samples come
as backfill, the DOOR_OPEN alarm is raised after the scenario's door event, the expectations
pass and fail as they must, and the CLI's exit code follows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hil_sim.report import make_report
from hil_sim.report.uplink import load_uplink
from hil_sim.truth import load_truth
from tests.procs import ROOT, AgentProc, Mosquitto, Simulator, wait_for

pytestmark = pytest.mark.e2e

SCENARIO_RUN = "- {at: 12, cmd: set, name: door, value: true}\n"
"""What the simulator plays (the v1 list format; its one event is named ``0:set``)."""

EXPECT = """
name: door-and-outage
expect:
  - {alarm: DOOR_OPEN, raised_within_s: 20, after: "0:set"}
  - {no_alarm: FLOOD}
  - {truth: p_out, above: 0.2, within_s: 30}
  - {truth: p_out, below: 0.62, always: true}
  - {uplink: data_loss, max: 0}
  - {uplink: coverage, point: p_out, min_fraction: 0.9}
  - {control: starts_per_hour, max: 20}
"""
FAILING = EXPECT + "  - {no_alarm: DOOR_OPEN}\n"


def _telemetry_after(path: Path, t_ms: int) -> bool:
    try:
        up = load_uplink(path)
    except ValueError:  # a line the capture is writing right now
        return False
    return any(s.r > t_ms for ss in up.samples.values() for s in ss)


def test_report_of_a_real_run_with_a_broker_outage(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(SCENARIO_RUN)
    (tmp_path / "expect.yaml").write_text(EXPECT)
    (tmp_path / "failing.yaml").write_text(FAILING)
    site = "rep-" + uuid.uuid4().hex[:8]
    broker = Mosquitto(tmp_path).start()
    capture_path = tmp_path / "uplink.jsonl"  # recorded by the simulator's process itself
    sim = Simulator(
        tmp_path,
        "--scenario",
        str(tmp_path / "run.yaml"),
        "--capture-uplink",
        str(capture_path),
        "--broker",
        f"127.0.0.1:{broker.port}",
        "--site",
        site,
    ).start()
    agent = AgentProc(tmp_path, broker.port, sim, site).start()
    try:
        wait_for(lambda: _telemetry_after(capture_path, 0), 60, "the agent's first telemetry")
        time.sleep(15.0)  # healthy: door opens at plant 12 s, DOOR_OPEN after its 1 s delay
        healthy_until = time.time()
        broker.stop()
        outage_ms = int(time.time() * 1000)
        time.sleep(8.0)
        broker.start()
        back_ms = int(time.time() * 1000)
        wait_for(lambda: _telemetry_after(capture_path, back_ms + 3000), 60, "telemetry again")
    finally:
        agent.stop()
        sim.stop()  # and its capture
        broker.stop()
    truth = load_truth(sim.truth)
    assert truth.end is not None and truth.end["dropped"] == 0
    skip = None  # the window starts at the agent's birth
    until = healthy_until - truth.start_ms / 1000.0
    healthy = make_report(sim.truth, capture_path, tmp_path / "healthy", until_s=until)
    # coverage ≈ 1: every poll of the window uplinked but at most the first (the window opens at
    # the agent's birth, its first poll may come a second later)
    missing = {p: f.expected - f.good for p, f in healthy.figures.points.items()}
    assert missing["p_out"] <= 1 and missing["flow"] <= 1, missing
    assert sorted(missing.values())[len(missing) // 2] <= 1, "median of a healthy run"
    assert healthy.figures.points["p_out"].expected >= 10
    # healthy: telemetry kept arriving (a loaded CI machine may stall the agent a few seconds)
    assert all(b - a < 6000 for a, b in healthy.figures.arrival_gaps), healthy.figures.arrival_gaps
    assert healthy.figures.latency_s, "changes of bits and codes were timed to their uplink"
    assert 0 < max(healthy.figures.latency_s) < 10

    rep = make_report(
        sim.truth, capture_path, tmp_path / "rep", tmp_path / "expect.yaml", skip_s=skip
    )
    fig = rep.figures
    # the outage: one uplink gap about as long as the broker was down (outage_ms .. back_ms)
    outage = [(a, b) for a, b in fig.arrival_gaps if a <= outage_ms + 1000 and b >= back_ms - 1000]
    assert len(outage) == 1, (fig.arrival_gaps, outage_ms, back_ms)
    a, _ = outage[0]
    assert a >= outage_ms - 3000, (a, outage_ms)  # the last telemetry before the broker stopped
    up = load_uplink(capture_path)
    backfilled = [s for ss in up.samples.values() for s in ss if s.hist]
    first_live = min(s.t for ss in up.samples.values() for s in ss if not s.hist)
    # backfill is the outage, or the agent's first polls taken before its first session was up
    assert any(outage_ms <= s.t <= back_ms for s in backfilled), "the outage was backfilled"
    late = [s for s in backfilled if s.t > first_live + 2000]
    assert all(outage_ms - 2000 <= s.t <= back_ms + 30_000 for s in late), late[:3]
    assert fig.points["p_out"].coverage > 0.9  # store-and-forward: the outage's samples came later
    assert fig.data_loss_events == 0 and fig.seq_missing == 0
    assert fig.index_min is not None and 0.0 < fig.index_min < 0.4
    assert fig.time_in_band is not None and 0.0 <= fig.time_in_band <= 1.0
    assert [o.passed for o in rep.outcomes] == [True] * 7, rep.outcomes
    door = rep.outcomes[0].measured
    assert door.startswith("active after ")
    assert 1.0 <= float(door.split()[2]) < 20.0  # detection: on_delay 1 s + poll + publish
    pngs = sorted(p.name for p in rep.plots)
    assert pngs == ["flow_pumps.png", "pressures.png", "uplink.png"]
    assert all(p.stat().st_size > 20_000 for p in rep.plots)
    page = rep.html.read_text()
    assert "PASS" in page and "pressures.png" in page and "DOOR_OPEN" in page

    # the CLI: exit 0 when every expectation holds, 1 when one fails
    cli = [
        sys.executable,
        "-m",
        "hil_sim.cli",
        "report",
        "--truth",
        str(sim.truth),
        "--uplink",
        str(capture_path),
        "--no-plots",
    ]
    ok = subprocess.run(
        [*cli, "--scenario", str(tmp_path / "expect.yaml"), "--out", str(tmp_path / "cli-ok")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(
        [*cli, "--scenario", str(tmp_path / "failing.yaml"), "--out", str(tmp_path / "cli-bad")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL expect[7]" in bad.stdout and "raised 1 time(s)" in bad.stdout
    summary = json.loads((tmp_path / "cli-bad" / "report.json").read_text())
    assert summary["passed"] is False


def test_check_runs_broker_simulator_agent_and_reports(tmp_path: Path) -> None:
    scenario = tmp_path / "door.yaml"
    scenario.write_text("- {at: 2, cmd: set, name: door, value: true}\n")
    out = tmp_path / "check"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hil_sim.cli",
            "check",
            "--scenario",
            str(scenario),
            "--seconds",
            "20",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    logs = "".join(f"\n--- {p.name}\n" + p.read_text()[-1500:] for p in sorted(out.glob("*.log")))
    assert run.returncode == 0, run.stdout + run.stderr + logs
    assert "PASS: report in" in run.stdout  # a v1 scenario expects nothing
    summary = json.loads((out / "report.json").read_text())
    assert summary["figures"]["points"]["p_out"]["coverage"] > 0.8, summary["figures"]["points"][
        "p_out"
    ]
    assert sorted(p.name for p in out.glob("*.png")) == [
        "flow_pumps.png",
        "pressures.png",
        "uplink.png",
    ]
    codes = [e.get("code") for e in load_uplink(out / "uplink.jsonl").events]
    assert "DOOR_OPEN" in codes, (codes, logs)  # the agent may take seconds to start: 20 s run
    truth = load_truth(out / "truth.jsonl")
    assert [e["name"] for e in truth.events] == ["0:set"]
    assert abs(truth.tod_at(truth.start_ms) - 10 * 3600) < 60  # no start_time: check's 10:00


def test_check_starts_the_plant_at_the_scenarios_own_time(tmp_path: Path) -> None:
    """``hil-sim check`` passed its 10:00 default over the scenario's ``start_time`` (a morning
    peak scenario ran at mid-morning demand and failed for it)."""
    scenario = tmp_path / "early.yaml"
    scenario.write_text(
        "name: early\nduration_s: 6\nstart_time: '06:45'\n"
        "events: [{at: 1, cmd: set, name_: door, value: true}]\n"
    )
    out = tmp_path / "check"
    run = subprocess.run(
        [sys.executable, "-m", "hil_sim.cli", "check", "--scenario", str(scenario), "--no-agent",
         "--no-plots", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (out / "truth.jsonl").exists(), run.stdout + run.stderr
    truth = load_truth(out / "truth.jsonl")
    assert abs(truth.tod_at(truth.start_ms) - (6 * 3600 + 45 * 60)) < 60
