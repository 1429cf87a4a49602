"""What the agent uplinked, as the platform saw it: capture from the broker, read back.

:class:`UplinkCapture` subscribes to ``{prefix}/{site}/#`` (QoS 1) and appends every message to
a JSON-lines file, stamped with the wall ms it arrived: ``{"r": recv_ms, "topic": str,
"retain": bool, "body": object}`` (zlib payloads, RFC 1950, are inflated; a payload that is not
JSON, e.g. the opt-in CBOR telemetry ``cbor-c1``, is kept as ``{"_b64": base64}`` and counted,
not decoded: ``hil_sim`` does not import the agent's decoder). :func:`load_uplink` parses such a
file by the uplink
contract v1 (README "Uplink contract", ``agent/schemas/v1``: ``…/telemetry`` and
``…/telemetry/backfill`` sample batches, ``…/event``, ``…/cmd/req``, ``…/cmd/res``,
``…/status``), deduplicating samples and events on (gateway, seq).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as paho


class UplinkCapture:
    """Record the broker's messages of one site to ``path`` while it runs (paho's thread).

    Args:
        host, port: the broker (loopback in tests).
        site: the site id (``site.id`` of the agent's config).
        path: the JSON-lines file (appended).
        prefix: the topic prefix (``uplink.topic_prefix``).
        max_bytes: size bound; later messages are counted in :attr:`dropped`, not written.
        client_id: MQTT client id; default ``hil-sim-capture-{site}``. The session is
            persistent (clean session off, QoS 1), so on a broker with persistence nothing is
            lost across a broker restart (the broker's redeliveries are deduplicated on read).
    """

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        path: str | Path,
        prefix: str = "pumproom/v1",
        max_bytes: int = 512 * 1024 * 1024,
        client_id: str | None = None,
    ) -> None:
        self.host, self.port, self.path = host, port, Path(path)
        self.topic = f"{prefix.rstrip('/')}/{site}/#"
        self.max_bytes = max_bytes
        self.count = 0
        self.dropped = 0
        self._size = 0
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"hil-sim-capture-{site}",
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)

    def start(self, timeout_s: float = 10.0) -> UplinkCapture:
        """Connect and wait until subscribed.

        Raises:
            OSError: the broker refuses the connection.
            TimeoutError: not subscribed within ``timeout_s``.
        """
        self._file = open(self.path, "a", encoding="utf-8")  # closed in stop()
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise TimeoutError(
                f"uplink capture: not subscribed to {self.topic} on "
                f"{self.host}:{self.port} within {timeout_s} s"
            )
        return self

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        recv = int(time.time() * 1000)
        payload = msg.payload
        try:
            if payload[:1] == b"\x78":
                payload = zlib.decompress(payload)
            body = json.loads(payload) if payload else {}
        except (ValueError, zlib.error):
            body = {"_b64": base64.b64encode(msg.payload).decode("ascii")}
        text = (
            json.dumps(
                {"r": recv, "topic": msg.topic, "retain": bool(msg.retain), "body": body},
                separators=(",", ":"),
            )
            + "\n"
        )
        with self._lock:
            if self._file is None or self._size + len(text) > self.max_bytes:
                self.dropped += 1
                return
            self._file.write(text)
            self._file.flush()
            self._size += len(text)
            self.count += 1

    def stop(self) -> None:
        """Disconnect, stop paho's thread and close the file (idempotent)."""
        self.client.loop_stop()
        self.client.disconnect()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One telemetry sample: seq, point, t (gateway wall ms), value (``None`` unless good),
    quality (``g`` good, ``c`` comm fail, ``b`` bad value, ``s`` stale), reason, hist
    (came as backfill), r (wall ms it reached the capture)."""

    seq: int
    point: str
    t: int
    value: Any
    q: str
    reason: str | None
    hist: bool
    r: int


@dataclass
class Uplink:
    """A capture read back: deduplicated samples (by point, seq order), events, commands."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every event (alarm, audit, data_loss, info) with ``r`` (arrival ms) added, seq order."""
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Command requests seen on ``cmd/req`` by id, with ``r`` added."""
    responses: list[dict[str, Any]] = field(default_factory=list)
    """Command answers (``phase`` ack/result) with ``r`` added."""
    status: list[dict[str, Any]] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    """Point → unit, from the telemetry series."""
    duplicates: int = 0
    undecoded: list[str] = field(default_factory=list)
    """Topics of messages that were not JSON (e.g. CBOR telemetry): not in the figures."""

    def alarms(self, code: str | None = None) -> list[dict[str, Any]]:
        """Alarm events (optionally of one code), seq order."""
        return [
            e
            for e in self.events
            if e.get("type") == "alarm" and (code is None or e.get("code") == code)
        ]

    def data_loss(self) -> list[dict[str, Any]]:
        """``data_loss`` events (buffered samples evicted before delivery)."""
        return [e for e in self.events if e.get("type") == "data_loss"]


def load_uplink(path: str | Path) -> Uplink:
    """Parse a capture file (see :class:`UplinkCapture`).

    Raises:
        OSError: unreadable file.
        ValueError: a line that is not a capture record, or a telemetry batch that breaks
            the contract; names file and line.
    """
    up = Uplink()
    seen: set[tuple[str, str, int]] = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                topic, body, recv = rec["topic"], rec["body"], int(rec["r"])
                _take(up, seen, topic, body, recv)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise ValueError(f"{path}:{n}: not an uplink capture record ({exc!r})") from None
    for series in up.samples.values():
        series.sort(key=lambda s: s.seq)
    up.events.sort(key=lambda e: (e.get("gw", ""), e.get("seq", 0)))
    return up


def _take(up: Uplink, seen: set[tuple[str, str, int]], topic: str, body: Any, recv: int) -> None:
    if isinstance(body, dict) and "_b64" in body:
        up.undecoded.append(topic)
        return
    if not isinstance(body, dict):
        return
    gw = str(body.get("gw", ""))
    if topic.endswith(("/telemetry", "/telemetry/backfill")):
        for point, series in body["series"].items():
            if series.get("u"):
                up.units[point] = series["u"]
            for s in series["s"]:
                key = (gw, "t", int(s[0]))
                if key in seen:
                    up.duplicates += 1
                    continue
                seen.add(key)
                q = s[3] if len(s) > 3 else "g"
                sample = Sample(
                    int(s[0]),
                    point,
                    int(s[1]),
                    s[2],
                    q,
                    s[4] if len(s) > 4 else None,
                    bool(body.get("hist")),
                    recv,
                )
                up.samples.setdefault(point, []).append(sample)
    elif topic.endswith("/event"):
        for e in body["events"]:
            key = (gw, "e", int(e["seq"]))
            if key in seen:
                up.duplicates += 1
                continue
            seen.add(key)
            up.events.append({**e, "gw": gw, "r": recv})
    elif topic.endswith("/cmd/req"):
        if isinstance(body.get("id"), str):
            up.requests[body["id"]] = {**body, "r": recv}
    elif "/cmd/res" in topic:
        up.responses.append({**body, "r": recv})
    elif topic.endswith("/status"):
        up.status.append({**body, "r": recv})
