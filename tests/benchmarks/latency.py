"""Latency benchmarks on the typical pump room (1 s polls), all on one agent run:

* process start → the first telemetry message at a platform subscriber;
* a value change in the server → its arrival at the subscriber (p50, p99). The synthetic server
  sets a ``ticker`` register to 1, 2, 3, ... every 1.37 s (longer than the 1 s poll, so every
  change is seen; not a multiple of it, so changes land at every phase of the poll cycle) and
  logs the wall time of each change. This includes the wait for the next poll (0 to 1 s);
* a poll → its arrival at the subscriber (p50, p99 over every sample): the sample's time stamp
  (poll start) to the message's arrival, i.e. the pipeline alone;
* a ``setpoint.set`` command published on ``cmd/req`` → its ack on ``cmd/res`` (p50, p99), and
  → the write of the setpoint register at the server (p50, p99). The pump room has a control
  section (:func:`tests.benchmarks.loads.room_control`): the agent's control loop in cabinet
  mode writes the PLC's setpoint register; the server's outlet pressure follows it. The
  commands alternate 0.41 and 0.40 MPa; at the benchmark's remote ramp of 0.05 MPa/s and the
  200 ms period that is one ramp step, so each accepted command causes exactly one write, of
  its own value, and a command's write is the first write of that value after its publish
  (before the next command's). Commands are spaced 0.3–0.5 s at random, so they land at
  every phase of the control period.

Every clock read is ``time.time()`` on this one machine, so the differences are exact up to the
scheduler.
"""

from __future__ import annotations

import json
import random
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.benchmarks.harness import BenchAgent, broker, load_average, percentile
from tests.benchmarks.loads import ROOM_CONTROL, start_typical
from tests.procs import wait_for

TICKER_PERIOD_S = 1.37
BASE = "pumproom/v1/{site}/gw-bench"


class TimedSubscriber:
    """MQTT 5 subscriber on ``{base}/#`` recording (arrival wall time s, topic, JSON body)."""

    def __init__(self, port: int, base: str) -> None:
        self.base = base
        self.port = port
        self.messages: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )  # fmt: skip
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{base}/#", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def start(self) -> TimedSubscriber:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscriber not subscribed"
        return self

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        now = time.time()
        try:
            body = json.loads(msg.payload) if msg.payload else {}
        except ValueError:
            body = {}
        with self._lock:
            self.messages.append((now, msg.topic, body))

    def of(self, suffix: str) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(t, b) for t, topic, b in self.messages if topic == f"{self.base}/{suffix}"]

    def command(self, body: dict[str, Any]) -> float:
        """Publish a command request (QoS 1, with correlation data); returns the publish time."""
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = body["id"].encode()
        t = time.time()
        info = self.client.publish(
            f"{self.base}/cmd/req", json.dumps(body), qos=1, properties=props
        )
        info.wait_for_publish(5)
        return t

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(workdir: Path, seconds: float, commands: int = 20) -> dict[str, Any]:
    """Run the three latency measurements (see the module docstring)."""
    workdir.mkdir(parents=True, exist_ok=True)
    site = "bench-latency"
    base = BASE.format(site=site)
    with broker(workdir) as mq:
        ticker = {"server": 0, "unit": 1, "address": 190, "period_s": TICKER_PERIOD_S}
        remote = {"ramp_mpa_per_s": 0.05}
        synth, cfg = start_typical(workdir, mq.port, site, ticker=ticker, control=remote)
        sub = TimedSubscriber(mq.port, base).start()
        try:
            agent = BenchAgent(workdir, cfg).start()
            try:
                first = wait_for(lambda: sub.of("telemetry"), 30, "the first telemetry message")
                start_to_first = first[0][0] - agent.started_at
                time.sleep(seconds)
                acks, writes, missing = _commands(sub, synth, commands)
            finally:
                agent.stop()
            changes = synth.changes()
        finally:
            sub.stop()
            synth.stop()
    arrivals: dict[int, float] = {}
    pipeline: list[float] = []
    for t, body in sub.of("telemetry"):
        for series in body.get("series", {}).values():
            pipeline += [1000 * t - s[1] for s in series["s"]]
        for s in body.get("series", {}).get("ticker", {}).get("s", []):
            if s[2] is not None and s[2] not in arrivals:
                arrivals[int(s[2])] = t
    lat = [1000 * (t - changes[v]) for v, t in arrivals.items() if v in changes]
    return {
        "start_to_first_sample_s": round(start_to_first, 3),
        "change_to_subscriber_p50_ms": _r(percentile(lat, 0.5)),
        "change_to_subscriber_p99_ms": _r(percentile(lat, 0.99)),
        "change_to_subscriber_n": len(lat),
        "poll_to_subscriber_p50_ms": _r(percentile(pipeline, 0.5)),
        "poll_to_subscriber_p99_ms": _r(percentile(pipeline, 0.99)),
        "command_to_ack_p50_ms": _r(percentile(acks, 0.5)),
        "command_to_ack_p99_ms": _r(percentile(acks, 0.99)),
        "command_to_ack_n": len(acks),
        "command_to_write_p50_ms": _r(percentile(writes, 0.5)),
        "command_to_write_p99_ms": _r(percentile(writes, 0.99)),
        "command_to_write_n": len(writes),
        "command_to_write_missing": missing,
        "latency_load_avg": round(load_average(), 2),
    }


