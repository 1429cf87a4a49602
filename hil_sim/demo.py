"""``hil-sim demo``: the pump room's story on one machine, for a person to watch.

Starts a private Mosquitto on a free loopback port (installing the Debian package first when the
binary is missing and we are root), the simulator (evening, 17:00), and the agent with local
control (``config/example.yaml`` and its supervisory ``control:`` section, written to the work
folder) pointed at both. It shows, on one 80×24 screen redrawn in place, the pump room in words as
the platform receives it over MQTT, and the top-floor pressure the resident feels (simulator
truth). Then the story (:mod:`hil_sim.demo_story`): an evening peak drops the top floor below the
service level, the demo plays the platform operator and sends ``setpoint.set`` over MQTT, shows
its ack and result, and the time from the complaint until the top floor has recovered. Ctrl-C
(or SIGTERM, or closing the terminal: SIGHUP) stops everything and removes the work folder.

It talks to the agent only as a process and over MQTT (``hil_sim`` never imports ``agent``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from hil_sim.demo_platform import LiveView
from hil_sim.demo_story import Story, StoryParams
from hil_sim.demo_view import render

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    """Path of the mosquitto broker; installs Debian's package when missing and we are root.

    Raises:
        SystemExit: no broker and no way to install one.
    """
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("mosquitto not found: installing the Debian package …", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "mosquitto"], check=True, env=env)
        return "/usr/sbin/mosquitto"
    raise SystemExit("mosquitto is not installed: apt-get install mosquitto (as root), then retry")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals that stop the demo in order: Ctrl-C, ``kill``/systemd, and the terminal closing
(SIGHUP goes to the terminal's foreground process group; the children run in sessions of their
own and never see it, so without this they would be left running as orphans)."""

STOP_WAIT_S = 15.0
"""How long each child gets to stop after SIGTERM before it is killed, s (the agent's own stop
is bounded well below this: flush, PUBACKs, offline status)."""


def run_demo(duration_s: float | None = None) -> int:
    """Run the demo until Ctrl-C, SIGTERM or SIGHUP (or for ``duration_s`` seconds); returns the
    exit code (0 after a stop on request, 1 when a child exited by itself).

    The children run in sessions of their own, so a signal reaches only this process, which then
    stops them in order (agent, simulator, broker): the agent says "offline" before the broker
    goes. After a clean stop the work folder (logs, the demo's buffer) is removed and one closing
    line says so; when a child failed or had to be killed the folder is kept and named.
    """
    before = {sig: signal.signal(sig, signal.default_int_handler) for sig in STOP_SIGNALS}
    work = Path(tempfile.mkdtemp(prefix="pumproom-demo-"))
    procs: list[subprocess.Popen[bytes]] = []
    logs = {name: open(work / f"{name}.log", "wb") for name in ("mosquitto", "sim", "agent")}
    code = 1  # stays 1 when the start fails (SystemExit: no broker, simulator not ready)
    try:
        code = _run(work, logs, procs, duration_s)
    except KeyboardInterrupt:
        code = 0
    finally:
        for sig in STOP_SIGNALS:  # a second Ctrl-C (or the HUP after a TERM) must not cut
            signal.signal(sig, signal.SIG_IGN)  # the orderly stop short
        clean = _stop_all(procs)
        for f in logs.values():
            f.close()
        if sys.stdout.isatty():
            _say("")  # below the live view's last line
        if code == 0 and clean:
            shutil.rmtree(work, ignore_errors=True)
            _say("demo stopped: agent, simulator and broker are down; work folder removed")
        else:
            _say(f"demo stopped: agent, simulator and broker are down; logs kept in {work}")
        for sig, handler in before.items():
            signal.signal(sig, handler)
    return code


SETPOINT_LINE = "\n  setpoint_mpa: 0.40\n"
"""The local setpoint of config/example.yaml's ``control:`` section (supervisory: the cabinet's PI
runs the pumps, the agent writes the setpoint, with the README's remote bounds), which the demo
replaces with its plant's day setpoint."""

START_TIME = "17:00"
"""Plant time of day at the start: the evening, before the peak (demo_story's numbers)."""


EXAMPLE = ROOT / "config" / "example.yaml"


def device_overrides(config: Path, tcp_port: int, rtu_link: str, ua_port: int) -> list[str]:
    """``--set`` overrides that point every device of ``config`` at this simulator, by its
    transport (every Modbus TCP unit on one port, every RTU unit on one pty, the OPC UA server).
    Raises OSError/yaml.YAMLError/KeyError on an unreadable config."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    sets = []
    for dev in data["devices"]:
        name, transport = dev["name"], dev.get("transport")
        if transport == "modbus-tcp":
            sets.append(f"devices.{name}.port={tcp_port}")
        elif transport == "modbus-rtu":
            sets.append(f"devices.{name}.port={rtu_link}")
        elif transport == "opcua":
            sets.append(f"devices.{name}.endpoint=opc.tcp://127.0.0.1:{ua_port}/pumproom/hil-sim/")
    return sets


def write_config(work: Path, setpoint_mpa: float) -> Path:
    """config/example.yaml with its control section's setpoint :data:`SETPOINT_LINE` set to
    ``setpoint_mpa``, written to ``work``/agent.yaml. Raises ValueError when the example has no
    such line (it was edited: the demo would run on the wrong setpoint)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    if text.count(SETPOINT_LINE) != 1:
        raise ValueError(f"{EXAMPLE}: expected one line {SETPOINT_LINE.strip()!r} in control:")
    path = work / "agent.yaml"
    text = text.replace(SETPOINT_LINE, f"\n  setpoint_mpa: {setpoint_mpa}\n")
    path.write_text(text, encoding="utf-8")
    return path


