"""The uplink contract, version 1: MQTT topics and JSON payloads.

Topic tree (``prefix`` defaults to ``pumproom/v1``; conventions from
shared/reference/uplink-protocol.md §6.2)::

    {prefix}/{site}/{gw}/status               up, QoS 1, retained: birth, last will, clean shutdown
    {prefix}/{site}/{gw}/meta                 up, QoS 1, retained: point catalogue, versions
    {prefix}/{site}/{gw}/meta/{i}             up, QoS 1, retained: part i of a split meta
    {prefix}/{site}/{gw}/telemetry            up, QoS 1: live sample batches
    {prefix}/{site}/{gw}/telemetry/backfill   up, QoS 1: buffered sample batches (``hist: true``)
    {prefix}/{site}/{gw}/event                up, QoS 1: data-loss and other events
    {prefix}/{site}/{gw}/cmd/req              down, QoS 1, never retained: command requests
    {prefix}/{site}/{gw}/cmd/res              up, QoS 1: command acks and results (stream "cmd"),
                                              or the request's Response Topic below cmd/res/
    {prefix}/{site}/{gw}/ingest               down, QoS 1, retained: platform watermark (optional)

Every message carries ``v`` (schema version), ``site``, ``gw`` and ``session`` (grows by one on
every MQTT connect, persisted in the buffer, so the platform can order a late last will against a
newer birth).

Telemetry batch::

    {"v":1, "site":"demo-site", "gw":"gw-demo-01", "session":7, "stream":"telemetry",
     "hist":false, "sent":1732870815123,
     "series":{"p_out":{"u":"MPa","s":[[1041,1732870815000,0.401],
                                       [1052,1732870816000,null,"c","timeout"]]}},
     "unsynced":[1052]}

Each sample is ``[seq, t_ms, value]`` when its quality is good, else
``[seq, t_ms, null, q, reason]`` (a sample that is not good has no value) with ``q`` one of
``c`` (comm fail), ``b`` (bad value), ``s`` (stale). A value keeps its type, live and backfill
alike: a bit is ``true``/``false``, an integer point an exact JSON integer over the whole int64
and uint64 range (a consumer must parse it without going through a double, which is exact only
up to 2⁵³), a float a JSON number that reads back the same double (−0.0 and subnormals
included). NaN and ±∞ are not JSON: such a value is sent as a bad-value sample with reason
``nan``, ``inf`` or ``-inf``. ``seq`` is the sample's sequence number in
the telemetry stream (events and command answers number their own streams): unique per gateway
buffer, strictly increasing in poll order, kept by backfill, so the platform deduplicates on
(gw, stream, seq) and detects loss as a gap that no data-loss event explains. A restart
continues from the buffer's last seq; a new buffer starts above wall-clock ms × 1000
(:func:`agent.buffer_open.new_buffer_seq_base`).
Clock state: ``"synced": false`` when every sample of the message was taken while the gateway
clock was not synchronised; otherwise ``unsynced`` lists the seqs that were (both absent when all
were synchronised).

With ``uplink.telemetry_format: cbor-c1`` the same batch travels in the compact CBOR encoding of
:mod:`agent.wire_cbor` instead (reference decoder :mod:`agent.wire_decode`); every other message
is always this JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent import telemetry_json
from agent.core.model import Sample

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one gateway."""

    base: str

    @classmethod
    def for_gateway(cls, prefix: str, site: str, gateway: str) -> Topics:
        """Topics under ``{prefix}/{site}/{gateway}``."""
        return cls(f"{prefix.rstrip('/')}/{site}/{gateway}")

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def meta(self) -> str:
        return f"{self.base}/meta"

    def meta_part(self, i: int) -> str:
        """Up, retained: part ``i`` (1..parts-1) of a meta split to fit the broker's Maximum
        Packet Size (part 0 is :attr:`meta`)."""
        return f"{self.base}/meta/{i}"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def backfill(self) -> str:
        return f"{self.base}/telemetry/backfill"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def cmd_req(self) -> str:
        """Down: command requests (never retained)."""
        return f"{self.base}/cmd/req"

    @property
    def cmd_res(self) -> str:
        """Up: command acks and results."""
        return f"{self.base}/cmd/res"

    def response_topic(self, requested: str | None) -> str:
        """Where to publish a command answer: the request's MQTT 5 Response Topic when it is
        ``cmd/res`` itself or a topic below it (``cmd/res/<anything>``, no wildcard), else
        ``cmd/res``. So a request can never make the gateway publish on its own status, meta,
        telemetry, event or request topics, nor outside its tree."""
        if requested is not None and (
            requested == self.cmd_res
            or (
                requested.startswith(self.cmd_res + "/")
                and len(requested) > len(self.cmd_res) + 1
                and not any(c in requested for c in "+#\0")
            )
        ):
            return requested
        return self.cmd_res

    @property
    def ingest(self) -> str:
        """Down, retained: the platform's watermark ``{"v":1,"telemetry":seq,"event":seq}``."""
        return f"{self.base}/ingest"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is speaking: site id, gateway id and the current MQTT session number."""

    site: str
    gateway: str
    session: int = 0

    def header(self) -> dict[str, Any]:
        """The fields every message starts with."""
        return {"v": SCHEMA_VERSION, "site": self.site, "gw": self.gateway, "session": self.session}


def dumps(message: Mapping[str, Any]) -> bytes:
    """Compact JSON, UTF-8. NaN and infinities are refused (they are not JSON)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def telemetry(
    ident: Identity,
    samples: Sequence[Sample],
    units: Mapping[str, str | None],
    *,
    hist: bool,
    sent_ms: int,
) -> bytes:
    """Encode a telemetry batch (see the module docstring). ``samples`` must be non-empty;
    ``seq`` and ``ts_ms`` of every sample are ints (not bools), as :class:`Sample` says.

    The bytes are exactly those of ``json.dumps(message, separators=(",", ":"),
    allow_nan=False)`` on the message described above (keys in the order ``v site gw session
    stream hist sent series [synced|unsynced]``, per point ``s`` then ``u``), written without
    building it as dicts first (:mod:`agent.telemetry_json`, issue 17).

    Raises:
        TypeError: a point name, unit or reason that is not a string (a unit or reason may be
            None).
    """
    return telemetry_json.encode(ident, samples, units, hist=hist, sent_ms=sent_ms)


