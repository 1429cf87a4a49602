"""The uplink with ``telemetry_format: cbor-c1`` on a broker with a small Maximum Packet Size, in
process, on a real Mosquitto and a real SQLite buffer: batches are sized by their encoded bytes,
the split meta is the point table, every message carries the CBOR content type, and what the
platform decodes is exactly the v1 JSON stream of the buffered samples; against a broker that
enforces Receive Maximum, the in-flight bound holds as with JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from agent import contract, wire_cbor, wire_decode
from agent.core.model import Quality, Reading, Sample
from agent.store import Poll
from tests.agent.test_uplink_limits import POINTS, _drain, _fill, _uplink
from tests.procs import Mosquitto, Subscriber, wait_for
from tests.strict_broker import StrictBroker

LIMIT = 2048
"""The broker's max_packet_size, bytes."""


@pytest.fixture
def small_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path, extra_conf=f"max_packet_size {LIMIT}\n").start()
    yield b
    b.stop()


class Mqtt5Listener:
    """An MQTT 5 client on ``telemetry/#`` that keeps each message's Content Type, Payload
    Format Indicator and packet size (the platform's view of the properties)."""

    def __init__(self, port: int, site: str) -> None:
        self.seen: list[tuple[str | None, int | None, int]] = []
        self._ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        topic = f"pumproom/v1/{site}/+/telemetry/#"
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self._ready.wait(10), "MQTT 5 listener not subscribed"

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        props = msg.properties
        self.seen.append(
            (
                getattr(props, "ContentType", None),
                getattr(props, "PayloadFormatIndicator", None),
                len(msg.payload) + len(msg.topic),
            )
        )

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _expected(ident: contract.Identity, samples: list[Sample]) -> list[list[Any]]:
    """The v1 JSON sample tuples of ``samples``, as the JSON encoding sends them."""
    units = {f"p{k}": "MPa" for k in range(POINTS)}
    out = []
    for s in samples:
        body = json.loads(contract.telemetry(ident, [s], units, hist=False, sent_ms=0))
        out += [[p, *x] for p, series in body["series"].items() for x in series["s"]]
    return out


def _strict(rows: list[list[Any]]) -> list[list[tuple[str, str]]]:
    return [[(type(v).__name__, repr(v)) for v in r] for r in rows]


@pytest.mark.parametrize("compression", ["none", "zlib"])
def test_cbor_batches_fit_the_packet_limit_and_decode_to_the_v1_stream(
    tmp_path: Path, small_broker: Mosquitto, compression: str
) -> None:
    """2,000 buffered samples (good floats, bits, uint64, -0.0, subnormals, NaN, comm failures)
    under a 2048-byte packet limit with a 300-point meta split into parts: one session, every
    packet fits, every telemetry message is ``application/cbor`` (``+zlib``), and the decoded
    samples are exactly the v1 JSON samples of the buffer."""
    held: dict[str, Any] = {}

    async def main() -> list[Sample]:
        uplink, store = await _uplink(
            tmp_path, small_broker.port, catalogue=300,
            telemetry_format=wire_cbor.FORMAT, compression=compression,
        )  # fmt: skip
        held["uplink"] = uplink
        held["sub"] = await asyncio.to_thread(
            Subscriber(small_broker.port, uplink.ident.site, validate=True).start
        )
        held["mqtt5"] = await asyncio.to_thread(Mqtt5Listener, small_broker.port, uplink.ident.site)
        odd = [True, (1 << 64) - 1, -0.0, 5e-324, float("nan"), -(1 << 63)]
        ts = int(time.time() * 1000)
        polls = []
        for j in range(50):
            readings = [Reading(f"p{k}", 0.4 + k / 100 + j / 7) for k in range(POINTS - 2)]
            readings.append(Reading(f"p{POINTS - 2}", odd[j % len(odd)]))
            readings.append(Reading(f"p{POINTS - 1}", None, Quality.COMM_FAIL, "timeout"))
            polls.append(Poll(readings, ts + 1000 * j, synced=j % 4 != 0))
        samples = (await store.append(polls)).samples
        await _drain(uplink, store, 60)
        return samples

    samples = asyncio.run(main())
    sub: Subscriber = held["sub"]
    mqtt5: Mqtt5Listener = held["mqtt5"]
    try:
        wait_for(lambda: len({s[0] for s in sub.samples()}) >= len(samples), 15, "every sample")
        sub.assert_valid()
        got = {}
        for seq, point, t, value, q, reason, _ in sub.samples():
            got[seq] = [point, seq, t, value] + ([q, reason] if q != "g" else [])
        assert _strict([got[s.seq] for s in samples]) == _strict(
            _expected(held["uplink"].ident, samples)
        )
        assert sub.cbor, "no message was in the compact encoding"
        metas = [t for t, _, _ in sub.snapshot() if "/meta/" in t]
        assert metas, "the 300-point meta was not split: the test does not cover parts"
    finally:
        sub.stop()
        mqtt5.stop()
    uplink = held["uplink"]
    assert uplink.counters.connects == 1, "one session: no packet was too large"
    assert uplink.counters.set_aside == 0
    types = {(ct, pfi) for ct, pfi, _ in mqtt5.seen}
    allowed = {("application/cbor", 0)}
    if compression == "zlib":
        allowed.add(("application/cbor+zlib", 0))
    assert types and types <= allowed, types
    assert max(size for _, _, size in mqtt5.seen) <= LIMIT
    assert len(mqtt5.seen) > 1, "2,000 samples cannot fit one 2048-byte packet"


