"""Ground truth and report benchmark (not a test): ``python -m tests.benchmarks.truth_report
[--steps N]``.

Prints, for the simulator in-process (no servers: the plant and the register maps only):

* the event loop's cost per 50 ms step (µs) of ``Simulator.advance`` (plant and devices) and of
  the truth recorder's ``record`` (``sim.truth()``, change detection, queueing; the JSON and the
  disk are the writer thread's);
* truth file bytes per hour of run (1 state a wall second plus the changes; the recorder is fed
  a clock that moves 50 ms a step, so the steps need not run in real time);
* seconds ``make_report`` takes on that truth with a synthetic capture of every truth point
  sampled every 1 s (the uplink of the same hour), without plots and with them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hil_sim.report import make_report
from hil_sim.sim import SimOptions, Simulator


def _costs(truth: Path, steps: int) -> tuple[float, float]:
    """(advance() per step, recorder.record() per step) in s. The recorder is fed a wall clock
    that moves 50 ms a step, so the file is what an hour of real time writes."""
    from hil_sim.truth import TruthRecorder

    options = SimOptions(
        modbus_tcp_port=0,
        opcua_port=0,
        rtu_link=None,
        control_port=None,
        start_time_of_day_s=36000.0,
    )
    sim = Simulator(options, announce=lambda line: None)
    rec = TruthRecorder(truth)
    rec.start()
    t_adv = t_rec = 0.0
    wall0 = int(time.time() * 1000)
    for i in range(steps):
        a = time.perf_counter()
        sim.advance(0.05)
        b = time.perf_counter()
        rec.record(sim, wall0 + i * 50, sim.plant.t_s, sim.plant.time_of_day_s)
        t_rec += time.perf_counter() - b
        t_adv += b - a
    rec.close()
    return t_adv / steps, t_rec / steps


def _capture(truth_path: Path, out: Path) -> None:
    """An hour of uplink: every truth point as a telemetry sample every 1 s, from the states."""
    lines, seq = [], 0
    for line in truth_path.read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] != "state":
            continue
        series = {}
        for k, v in rec["values"].items():
            seq += 1
            series[k] = {"s": [[seq, rec["t"], v]]}
        body = {"gw": "gw", "stream": "telemetry", "hist": False, "series": series}
        lines.append(
            json.dumps(
                {"r": rec["t"] + 80, "topic": "p/s/gw/telemetry", "retain": False, "body": body}
            )
        )
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=72_000, help="50 ms steps (72000: 1 h)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        truth = work / "truth.jsonl"
        t0 = time.perf_counter()
        advance, record = _costs(truth, args.steps)
        wall = time.perf_counter() - t0
        plant_h = args.steps * 0.05 / 3600
        print(f"advance() per 50 ms step (plant, devices): {advance * 1e6:6.0f} µs")
        print(f"truth recorder per step, on the loop:      {record * 1e6:6.0f} µs")
        print(
            f"truth file: {truth.stat().st_size / plant_h / 1e6:.1f} MB per hour of run "
            f"({args.steps} steps in {wall:.0f} s)"
        )
        _capture(truth, work / "uplink.jsonl")
        for plots in (False, True):
            t0 = time.perf_counter()
            make_report(truth, work / "uplink.jsonl", work / "rep", plots=plots)
            print(
                f"make_report ({'with' if plots else 'no'} plots): {time.perf_counter() - t0:.1f} s"
            )


if __name__ == "__main__":
    main()
