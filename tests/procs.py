"""Real processes for end-to-end tests: a private Mosquitto, the simulator, the agent, a subscriber.

Everything listens on 127.0.0.1 only, on free ports. Each class stops its process on ``stop()``
(SIGTERM, then SIGKILL after a bound), so a failing test leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from agent import wire_decode

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example.yaml"
RTU_DEVICES = ("vfd1", "vfd2", "vfd3", "pt_suction", "pt_outlet")
TCP_DEVICES = ("cabinet", "flowmeter", "circ_drive", "cl500")
OPCUA_DEVICE = "analyser"


ACL_DENY_TELEMETRY = """user platform
topic read pumproom/v1/#
user gw
topic write pumproom/v1/+/+/status
topic write pumproom/v1/+/+/meta
topic write pumproom/v1/+/+/event
topic readwrite pumproom/v1/+/+/cmd/#
"""
"""A Mosquitto ACL: the platform reads everything; the gateway writes everything but telemetry
(Mosquitto answers its telemetry publishes with PUBACK 0x87 under MQTT 5)."""
ACL_ALLOW_ALL = ACL_DENY_TELEMETRY + "topic write pumproom/v1/#\n"
"""The same ACL with telemetry allowed."""


def acl_broker(work: Path, acl_text: str) -> tuple[Mosquitto, Path]:
    """A started private Mosquitto with password users ``gw``/``gw-secret`` and
    ``platform``/``pf-secret`` and the ACL ``acl_text``; returns it and the ACL file (rewrite
    the file and SIGHUP the broker to change what it allows)."""
    pw, acl = work / "passwd", work / "acl"
    pw.touch()
    for user, password in (("gw", "gw-secret"), ("platform", "pf-secret")):
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
    acl.write_text(acl_text)
    conf = f"allow_anonymous false\npassword_file {pw}\nacl_file {acl}\n"
    return Mosquitto(work, extra_conf=conf).start(), acl


def cabinet_only_example(tcp_port: int, poll_s: float) -> dict[str, Any]:
    """config/example.yaml as data with only its cabinet, pointed at the simulator's Modbus TCP
    port and polled every ``poll_s`` seconds (timeout 0.5 s), without the sections whose rules
    name the points of the devices left out (``alarms``, ``control``)."""
    import yaml

    doc = yaml.safe_load(EXAMPLE.read_text())
    cab = next(d for d in doc["devices"] if d["name"] == "cabinet")
    cab.update(port=tcp_port, poll_interval_s=poll_s, timeout_s=0.5)
    doc["devices"] = [cab]
    doc.pop("control", None)
    doc.pop("alarms", None)
    return doc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(step_s)


def _stop_process(
    proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout_s: float = 15
) -> int | None:
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError(
            f"{proc.args!r} did not stop within {timeout_s} s of signal {sig}"
        ) from None


class Mosquitto:
    """A private Mosquitto on a free loopback port, with on-disk persistence (so a subscriber's
    persistent session survives a restart). Never the machine's broker on 1883."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.port = port or free_port()
        self.dir = workdir / f"mosquitto-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        # As root, Mosquitto drops to user 'mosquitto', which cannot write into a 0700 pytest
        # folder: no log and, worse, no persistence (the subscriber's session would not survive
        # a restart). 'user root' keeps it as the user that started it.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"{user}listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.dir}/\n"
            f"log_dest file {self.dir}/mosquitto.log\n{extra_conf}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(self._listening, 10, f"mosquitto on port {self.port}")
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


START_TIME = "10:00"
"""Time of day the tests' simulator starts at (``hil-sim run --start-time``), whatever the
machine's clock says."""


class PortTaken(AssertionError):
    """The simulator could not bind a port :func:`free_port` had just found free."""