def status(
    ident: Identity, state: str, *, ts_ms: int, reason: str | None = None, **extra: Any
) -> bytes:
    """Encode a status message: ``state`` is ``online`` or ``offline``; ``reason`` for offline
    is ``lwt`` (the broker published the last will) or ``shutdown`` (clean stop)."""
    msg = ident.header()
    msg.update(state=state, ts=ts_ms)
    if reason:
        msg["reason"] = reason
    msg.update(extra)
    return dumps(msg)


def meta(
    ident: Identity, points: Iterable[Mapping[str, Any]], *, ts_ms: int, **extra: Any
) -> bytes:
    """Encode the retained metadata message: the point catalogue and versions."""
    msg = ident.header()
    msg.update(ts=ts_ms, points=list(points))
    msg.update(extra)
    return dumps(msg)


def events(
    ident: Identity, items: Sequence[tuple[int, Mapping[str, Any]]], *, sent_ms: int
) -> bytes:
    """Encode an event batch: ``items`` are (event seq, event body) pairs."""
    msg = ident.header()
    msg.update(stream="event", sent=sent_ms, events=[{"seq": seq, **body} for seq, body in items])
    return dumps(msg)


def command_response(ident: Identity, seq: int, body: Mapping[str, Any]) -> bytes:
    """Encode a command ack or result: ``body`` from :mod:`agent.commands` plus the header and
    the ``cmd`` stream's seq."""
    msg = ident.header()
    msg.update(stream="cmd", seq=seq)
    msg.update(body)
    return dumps(msg)
