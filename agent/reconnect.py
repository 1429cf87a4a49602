"""When to reconnect: fast for one gateway once the broker is back, spread out for a fleet.

After a session that was healthy (up :data:`HEALTHY_AFTER_S` or more) is lost, and while the
broker cannot even be reached by TCP, the uplink does not sleep through a growing backoff: it
sends cheap TCP probes (a SYN answered by a RST while the broker is down; closed at once once
it answers) every ``probe_interval_s`` × U(0.5, 1), a fresh draw each time, so each gateway's
probes have their own phase; 4× slower after :data:`PROBE_SLOW_AFTER_S` of outage. When a
probe is answered it waits U(0, ``spread_s``) (full jitter) and then connects.

One gateway is back about ``probe_interval_s`` × 3/8 + ``spread_s`` / 2 after the broker (p50),
at most ``probe_interval_s`` + ``spread_s`` plus the connect (×4 on the probe part after a long
outage). A fleet's connects are spread over ``spread_s`` instead of arriving in one burst: with
the defaults, 10,000 gateways after a 20-s outage peak at ~6,800 connects in one second and
~870 in 100 ms, and probe at ~26,000 SYN/s while the broker is down (~12,000 after 30 s); set
``uplink.reconnect_spread_s`` to N / (the connects per second the broker takes) for a larger
fleet. ``python -m tests.benchmarks.broker_limits --only reconnect fleet`` measures both.

A session lost before it proved healthy is probed once at once: a broker that no longer
answers TCP went down (a restart), so the probes above apply; one that still answers dropped
us. A broker that is reachable but refuses (CONNACK failure, a DISCONNECT with a reason code, a
session dropped before it proved healthy) gets the shared exponential
:class:`agent.core.model.Backoff` instead, which only resets after a healthy session.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.core.aio import within
from agent.core.model import Backoff

HEALTHY_AFTER_S = 10.0
"""A session that lasted this long (s) proved healthy: the reconnect backoff starts afresh."""

PROBE_INTERVAL_S = 0.5
"""Mean gap between two TCP probes is ¾ of this, s (U(0.5, 1) × it)."""

PROBE_SLOW_AFTER_S = 30.0
"""After this long without an answer (s), probes go 4× slower: a long outage costs a fleet a
quarter of the SYNs, and a gateway is back within ~2 s + the spread after it."""

PROBE_TIMEOUT_S = 1.0
"""Bound on one TCP probe (a blackholed broker answers nothing), s."""

SPREAD_S = 1.2
"""Default window over which a gateway's reconnect is drawn once the broker answers, s
(``uplink.reconnect_spread_s``): a fleet of N gateways reconnects at about N / this per s."""


@dataclass(slots=True)
class ReconnectPolicy:
    """The delays of one gateway's reconnects (see the module docstring).

    Attributes:
        spread_s: the full-jitter window after a probe is answered, s.
        probe_interval_s: probe pacing, s.
        backoff: the shared backoff for a reachable broker that refuses.
    """

    spread_s: float = SPREAD_S
    probe_interval_s: float = PROBE_INTERVAL_S
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.5, cap_s=30.0))
    probes: int = 0
    """TCP probes sent since start."""

    def probe_delay(self, probing_for_s: float = 0.0) -> float:
        """Seconds before the next probe, ``probing_for_s`` after the first one."""
        slow = 4.0 if probing_for_s >= PROBE_SLOW_AFTER_S else 1.0
        return random.uniform(0.5, 1.0) * self.probe_interval_s * slow

    def spread_delay(self) -> float:
        """Seconds between an answered probe and the connect."""
        return random.uniform(0.0, self.spread_s)

    async def until_reachable(
        self, host: str, port: int, on_probe: Callable[[], None] | None = None
    ) -> None:
        """Probe ``host:port`` by TCP until it accepts a connection, then wait the spread.
        ``on_probe`` is called after each probe (the uplink's heartbeat: probing is progress).

        Never raises for a failed probe (that is the point); cancellable.
        """
        began = time.monotonic()
        while True:
            await asyncio.sleep(self.probe_delay(time.monotonic() - began))
            reachable = await self.reachable(host, port)
            if on_probe is not None:
                on_probe()
            if reachable:
                break
        await asyncio.sleep(self.spread_delay())

    async def reachable(self, host: str, port: int) -> bool:
        """One TCP probe: whether ``host:port`` accepts a connection within
        :data:`PROBE_TIMEOUT_S` (closed at once, nothing sent)."""
        self.probes += 1
        try:
            _, writer = await within(asyncio.open_connection(host, port), PROBE_TIMEOUT_S)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await within(writer.wait_closed(), PROBE_TIMEOUT_S)
        return True
