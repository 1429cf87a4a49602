"""The real agent closing the loop on the simulator, for ``tests/benchmarks/control_quality.py``.

:class:`PlantRun` starts a private Mosquitto, ``hil-sim run`` (with its truth file) and
``pumproom-agent run`` on ``config/example.yaml`` with its ``control:`` section (the section
itself when enabled, else the commented one uncommented: :func:`example_control`) in the chosen
mode, plus a platform-side MQTT 5 client that sends ``setpoint.set`` and records the agent's
``ctl.*`` telemetry. Device polling is the example's; in direct mode the outlet pressure is
polled every 0.2 s when the example polls it slower than the 0.25 s that ``check`` requires (as
the example's own comment says to). Loopback only. After :meth:`PlantRun.stop`,
:meth:`PlantRun.record` returns the plant's truth and the agent's setpoint as change records.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.procs import EXAMPLE, AgentProc, Mosquitto, Simulator, wait_for

TRUTH_POINTS = (
    "p_out",
    "flow",
    "cabinet.mode",
    "setpoint",
    *tuple(f"pump{n}.{k}" for n in (1, 2, 3) for k in ("freq", "starts")),
)
"""Simulator truth points the record keeps (outlet pressure MPa, flow m³/h, cabinet mode,
cabinet setpoint MPa, each pump's output frequency Hz and start counter)."""

DIRECT_PV_POLL_S = 0.2
"""Outlet-pressure poll interval used in direct mode when the example polls slower than 0.25 s
(config/example.yaml's control comment: "set its poll_interval_s: 0.2")."""

MODE_CODE = {"supervisory": 1, "direct": 2}
"""``ctl.mode`` in control (agent/control/state.py ``MODE_CODES``)."""


def example_control(path: Path = EXAMPLE) -> dict[str, Any]:
    """The ``control:`` section of ``path``: the enabled one, or else the commented-out block
    that starts with a ``# control:`` line (every following ``#   `` line, uncommented).
    Raises ValueError naming the file when it has neither."""
    text = path.read_text(encoding="utf-8")
    enabled = (yaml.safe_load(text) or {}).get("control")
    if enabled:
        return dict(enabled)
    lines = text.splitlines()
    try:
        start = lines.index("# control:")
    except ValueError:
        raise ValueError(f"{path}: no control section, enabled or commented") from None
    block = ["control:"]
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line[2:])
    section = yaml.safe_load("\n".join(block))["control"]
    if not isinstance(section, dict):
        raise ValueError(f"{path}:{start + 1}: the commented control section is not a mapping")
    return section


