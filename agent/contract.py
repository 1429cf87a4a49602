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
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.core.model import Quality, Sample
from agent.store.values import UNSTORABLE, non_finite_reason

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
    """Encode a telemetry batch (see the module docstring). ``samples`` must be non-empty.

    The JSON text is written directly, one string per sample, without building the message as
    dicts and lists first (issue 17). The bytes are exactly those of ``json.dumps(message,
    separators=(",", ":"), allow_nan=False)`` on the message the module docstring describes
    (keys in the order ``v site gw session stream hist sent series [synced|unsynced]``, per
    point ``s`` then ``u``, ASCII with ``\\uXXXX`` escapes): ints through ``int.__repr__``,
    floats through ``float.__repr__`` (shortest repr that reads back the same double), strings
    through the C escaper ``json.dumps`` itself uses; proved against the old encoder by
    tests/contract/test_json_fast.py. ``seq`` and ``ts_ms`` of every sample are ints (not
    bools), as :class:`Sample` says.

    Raises:
        TypeError: a point name, unit or reason that is not a string (a unit or reason may be
            None).
    """
    series: dict[str, list[str]] = {}
    unsynced: list[int] = []
    good = Quality.GOOD
    for seq, point, ts_ms, value, quality, reason, synced in samples:
        texts = series.get(point)
        if texts is None:
            texts = series[point] = []
        if quality is good:
            if type(value) is float:
                if value - value == 0.0:  # finite (NaN and ±inf give NaN)
                    texts.append(f"[{seq},{ts_ms},{value!r}]")
                else:
                    texts.append(f'[{seq},{ts_ms},null,{_BAD},"{non_finite_reason(value)}"]')
            elif type(value) is int:
                texts.append(f"[{seq},{ts_ms},{value}]")
            else:
                texts.append(_other(seq, ts_ms, value))
        else:  # a sample that is not good has no value (telemetry.schema.json notGoodSample)
            texts.append(f'[{seq},{ts_ms},null,"{quality.code}",{_text(reason)}]')
        if not synced:
            unsynced.append(seq)
    msg = ident.header()
    msg.update(stream="telemetry", hist=hist, sent=sent_ms)
    parts = [json.dumps(msg, separators=(",", ":"), allow_nan=False)[:-1], ',"series":{']
    sep = ""
    for point, texts in series.items():
        unit = units.get(point)
        tail = f',"u":{_text(unit)}}}' if unit else "}"
        parts.append(f'{sep}{_str(point)}:{{"s":[{",".join(texts)}]{tail}')
        sep = ","
    parts.append("}")
    if len(unsynced) == len(samples):
        parts.append(',"synced":false')
    elif unsynced:
        parts.append(f',"unsynced":[{",".join(map(_int, unsynced))}]')
    parts.append("}")
    return "".join(parts).encode()


_str: Callable[[str], str] = json.encoder.encode_basestring_ascii
"""The string escaper ``json.dumps`` itself uses with ``ensure_ascii`` (its C version)."""
_int = int.__repr__
"""How ``json.dumps`` writes an int (or an int subclass): exact over the int64/uint64 range."""
_BAD = f'"{Quality.BAD_VALUE.code}"'


def _text(value: str | None) -> str:
    """A unit or reason as ``json.dumps`` writes it: a string escaped, None as ``null``."""
    return "null" if value is None else _str(value)


def _other(seq: int, ts_ms: int, value: object) -> str:
    """One good sample whose value is neither exactly a float nor exactly an int: a bool
    (``true``/``false``), an int or float subclass (written as ``json.dumps`` writes them, by
    ``int.__repr__`` / ``float.__repr__``), a non-finite float subclass (a bad-value sample,
    reason ``nan``, ``inf`` or ``-inf``: JSON has no NaN or ±∞, RFC 8259 §6), or anything
    else (a bad-value sample, reason ``unstorable``)."""
    head = f"[{seq},{ts_ms},"
    if value is True or value is False:
        return head + ("true]" if value else "false]")
    if isinstance(value, int):
        return f"{head}{_int(value)}]"
    if isinstance(value, float):
        if math.isfinite(value):
            return f"{head}{float.__repr__(value)}]"
        return f'{head}null,{_BAD},"{non_finite_reason(value)}"]'
    return f'{head}null,{_BAD},"{UNSTORABLE}"]'


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
