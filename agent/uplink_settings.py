"""The uplink's settings (``uplink:`` in the config: batching, flow, pacing) and its counters."""

from __future__ import annotations

from dataclasses import dataclass

from agent.reconnect import SPREAD_S


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    """Batching and flow settings (see ``uplink:`` in the config).

    Attributes:
        batch_max_samples: most samples per telemetry message.
        batch_interval_s: longest a live sample waits for others to share its message, seconds.
        backlog_rate_per_s: most backlog samples published per second.
        inflight_window: most messages awaiting PUBACK at once.
        live_queue_max: most live samples held for publishing; beyond it the oldest are left to
            the backlog (they are safe in the buffer).
        compression: ``none`` or ``zlib`` (telemetry payloads over 256 bytes are deflated and
            sent with content type ``application/json+zlib`` or ``application/cbor+zlib``).
        telemetry_format: ``json`` (v1 JSON) or ``cbor-c1`` (:mod:`agent.wire_cbor`; its
            point table is the meta as published on this connection; should that meta name a
            point twice, telemetry goes as JSON, with an ERROR).
        status_interval_s: how often the retained ``online`` status is refreshed with health.
        reconnect_spread_s: full-jitter window of a reconnect once the broker answers again, s
            (:mod:`agent.reconnect`).
    """

    batch_max_samples: int = 500
    batch_interval_s: float = 0.05
    backlog_rate_per_s: float = 100_000.0
    inflight_window: int = 10
    live_queue_max: int = 50_000
    compression: str = "none"
    telemetry_format: str = "json"
    status_interval_s: float = 60.0
    reconnect_spread_s: float = SPREAD_S


@dataclass(slots=True)
class UplinkCounters:
    """Counters since start."""

    connects: int = 0
    connect_failures: int = 0
    messages_published: int = 0
    samples_live: int = 0
    samples_backfill: int = 0
    publish_failures: int = 0
    live_overflow: int = 0
    bytes_published: int = 0
    set_aside: int = 0
    """Messages that can never fit the broker's packet limit, reported and dropped."""
    last_error: str | None = None