def _commands(sub: TimedSubscriber, synth: Any, n: int) -> tuple[list[float], list[float], int]:
    """Send ``n`` ``setpoint.set`` commands (see the module docstring; under the 30/min rate
    limit); returns the publish → ack and publish → setpoint write latencies, ms, and how many
    commands saw no write of their value before the next command."""
    sent: list[tuple[float, float]] = []  # (publish time s, value MPa)
    acks = []
    for k in range(n):
        cid = f"bench-{uuid.uuid4().hex[:12]}"
        value = 0.41 if k % 2 == 0 else 0.40
        body = {
            "v": 1,
            "id": cid,
            "method": "setpoint.set",
            "issuer": {"principal": "bench"},
            "params": {"value": value, "unit": "MPa"},
        }
        t = sub.command(body)
        acked = wait_for(lambda c=cid: _ack_of(sub, c), 10, f"the ack of {cid}")
        assert acked[1] == "OK", f"command {k} ({value} MPa) refused: {acked[1]}"
        sent.append((t, value))
        acks.append(1000 * (acked[0] - t))
        time.sleep(random.uniform(0.3, 0.5))
    time.sleep(0.5)  # the last write
    unit, address = ROOM_CONTROL["unit"], ROOM_CONTROL["setpoint"]
    writes = [
        (t, _float32(values)) for t, u, a, values in synth.writes() if (u, a) == (unit, address)
    ]
    lat = []
    ends = [t for t, _ in sent[1:]] + [float("inf")]
    for (t, value), end in zip(sent, ends, strict=False):  # end: the next command's publish
        mine = [w for w, v in writes if t <= w < end and abs(v - value) < 1e-4]
        if mine:
            lat.append(1000 * (mine[0] - t))
    return acks, lat, len(sent) - len(lat)


def _float32(values: str) -> float:
    """The float32 (ABCD) of a logged register write ``"[hi, lo]"``."""
    hi, lo = json.loads(values)[:2]
    return float(struct.unpack(">f", struct.pack(">HH", hi, lo))[0])


def _ack_of(sub: TimedSubscriber, cid: str) -> tuple[float, str] | None:
    """(arrival time s, code) of the ack of command ``cid``, or ``None`` before it came."""
    for t, body in sub.of("cmd/res"):
        if body.get("id") == cid and body.get("phase") == "ack":
            return t, str(body.get("code"))
    return None


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)
