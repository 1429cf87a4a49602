"""``hil-sim demo``: the whole chain on one machine, for a person to watch.

Starts a private Mosquitto on a free loopback port (installing the Debian package first when the
binary is missing and we are root), the simulator, and the agent on ``config/example.yaml`` pointed
at both, then shows what the platform receives: the latest uplinked value of every point, grouped
by device and transport, refreshed every second. Ctrl-C (or SIGTERM, or closing the terminal:
SIGHUP) stops everything and removes the work folder.

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
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parent.parent
RTU_DEVICES = ("vfd1", "vfd2", "vfd3", "pt_suction", "pt_outlet")


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


class LiveView:
    """Subscribes to the gateway's topics and keeps the latest sample per point."""

    def __init__(self, port: int, prefix: str) -> None:
        self.meta: dict[str, Any] = {}
        self.status: dict[str, Any] = {}
        self.latest: dict[str, tuple[int, Any, str]] = {}
        self.messages = 0
        self._lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="demo-live-view")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with self._lock:
            self.messages += 1
            if msg.topic.endswith("/meta"):
                self.meta = body
            elif msg.topic.endswith("/status"):
                self.status = body
            elif "/telemetry" in msg.topic:
                for point, series in body.get("series", {}).items():
                    for s in series["s"]:
                        q = s[3] if len(s) > 3 else "g"
                        if point not in self.latest or s[0] > self.latest[point][0]:
                            self.latest[point] = (s[0], s[2], q)

    def render(self) -> str:
        """The screen: one block per device, points with their latest value and quality."""
        with self._lock:
            points = self.meta.get("points", [])
            latest = dict(self.latest)
            status = dict(self.status)
            n = self.messages
        lines = [
            f"pumproom-edge demo — gateway {status.get('gw', '?')}"
            f" {status.get('state', 'connecting')} (session {status.get('session', '-')});"
            f" {n} MQTT messages received; Ctrl-C stops",
            "",
        ]
        by_device: dict[str, list[dict[str, Any]]] = {}
        for p in points:
            by_device.setdefault(p["device"], []).append(p)
        for device, pts in by_device.items():
            transport = pts[0]["source"].split()[0]
            got = sum(1 for p in pts if p["name"] in latest)
            lines.append(f"[{transport}] {device}: {got}/{len(pts)} points uplinked")
            cells = []
            for p in pts:
                seq_value = latest.get(p["name"])
                if seq_value is None:
                    continue
                _, value, q = seq_value
                text = f"{value:.4g}" if isinstance(value, float) else str(value)
                mark = "" if q == "g" else f"({q})"
                cells.append(f"{p['name']}={text}{p.get('unit') or ''}{mark}")
            for i in range(0, len(cells), 4):
                lines.append("    " + "  ".join(f"{c:<30}" for c in cells[i : i + 4]))
        return "\n".join(lines)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


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
        if code == 0 and clean:
            shutil.rmtree(work, ignore_errors=True)
            _say("demo stopped: agent, simulator and broker are down; work folder removed")
        else:
            _say(f"demo stopped: agent, simulator and broker are down; logs kept in {work}")
        for sig, handler in before.items():
            signal.signal(sig, handler)
    return code


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
         "--opcua-port", str(ua_port), "--rtu-link", rtu_link, "--control-port", str(ctl_port)],
        stdout=logs["sim"], stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    ))  # fmt: skip
    _wait_file(work / "sim.log", "control ready", 30)
    sets = [f"devices.{d}.port={tcp_port}" for d in ("cabinet", "flowmeter")]
    sets += [f"devices.{d}.port={rtu_link}" for d in RTU_DEVICES]
    sets += [
        f"devices.analyser.endpoint=opc.tcp://127.0.0.1:{ua_port}/pumproom/hil-sim/",
        f"uplink.broker=mqtt://127.0.0.1:{broker_port}",
        f"buffer.path={work / 'buffer.sqlite'}",
        f"status.listen=127.0.0.1:{status_port}",
    ]
    cmd = [sys.executable, "-m", "agent.cli", "run", "-c", str(ROOT / "config" / "example.yaml")]
    for s in sets:
        cmd += ["--set", s]
    procs.append(
        subprocess.Popen(
            cmd, stdout=logs["agent"], stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    )
    view = LiveView(broker_port, "pumproom/v1")
    started = time.monotonic()
    try:
        while duration_s is None or time.monotonic() - started < duration_s:
            for p in procs:
                if p.poll() is not None:
                    what = p.args[0] if isinstance(p.args, list) else p.args
                    _say(f"\n{what!s} … exited with {p.returncode}")
                    return 1
            screen = view.render()
            if sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            page = f"http://127.0.0.1:{status_port}/"
            _say(
                f"{screen}\n\nagent status page: {page}   logs: {work}\n"
                f"broker: mqtt://127.0.0.1:{broker_port} (topics pumproom/v1/#; the demo config"
                " has no control: section, so setpoint commands are refused NOT_PERMITTED)"
            )
            time.sleep(1.0)
    finally:
        view.stop()
    return 0


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