class Simulator:
    """``hil-sim run`` as a subprocess on free ports, with a truth file and its control port,
    starting at :data:`START_TIME` of day unless ``extra`` gives ``--start-time``."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.tcp_port = free_port()
        self.opcua_port = free_port()
        self.control_port = free_port()
        self.rtu_link = str(workdir / "ttyRTU0")
        self.truth = workdir / "truth.jsonl"
        self.log = workdir / "sim.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Simulator:
        """Start it; a port taken between :func:`free_port` and the bind (another worker's
        process) is retried on fresh ports, twice."""
        for attempt in range(3):
            try:
                return self._start()
            except PortTaken:
                if attempt == 2:
                    raise
                self.tcp_port, self.opcua_port, self.control_port = (free_port() for _ in "abc")
        raise AssertionError("unreachable")

    def _start(self) -> Simulator:
        args = [
            sys.executable,
            "-m",
            "hil_sim.cli",
            "run",
            "--host",
            "127.0.0.1",
            "--modbus-tcp-port",
            str(self.tcp_port),
            "--opcua-port",
            str(self.opcua_port),
            "--rtu-link",
            self.rtu_link,
            "--control-port",
            str(self.control_port),
            "--truth",
            str(self.truth),
            *self.extra,
        ]
        if "--start-time" not in self.extra:  # the plant's clock, not the machine's: a test
            # run at night would see the night's trickle (~0.14 m³/h) and a setpoint that
            # takes minutes to fall; 10:00 is an average hour of the diurnal profile
            args += ["--start-time", START_TIME]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:  # it died: say so now, with its log, not in 90 s
                log = self.log.read_text()
                if "address already in use" in log:
                    raise PortTaken(log)
                raise AssertionError(f"the simulator exited {proc.returncode}: {log}")
            return "control ready" in self.log.read_text()

        # 90 s: a fresh CI clone compiles every module in every process it starts, and the
        # suite runs 3 workers on 2 cores: 30 s was once not enough to start the OPC UA server
        wait_for(ready, 90, "the simulator to be ready")
        return self

    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send one control-port command; return its answer (fails the test on ok=false)."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as s:
            s.sendall(json.dumps(cmd).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        assert answer.get("ok"), f"simulator refused {cmd}: {answer}"
        return answer

    def overrides(self) -> list[str]:
        """``--set`` overrides that point config/example.yaml at this simulator."""
        sets = [f"devices.{d}.port={self.tcp_port}" for d in TCP_DEVICES]
        sets += [f"devices.{d}.port={self.rtu_link}" for d in RTU_DEVICES]
        sets.append(
            f"devices.{OPCUA_DEVICE}.endpoint=opc.tcp://127.0.0.1:{self.opcua_port}/pumproom/hil-sim/"
        )
        return sets

    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None


@dataclass
class AgentProc:
    """``pumproom-agent run`` as a subprocess on ``config/example.yaml`` with overrides."""

    workdir: Path
    broker_port: int
    sim: Simulator
    site: str
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    config: Path = EXAMPLE
    device_sets: list[str] | None = None
    """``--set`` overrides for the devices; ``None``: the simulator's, for config/example.yaml."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for the agent process."""
    status_port: int = field(default_factory=free_port)
    """Where the agent's status page listens (127.0.0.1)."""

    @property
    def buffer(self) -> Path:
        return self.workdir / "buffer.sqlite"

    @property
    def log(self) -> Path:
        return self.workdir / "agent.log"

    def start(self) -> AgentProc:
        sets = [
            *(self.sim.overrides() if self.device_sets is None else self.device_sets),
            f"site.id={self.site}",
            f"uplink.broker=mqtt://127.0.0.1:{self.broker_port}",
            "uplink.keepalive_s=5",
            f"buffer.path={self.buffer}",
            f"status.listen=127.0.0.1:{self.status_port}",
            *self.extra,
        ]
        args = [sys.executable, "-m", "agent.cli", "run", "-c", str(self.config)]
        for s in sets:
            args += ["--set", s]
        self.runs += 1
        with open(self.log, "ab") as out:
            out.write(f"---- run {self.runs}\n".encode())
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, **self.env} if self.env else None,
            )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        # the agent's stop is bounded (flush, PUBACKs, offline status); 30 s is systemd's
        # TimeoutStopSec in systemd/pumproom-agent.service, and tests may run 3 at a time
        code = _stop_process(self.proc, sig, timeout_s=30)
        self.proc = None
        return code

    def buffered_seqs(self) -> set[int]:
        """Seqs still in the buffer file (the agent must be stopped)."""
        with sqlite3.connect(self.buffer) as db:
            return {r[0] for r in db.execute("SELECT seq FROM samples")}

    def seq_base(self) -> int:
        """Where the buffer's seqs start: the agent starts every new buffer above wall-clock
        ms × 1000 (0 for a buffer made by ``Store.open`` alone, e.g. a prefilled one; 0 when
        there is no buffer yet)."""
        if not self.buffer.exists():
            return 0
        with sqlite3.connect(self.buffer) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'seq_base'").fetchone()
        return int(row[0]) if row else 0

    def appended(self) -> int:
        """Highest seq ever assigned (SQLite's AUTOINCREMENT counter)."""
        with sqlite3.connect(self.buffer) as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='samples'").fetchone()
        return int(row[0]) if row else 0