def site_config(work: Path, mode: str) -> tuple[Path, list[str]]:
    """config/example.yaml with its control section in ``mode``, written to ``work``; returns
    the path and notes on what was changed beyond the mode."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    control = example_control()
    control["mode"] = mode
    data["control"] = control
    notes = []
    if mode == "direct":
        pv = control["points"]["pv"]
        for dev in data["devices"]:
            names = {p["name"] for p in dev.get("points", [])}
            if (pv in names or dev["name"] == "pt_outlet") and dev["poll_interval_s"] > 0.25:
                notes.append(f"{dev['name']}.poll_interval_s {dev['poll_interval_s']} → "
                             f"{DIRECT_PV_POLL_S} (direct mode's documented PV poll)")  # fmt: skip
                dev["poll_interval_s"] = DIRECT_PV_POLL_S
    path = work / f"site-{mode}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path, notes


@dataclass
class Record:
    """What a run recorded, as change records ((wall time s, value) in time order): the
    simulator's truth by point (:data:`TRUTH_POINTS`) and the agent's ``ctl.sp`` (MPa)."""

    truth: dict[str, list[tuple[float, float]]]
    sp: list[tuple[float, float]]


class Platform:
    """The platform's MQTT 5 client: records ``ctl.*`` telemetry samples and ``cmd/res``."""

    def __init__(self, port: int, site: str) -> None:
        self.site = site
        self.base = ""
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.answers: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-{uuid.uuid4().hex[:6]}",
                                  protocol=paho.MQTTv5)  # fmt: skip
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"pumproom/v1/{site}/#", 1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        payload = msg.payload
        if payload[:1] == b"\x78":  # zlib (RFC 1950): application/json+zlib
            payload = zlib.decompress(payload)
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            return  # not ours to judge here (the contract tests do)
        now = time.time()
        with self._lock:
            if msg.topic.endswith("/status"):
                self.base = msg.topic.rsplit("/", 1)[0]
            elif msg.topic.endswith("/cmd/res"):
                self.answers.append((now, body))
            elif "/telemetry" in msg.topic:
                for point, series in body.get("series", {}).items():
                    if point.startswith("ctl."):
                        for s in series["s"]:
                            if isinstance(s[2], int | float):
                                self.samples.setdefault(point, []).append((s[1] / 1000, s[2]))

    def latest(self, point: str) -> float | None:
        """The newest sample of a ``ctl.*`` point by its timestamp, or None."""
        with self._lock:
            got = self.samples.get(point)
            return max(got)[1] if got else None

    def series(self, point: str) -> list[tuple[float, float]]:
        """Every sample of ``point`` in time order (duplicates from redelivery removed)."""
        with self._lock:
            return sorted(set(self.samples.get(point, [])))

    def setpoint(self, value_mpa: float) -> tuple[str, float]:
        """Publish ``setpoint.set`` (QoS 1, response topic, correlation data); returns (command
        id, wall time s of the publish)."""
        cid = f"bench-{uuid.uuid4().hex[:8]}"
        body = {"v": 1, "id": cid, "method": "setpoint.set",
                "issuer": {"principal": "ops:bench", "reason": "control_quality"},
                "params": {"value": value_mpa, "unit": "MPa"}}  # fmt: skip
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{self.base}/cmd/res"
        props.CorrelationData = cid.encode()
        sent = time.time()
        self.client.publish(f"{self.base}/cmd/req", json.dumps(body), qos=1, properties=props)
        return cid, sent

    def answers_for(self, cid: str) -> list[tuple[float, dict[str, Any]]]:
        """(wall time s received, body) of every answer to command ``cid``."""
        with self._lock:
            return [(t, b) for t, b in self.answers if b.get("id") == cid]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class PlantRun:
    """Broker, simulator and agent (control in ``mode``) on loopback, in ``work``."""

    def __init__(self, work: Path, mode: str, start_time: str = "10:00", seed: int = 1) -> None:
        self.work, self.mode = work, mode
        self.config, self.notes = site_config(work, mode)
        self.control = example_control()
        self.broker = Mosquitto(work)
        self.sim = Simulator(work, "--start-time", start_time, "--seed", str(seed))
        self.agent: AgentProc | None = None
        self.platform: Platform | None = None

    def start(self, timeout_s: float = 90.0) -> PlantRun:
        """Start everything; return once the agent reports ``ctl.mode`` in control and the
        outlet pressure is within ±0.02 MPa of the agent's setpoint. Raises AssertionError
        (with the agent's log tail) when that does not happen within ``timeout_s``."""
        self.broker.start()
        self.sim.start()
        self.platform = Platform(self.broker.port, "bench")
        self.agent = AgentProc(self.work, self.broker.port, self.sim, "bench", config=self.config)
        self.agent.start()
        try:
            wait_for(lambda: self.platform and self.platform.base, 30, "the agent's status")
            wait_for(lambda: self.ctl("ctl.mode") == MODE_CODE[self.mode], timeout_s,
                     f"ctl.mode {MODE_CODE[self.mode]} ({self.mode})", step_s=0.2)  # fmt: skip
        except AssertionError as exc:
            tail = self.agent.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}; agent log tail:\n{tail}") from None
        return self

    def ctl(self, point: str) -> float | None:
        """Newest value of the agent's ``ctl.*`` telemetry point."""
        assert self.platform is not None
        return self.platform.latest(point)

    def truth(self) -> dict[str, Any]:
        """The simulator's truth now."""
        return self.sim.command({"cmd": "truth"})["values"]

    def set_sim(self, name: str, value: Any) -> float:
        """A simulator ``set``; returns its wall time s."""
        now = time.time()
        self.sim.command({"cmd": "set", "name": name, "value": value})
        return now

    def hold(self, target: float, band: float, hold_s: float, timeout_s: float) -> bool:
        """Wait until the outlet pressure stayed within ``target ± band`` for ``hold_s`` s;
        False when ``timeout_s`` passed first."""
        deadline, since = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            inside = abs(self.truth()["p_out"] - target) <= band
            since = (since or time.monotonic()) if inside else None
            if since is not None and time.monotonic() - since >= hold_s:
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """Stop the agent (SIGTERM, a clean hand-back), the simulator and the broker."""
        if self.agent is not None:
            self.agent.stop(signal.SIGTERM)
        if self.platform is not None:
            self.platform.stop()
        self.sim.stop()
        self.broker.stop()

    def record(self) -> Record:
        """The truth file's :data:`TRUTH_POINTS` and the agent's ``ctl.sp`` as change records."""
        truth: dict[str, list[tuple[float, float]]] = {p: [] for p in TRUTH_POINTS}
        with open(self.sim.truth, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                t = row["t"] / 1000
                for p, v in row["values"].items():
                    if p in truth and isinstance(v, int | float):
                        truth[p].append((t, float(v)))
        assert self.platform is not None
        return Record(truth, self.platform.series("ctl.sp"))
