"""``hil-sim demo`` stops everything it started: on SIGHUP (the terminal closed), SIGINT (Ctrl-C)
and SIGTERM, no broker, simulator or agent is left running, the work folder is removed, and one
closing line says so.

The demo runs as a real process in a session of its own (as in a terminal of its own); its
children (mosquitto, ``hil_sim.cli run``, ``agent.cli run``) are found through /proc.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.procs import ROOT, wait_for

pytestmark = pytest.mark.timeout(150)


def _children(pid: int) -> dict[int, tuple[str, str]]:
    """Child pid → (start time in clock ticks since boot, command line) of ``pid``."""
    out: dict[int, tuple[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[1]) == pid:
            out[int(entry.name)] = (fields[19], cmdline)
    return out


def _alive(pid: int, start: str) -> bool:
    """The same process (pid and start time) still exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] == start and fields[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM], ids=str)
def test_the_demo_stops_its_children_and_cleans_up(tmp_path: Path, sig: int) -> None:
    out_path = tmp_path / "demo.out"
    kids: dict[int, tuple[str, str]] = {}
    with open(out_path, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "hil_sim.cli", "demo"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        # the whole chain is up: the agent's status reached the live view
        wait_for(lambda: " online " in out_path.read_text(), 90, "the demo to show the gateway")
        kids.update(_children(demo.pid))
        names = " ".join(cmd for _, cmd in kids.values())
        assert "mosquitto" in names and "hil_sim.cli run" in names and "agent.cli run" in names
        work = Path(re.findall(r"logs: (\S+)", out_path.read_text())[-1])
        assert work.is_dir() and work.name.startswith("pumproom-demo-")

        demo.send_signal(sig)
        code = demo.wait(60)
        deadline = time.monotonic() + 10  # reaped by the demo before it exits; slack for /proc
        while any(_alive(pid, start) for pid, (start, _) in kids.items()):
            assert time.monotonic() < deadline, f"left running: {kids}"
            time.sleep(0.2)
    finally:  # a failed run must not leave orphans behind for the rest of the suite
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for pid, (start, _) in kids.items():
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)
    assert code == 0, out_path.read_text()[-3000:]
    assert not work.exists(), f"{work} left behind"
    text = out_path.read_text()
    closing = [line for line in text.splitlines() if line.startswith("demo stopped")]
    assert closing == ["demo stopped: agent, simulator and broker are down; work folder removed"]
    assert "Traceback" not in text, text[-3000:]