def test_cbor_batches_keep_the_receive_maximum(tmp_path: Path) -> None:
    """A broker that announces and enforces Receive Maximum 3 (DISCONNECT 0x93 beyond it): with
    cbor-c1 too, never more than 3 publishes in flight, one session, and every buffered sample
    decodes from what the broker got."""
    strict = StrictBroker(enforce_receive_max=3, announce_receive_max=3, ack_delay_s=0.02).start()
    try:

        async def main() -> set[int]:
            uplink, store = await _uplink(
                tmp_path, strict.port, batch_max_samples=40, telemetry_format=wire_cbor.FORMAT
            )
            seqs = await _fill(store, 100)  # 4,000 samples: 100 messages
            await _drain(uplink, store, 30)
            return seqs

        seqs = asyncio.run(main())
        tables = wire_decode.PointTables()
        got: set[int] = set()
        for topic, payload in strict.published:
            if topic.endswith("/meta"):
                tables.feed_meta(json.loads(payload))
            elif "/telemetry" in topic:
                body = wire_decode.decode(payload, tables)
                got.update(s[0] for series in body["series"].values() for s in series["s"])
    finally:
        strict.stop()
    assert strict.disconnects == [], "the broker had to disconnect for Receive Maximum"
    assert strict.max_inflight <= 3
    assert strict.connects == 1
    assert seqs <= got, f"{len(seqs - got)} samples never reached the broker"


def test_a_meta_naming_a_point_twice_falls_back_to_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No index the platform could misread: should the meta ever name a point twice, the
    session's telemetry goes as v1 JSON, and an ERROR says why."""
    strict = StrictBroker().start()
    try:

        async def main() -> set[int]:
            uplink, store = await _uplink(tmp_path, strict.port, telemetry_format=wire_cbor.FORMAT)
            uplink.catalogue = [*uplink.catalogue, uplink.catalogue[0]]
            seqs = await _fill(store, 5)
            await _drain(uplink, store, 30)
            return seqs

        with caplog.at_level(logging.ERROR):
            seqs = asyncio.run(main())
    finally:
        strict.stop()
    telemetry = [p for t, p in strict.published if "/telemetry" in t]
    assert telemetry and all(p[:1] == b"{" for p in telemetry)
    got = {s[0] for p in telemetry for ser in json.loads(p)["series"].values() for s in ser["s"]}
    assert seqs <= got
    assert any("'p0' appears twice" in r.getMessage() for r in caplog.records)
