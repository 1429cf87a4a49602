"""``hil-sim demo`` stops everything it started: on SIGHUP (the terminal closed), SIGINT (Ctrl-C)
and SIGTERM, no broker, simulator or agent is left running, the work folder is removed, and one
closing line says so.

The demo runs as a real process in a session of its own (as in a terminal of its own); its
children (mosquitto, ``hil_sim.cli run``, ``agent.cli run``) are found through /proc.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
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


ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_demo_tells_the_story_on_an_80x24_terminal() -> None:
    """In a pseudo-terminal of 80×24 (the demo's controlling terminal): the complaint, the
    operator's setpoint.set with its ack and result, the recovery with its time; no line over
    80 columns, no frame over 24 lines; a real Ctrl-C (0x03 typed into the terminal) stops it."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

    def controlling_tty() -> None:  # the slave becomes the demo's terminal, as in a shell
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    demo = subprocess.Popen(
        [sys.executable, "-m", "hil_sim.cli", "demo", "--seconds", "110"],
        stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, preexec_fn=controlling_tty,
    )  # fmt: skip
    os.close(slave)
    out = b""

    def read(until: bytes, timeout_s: float) -> bool:
        nonlocal out
        deadline = time.monotonic() + timeout_s
        while until not in ANSI.sub(b"", out) and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:  # EIO: the demo closed the terminal
                    return until in ANSI.sub(b"", out)
        return until in ANSI.sub(b"", out)

    try:
        assert read(b"RECOVERED", 100), ANSI.sub(b"", out)[-3000:].decode(errors="replace")
        assert read(b"result completed", 20), ANSI.sub(b"", out)[-3000:].decode(errors="replace")
        os.write(master, b"\x03")  # Ctrl-C
        assert read(b"demo stopped", 60)
        code = demo.wait(30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        os.close(master)
    assert code == 0
    # as the terminal shows it: the cursor-home that starts each frame starts a new line
    text = ANSI.sub(b"", out.replace(b"\x1b[H", b"\n")).decode(errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    frames = out.split(b"\x1b[H")[1:]
    assert frames and max(f.count(b"\n") + 1 for f in frames[:-1]) <= 24
    for story in (
        r"COMPLAINT: top floor 0\.\d+ MPa < 0\.10 MPa service level",
        r"operator -> setpoint\.set 0\.36 MPa \(id c-demo-\w+\) sent",
        r"<- ack accepted OK \(0\.26 -> 0\.36 MPa\)",
        r"<- result completed OK",
        r"RECOVERED: top floor 0\.\d+ MPa, \d+\.\d s after the complaint",
    ):
        assert re.search(story, text), f"missing {story!r}:\n{text[-3000:]}"
    took = float(re.findall(r"(\d+\.\d) s after the complaint", text)[-1])
    assert took < 60.0  # the story's goal: well under 2 minutes
    assert "Traceback" not in text


def test_the_demo_config_passes_the_agent_check(tmp_path: Path) -> None:
    """The demo's config (example.yaml + its control: section) is valid for the agent as it is
    now: a control check added later (e.g. remote bounds vs the interlocks) shows here first."""
    from hil_sim.demo import write_config

    config = write_config(tmp_path, 0.26)
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check", "-c", str(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
