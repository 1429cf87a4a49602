"""How the agent builds its control loop: the outputs (the pollers' drivers), the start-up grace
from the outlet pressure's device, and the event sink (stored, then the uplink woken)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.control.events import to_contract
from agent.control.loop import STARTUP_GRACE_DEFAULT_S, ControlLoop
from drivers.base import Driver
from drivers.specs import PointSpec

STARTUP_POLLS = 3
"""Poll cycles of the outlet pressure's device the loop waits at start-up for a first answered
PV poll before a missing or failing PV counts as a sensor fault (derived: one cycle for the
connect and first read, one for a retry after the poller's 1 s reconnect backoff, one spare;
see :func:`startup_grace_s`)."""


def outputs_from_pollers(pollers: Sequence[Any]) -> dict[str, tuple[Driver, PointSpec]]:
    """Point name → (driver, spec) over the agent's pollers (``agent.pollers``)."""
    out: dict[str, tuple[Driver, PointSpec]] = {}
    for poller in pollers:
        for group in poller.groups:
            for spec in group.points:
                out[spec.name] = (poller.driver, spec)
    return out


def startup_grace_s(site: Any) -> float:
    """How long the loop waits at start-up for the first answered poll of the outlet pressure
    (``control.points.pv``), s: the PV device's connect timeout (``connect_timeout_s``, else
    ``timeout_s``) plus :data:`STARTUP_POLLS` × (its poll interval + ``timeout_s``). Example:
    an RTU transmitter polled every 1 s with a 1 s timeout → 1 + 3 × 2 = 7 s.

    Args:
        site: a :class:`agent.config.SiteConfig` with ``control:``.

    Returns:
        :data:`STARTUP_GRACE_DEFAULT_S` when there is no ``control:`` or no such point (the
        whole-config checks refuse the latter).
    """
    control = getattr(site, "control", None)
    if control is None:
        return STARTUP_GRACE_DEFAULT_S
    for device in site.devices:
        for point in device.points:
            if point.name == control.points.pv:
                interval = point.poll_interval_s or device.poll_interval_s
                connect = getattr(device, "connect_timeout_s", device.timeout_s)
                return connect + STARTUP_POLLS * (interval + device.timeout_s)
    return STARTUP_GRACE_DEFAULT_S


def for_agent(agent: Any, ingest: Any, store: Any, uplink: Any) -> ControlLoop | None:
    """The control loop of a running :class:`agent.app.Agent` (after its pollers exist), or
    ``None`` without ``control:``. Telemetry goes to ``ingest.submit``; events are stored with
    ``store.add_event`` and the uplink is woken."""
    if agent.config.control is None:
        return None

    async def sink(body: dict[str, Any]) -> None:
        await store.add_event(to_contract(body))
        uplink.wake()

    return ControlLoop(
        agent.config.control,
        agent.cache,
        outputs_from_pollers(agent.pollers),
        publish=ingest.submit,
        event_sink=sink,
        startup_grace_s=startup_grace_s(agent.config),
    )
