"""The event stream of one uplink: buffered events (alarms, audits, data loss) to ``event``.

Events leave the buffer only after a successful PUBACK of a batch that holds them (oldest first,
up to 100 a batch, as many as fit the broker's Maximum Packet Size: :mod:`agent.uplink_size`).
A refusal holds the stream with the shared backoff (:class:`agent.refusals.RefusalGate`), then
one event at a time until the broker takes one again. An event that cannot fit even alone is
set aside: out of the buffer, named in a WARNING and reported by a ``data_loss`` event (reason
``too_large``), so it never blocks the events behind it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agent import contract
from agent.core.aio import wait_event, within
from agent.core.model import WallClock
from agent.mqtt import MqttConnection, PublishFailed, PublishRefused
from agent.refusals import RefusalGate
from agent.store import Event, Store
from agent.uplink_size import events_that_fit

if TYPE_CHECKING:
    from agent.uplink_settings import UplinkCounters

log = logging.getLogger(__name__)

EVENTS_IDLE_CHECK_S = 30.0
"""Longest the event sender sleeps without being woken before it looks at the buffer again, s."""

BATCH_MAX = 100
"""Most events in one message."""


class EventSender:
    """Sends buffered events over one connection at a time: :meth:`run` per connection.

    Args:
        store: the buffer.
        topics: this gateway's topics.
        clock: wall clock for stamps.
        counters: the uplink's counters (``publish_failures``, ``set_aside``, ``last_error``).
        gate: holds the stream after a refusal (lives as long as the uplink).
        wake: set whenever an event was buffered.
        drained: set whenever the buffer holds no event to send (the telemetry backlog waits
            for it: events go first after an outage).
    """

    def __init__(
        self,
        store: Store,
        topics: contract.Topics,
        clock: WallClock,
        counters: UplinkCounters,
        gate: RefusalGate,
        wake: asyncio.Event,
        drained: asyncio.Event | None = None,
    ) -> None:
        self.store, self.topics, self.clock = store, topics, clock
        self.counters, self.gate, self.wake = counters, gate, wake
        self.drained = drained

    async def run(self, conn: MqttConnection, ident: contract.Identity) -> None:
        """Send until cancelled (the connection's end cancels it)."""
        gate = self.gate
        while True:
            await gate.wait()
            self.wake.clear()
            items = await self.store.begin_events(1 if gate.probing else BATCH_MAX)
            if not items:
                if self.drained is not None:
                    self.drained.set()
                # Every add_event is followed by wake(); the timeout is only a safety net, so an
                # idle gateway does not hand a read to the writer thread every second.
                await wait_event(self.wake, EVENTS_IDLE_CHECK_S)
                continue
            payload, items = events_that_fit(conn, self.topics.event, ident, items, self.clock)
            if payload is None:
                await self._set_aside(conn, items[0])
                continue
            try:
                await within(conn.publish(self.topics.event, payload), 30.0)
            except PublishRefused as exc:
                gate.refused("PUBACK", exc.code, exc.name)
                self.counters.publish_failures += 1
                self.counters.last_error = f"event publish: {exc}"
                continue
            except (TimeoutError, PublishFailed) as exc:
                self.counters.last_error = f"event publish: {exc}"
                await asyncio.sleep(1.0)
                continue
            gate.accepted()
            await self.store.ack_events(e.seq for e in items)

    async def _set_aside(self, conn: MqttConnection, event: Event) -> None:
        """An event that can never fit the broker's packet limit: out of the buffer, named in
        the log, and (unless it is itself such a report) reported as a ``data_loss`` event with
        reason ``too_large`` so the platform knows why the event seq has a gap."""
        log.warning(
            "uplink: event %d (%s) set aside: even alone it exceeds the broker's maximum"
            " packet of %s bytes",
            event.seq,
            event.body.get("type"),
            conn.max_packet_size,
        )
        self.counters.set_aside += 1
        await self.store.ack_events([event.seq])
        if event.body.get("reason") != "too_large":
            await self.store.add_event(
                {"type": "data_loss", "t": self.clock.now_ms(), "stream": "event",
                 "reason": "too_large", "seq_range": [event.seq, event.seq], "count": 1}
            )  # fmt: skip