class SimControl:
    """One connection to the simulator's control port (JSON lines, :mod:`hil_sim.commands`)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        self.file = self.sock.makefile("rwb")

    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send ``cmd``; return the answer. Raises OSError/ValueError when the port fails."""
        self.file.write(json.dumps(cmd).encode() + b"\n")
        self.file.flush()
        answer = json.loads(self.file.readline())
        if not isinstance(answer, dict):
            raise ValueError(f"bad answer {answer!r}")
        return answer

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _local_status(port: int) -> dict[str, Any]:
    """The agent's /status.json (uplink and buffer), or {} when it does not answer in 1 s."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=1.0) as r:
            body = json.loads(r.read())
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _draw(lines: list[str]) -> None:
    """Redraw in place on a terminal (cursor home, each line cleared to its end, the rest of the
    screen cleared, no newline after the last line); elsewhere (a pipe, a file) print the frame
    after a blank line."""
    if sys.stdout.isatty():  # no newline after the last line: on row 24 it would scroll
        frame = "".join(f"{line}\x1b[K\n" for line in lines[:-1]) + lines[-1] + "\x1b[J"
        try:
            sys.stdout.write("\x1b[H" + frame)
            sys.stdout.flush()
        except OSError:  # the terminal is gone (closed window: EIO)
            pass
    else:
        _say("\n" + "\n".join(lines))


def _run(
    work: Path,
    logs: dict[str, Any],
    procs: list[subprocess.Popen[bytes]],
    duration_s: float | None,
) -> int:
    broker_port, tcp_port, ua_port, ctl_port, status_port = (_free_port() for _ in range(5))
    rtu_link = str(work / "ttyRTU0")
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\n")
    procs.append(
        subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdout=logs["mosquitto"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    )
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "hil_sim.cli", "run", "--modbus-tcp-port", str(tcp_port),
         "--opcua-port", str(ua_port), "--rtu-link", rtu_link, "--control-port", str(ctl_port),
         "--start-time", START_TIME],
        stdout=logs["sim"], stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    ))  # fmt: skip
    _wait_file(work / "sim.log", "control ready", 30)
    params = StoryParams()
    sets = device_overrides(EXAMPLE, tcp_port, rtu_link, ua_port)
    sets += [
        f"uplink.broker=mqtt://127.0.0.1:{broker_port}",
        f"buffer.path={work / 'buffer.sqlite'}",
        f"status.listen=127.0.0.1:{status_port}",
    ]
    cmd = [
        sys.executable,
        "-m",
        "agent.cli",
        "run",
        "-c",
        str(write_config(work, params.day_setpoint_mpa)),
    ]
    for s in sets:
        cmd += ["--set", s]
    procs.append(
        subprocess.Popen(
            cmd, stdout=logs["agent"], stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    )
    view = LiveView(broker_port, "pumproom/v1")
    sim = SimControl(ctl_port)
    story = Story(
        set_demand=lambda f: _checked(
            sim.command({"cmd": "set", "name": "demand_factor", "value": f})
        ),
        send_setpoint=view.send_setpoint,
        answers_for=view.answers_for,
        params=params,
    )
    footer = f"Ctrl-C stops | http://127.0.0.1:{status_port}/ | logs: {work}"
    started = time.monotonic()
    try:
        while duration_s is None or time.monotonic() - started < duration_s:
            for p in procs:
                if p.poll() is not None:
                    what = p.args[0] if isinstance(p.args, list) else p.args
                    _say(f"\n{what!s} … exited with {p.returncode}")
                    return 1
            try:
                truth = sim.command({"cmd": "truth"}).get("values", {})
            except (OSError, ValueError) as exc:
                _say(f"\nthe simulator's control port failed: {exc}")
                return 1
            room = view.room()
            room.truth, room.local = truth, _local_status(status_port)
            room.service_mpa = params.service_mpa
            setpoint = truth.get("setpoint")
            ready = (
                room.status.get("state") == "online"
                and isinstance(setpoint, int | float)
                and (abs(setpoint - params.day_setpoint_mpa) < 0.006)
            )
            top = truth.get("plant.p_index")
            story.step(time.monotonic(), top if isinstance(top, int | float) else None, ready)
            _draw(render(room, story.lines, footer))
            time.sleep(0.5)
    finally:
        view.stop()
        sim.close()
    return 0


def _checked(answer: dict[str, Any]) -> None:
    if not answer.get("ok"):
        raise RuntimeError(f"simulator refused a demo command: {answer}")


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> bool:
    """SIGTERM each child, newest first, waiting up to :data:`STOP_WAIT_S` for each; a child
    that does not stop is killed. True when every child stopped on its own."""
    clean = True
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                clean = False
    return clean


def _say(text: str) -> None:
    """Print, and carry on when the terminal is gone (closed window: EIO, or a closed pipe)."""
    try:
        print(text, flush=True)
    except OSError:
        pass


def _wait_file(path: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {text!r} in {path}")
        time.sleep(0.1)