class Subscriber:
    """A platform-side MQTT subscriber on ``{prefix}/{site}/#`` that records every message.

    It uses a persistent session (clean_session false, fixed client id) on a broker with
    persistence, so nothing is missed across broker restarts. Redeliveries by the broker are
    the broker's duplicates; tests count samples by seq.

    Telemetry in the compact encoding ``cbor-c1`` is decoded with the reference decoder
    (:mod:`agent.wire_decode`, point tables from the ``meta`` seen) and recorded as the v1 JSON
    message it stands for; :attr:`cbor` keeps each (topic, CBOR map) as received, and with
    ``validate=True`` both the CBOR map and its v1 message are checked against their schemas.
    """

    def __init__(
        self, port: int, site: str, prefix: str = "pumproom/v1", validate: bool = False
    ) -> None:
        self.port = port
        self.topic = f"{prefix}/{site}/#"
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.cbor: list[tuple[str, dict[str, Any]]] = []
        self.validate = validate
        self._tables = wire_decode.PointTables()
        self._violations: list[tuple[str, str]] = []
        self._to_check: list[tuple[str, Any]] = []  # received, not yet validated
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"platform-{site}",
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1.0)

    def start(self) -> Subscriber:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscriber not subscribed"
        return self

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        payload = msg.payload
        ours = not msg.topic.endswith(("/cmd/req", "/ingest"))  # tests send bad ones on purpose
        if ours and "/telemetry" in msg.topic and wire_decode.is_cbor(payload):
            self._on_cbor(msg)
            return
        try:
            if ours and payload[:1] == b"\x78":  # zlib (RFC 1950): application/json+zlib
                payload = zlib.decompress(payload)
            body = json.loads(payload) if payload else {}
        except (ValueError, zlib.error) as exc:
            body = {}
            if ours:
                self._violation(msg.topic, f"not JSON: {exc}")
        if ours and "/meta" in msg.topic and isinstance(body, dict) and "points" in body:
            try:
                self._tables.feed_meta(body)
            except wire_decode.DecodeError as exc:
                self._violation(msg.topic, str(exc))
        with self._lock:
            self.messages.append((msg.topic, body, bool(msg.retain)))
            if self.validate and payload:
                self._to_check.append((msg.topic, body))

    def _on_cbor(self, msg: paho.MQTTMessage) -> None:
        """A ``cbor-c1`` telemetry payload: recorded decoded to v1 (see the class docstring)."""
        try:
            raw = wire_decode.load(msg.payload)
            body = wire_decode.decode(msg.payload, self._tables)
        except wire_decode.DecodeError as exc:
            self._violation(msg.topic, str(exc))
            return
        with self._lock:
            self.cbor.append((msg.topic, raw))
            self.messages.append((msg.topic, body, bool(msg.retain)))
            if self.validate:
                self._to_check += [(msg.topic, raw), (msg.topic, body)]

    @property
    def violations(self) -> list[tuple[str, str]]:
        """(topic, what is wrong) for every received uplink message that breaks the contract
        (``agent/schemas``; schema checks only with ``validate=True``). Messages are validated
        here, when asked, not in the network thread: validating big backfill batches as they
        arrive made the subscriber fall seconds behind on a loaded machine."""
        with self._lock:
            new, self._to_check = self._to_check, []
        for topic, body in new:
            self._check(topic, body)
        with self._lock:
            return list(self._violations)

    def _check(self, topic: str, body: Any) -> None:
        """Validate an uplink message against its schema; down topics (commands and watermarks
        that tests publish, malformed on purpose) are not the gateway's to answer for."""
        from agent import schemas

        try:
            kind = schemas.message_type(topic)
        except KeyError as exc:
            self._violation(topic, str(exc))
            return
        if kind in schemas.DOWN_TYPES:
            return
        for e in schemas.iter_errors(topic, body):
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            self._violation(topic, f"{where}: {e.message[:300]}")

    def _violation(self, topic: str, what: str) -> None:
        with self._lock:
            self._violations.append((topic, what))

    def assert_valid(self) -> None:
        """Fail unless every uplink message received so far kept the contract."""
        bad = self.violations
        assert not bad, f"{len(bad)} contract violations, first: {bad[:5]}"

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def snapshot(self) -> list[tuple[str, dict[str, Any], bool]]:
        with self._lock:
            return list(self.messages)

    def samples(self) -> list[tuple[int, str, int, Any, str, str | None, bool]]:
        """Telemetry samples received, duplicates too: (seq, point, t, value, q, reason, hist)."""
        out = []
        for topic, body, _ in self.snapshot():
            if "/telemetry" not in topic:
                continue
            for point, series in body["series"].items():
                for s in series["s"]:
                    q = s[3] if len(s) > 3 else "g"
                    reason = s[4] if len(s) > 4 else None
                    out.append((s[0], point, s[1], s[2], q, reason, body["hist"]))
        return out

    def latest_by_point(self) -> dict[str, tuple[int, Any, str, str | None]]:
        """Point → (t, value, q, reason) of its newest sample by seq."""
        best: dict[str, tuple[int, int, Any, str, str | None]] = {}
        for seq, point, t, v, q, r, _ in self.samples():
            if point not in best or seq > best[point][0]:
                best[point] = (seq, t, v, q, r)
        return {p: b[1:] for p, b in best.items()}


def seq_report(
    received: Iterable[int], buffered: set[int], appended: int, base: int = 0
) -> tuple[set[int], int]:
    """(missing seqs, duplicate count): every seq base+1..appended must be received or still
    buffered (``base``: the buffer's ``seq_base``, see :meth:`AgentProc.seq_base`)."""
    seen: dict[int, int] = {}
    for s in received:
        seen[s] = seen.get(s, 0) + 1
    missing = set(range(base + 1, appended + 1)) - set(seen) - buffered
    duplicates = sum(n - 1 for n in seen.values())
    return missing, duplicates
