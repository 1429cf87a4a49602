"""``hil-sim check``: one command from a scenario to its report and verdict.

Starts a private Mosquitto on a free loopback port, the simulator (``hil-sim run`` with the
scenario and a truth file), an uplink capture of the site, and the agent (``pumproom-agent run``
on ``config/example.yaml`` or ``--agent-config``, every device pointed at the simulator by
transport); runs for the scenario's ``duration_s`` (plant seconds ÷ speed, or ``--seconds``);
stops agent, capture, simulator and broker in that order; writes the report
(:func:`hil_sim.report.make_report`) and returns 0 when every expectation holds, 1 otherwise.
The agent runs only as a process (``hil_sim`` never imports ``agent``). With ``--no-agent`` the
gateway under test is the tester's: it must publish to the printed broker with ``--site``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from hil_sim.demo import EXAMPLE, ROOT, _free_port, _stop_all, device_overrides, mosquitto_binary
from hil_sim.report import Report, make_report
from hil_sim.report.expect import load_scenario_expectations
from hil_sim.report.uplink import UplinkCapture

DEFAULT_START = "10:00"
"""Plant time of day when neither ``--start-time`` nor the scenario gives one: mid-morning
demand, enough to run a pump (the calibrated night draws ~0.14 m³/h)."""


def _wait_log(path: Path, text: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        log = path.read_text(errors="replace")
        if text in log:
            return log
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args!r} not ready ({text!r} not in {path}):\n{log[-1500:]}")
        time.sleep(0.1)


def run_check(
    scenario: Path | None,
    out: Path,
    seconds: float | None = None,
    speed: float | None = None,
    start_time: str | None = None,
    agent_config: Path | None = EXAMPLE,
    site: str | None = None,
    say: object = print,
    plots: bool = True,
) -> Report:
    """Run a scenario end to end and write the report into ``out`` (see the module docstring).

    Raises:
        RuntimeError: a process did not start (the message names it and quotes its log).
        ValueError: no duration (neither ``seconds`` nor the scenario's ``duration_s``), or a
            malformed scenario/expectation (names the file and item).
        OSError: a file or port cannot be used.
    """
    assert callable(say)
    scen = load_scenario_expectations(scenario) if scenario else None
    if seconds is None:
        if scen is None or not scen.duration_s:
            raise ValueError("give --seconds, or a scenario with duration_s")
        seconds = scen.duration_s / (speed or scen.speed or 1.0)
    site = site or "check-" + uuid.uuid4().hex[:8]
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hil-sim-check-"))
    broker_port, ua_port, status_port = _free_port(), _free_port(), _free_port()
    truth, uplink, rtu = out / "truth.jsonl", out / "uplink.jsonl", str(work / "ttyRTU0")
    for stale in (truth, uplink):
        stale.unlink(missing_ok=True)
    (work / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\n"
    )
    procs: list[subprocess.Popen[bytes]] = []
    capture: UplinkCapture | None = None
    logs = {n: open(out / f"{n}.log", "wb") for n in ("mosquitto", "sim", "agent")}
    try:
        procs.append(
            subprocess.Popen(
                [mosquitto_binary(), "-c", str(work / "mosquitto.conf")],
                stdout=logs["mosquitto"],
                stderr=subprocess.STDOUT,
            )
        )
        sim_args = [
            sys.executable,
            "-m",
            "hil_sim.cli",
            "run",
            "--modbus-tcp-port",
            "0",
            "--opcua-port",
            str(ua_port),
            "--rtu-link",
            rtu,
            "--control-port",
            "0",
            "--truth",
            str(truth),
            "--log-level",
            "WARNING",
        ]
        if start_time is None and (scen is None or scen.start_time is None):
            start_time = DEFAULT_START  # a scenario's own start_time wins (hil-sim run)
        if start_time is not None:
            sim_args += ["--start-time", start_time]
        if scenario:
            sim_args += ["--scenario", str(scenario)]
        if speed:
            sim_args += ["--speed", str(speed)]
        procs.append(subprocess.Popen(sim_args, stdout=logs["sim"], stderr=subprocess.STDOUT))
        sim_log = _wait_log(out / "sim.log", "control ready", 60, procs[-1])
        tcp_port = int(sim_log.split("modbus-tcp ready on 127.0.0.1:")[1].split()[0])
        capture = UplinkCapture("127.0.0.1", broker_port, site, uplink).start(timeout_s=30)
        if agent_config is not None:
            cmd = [sys.executable, "-m", "agent.cli", "run", "-c", str(agent_config)]
            sets = [
                *device_overrides(agent_config, tcp_port, rtu, ua_port),
                f"site.id={site}",
                f"uplink.broker=mqtt://127.0.0.1:{broker_port}",
                f"buffer.path={work / 'buffer.sqlite'}",
                f"status.listen=127.0.0.1:{status_port}",
            ]
            for s in sets:
                cmd += ["--set", s]
            procs.append(
                subprocess.Popen(cmd, stdout=logs["agent"], stderr=subprocess.STDOUT, cwd=ROOT)
            )
        say(f"check: broker 127.0.0.1:{broker_port}, site {site}, running {seconds:.0f} s …")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args!r} exited with {p.returncode}; logs in {out}")
            time.sleep(0.5)
    finally:
        if len(procs) == 3:  # the agent first: its clean shutdown reaches the capture
            procs[2].send_signal(signal.SIGTERM)
            try:
                procs[2].wait(30)
            except subprocess.TimeoutExpired:
                procs[2].kill()
        time.sleep(0.5)
        if capture is not None:
            capture.stop()
        _stop_all(procs)
        for f in logs.values():
            f.close()
        shutil.rmtree(work, ignore_errors=True)
    return make_report(truth, uplink, out, scenario, plots=plots)
