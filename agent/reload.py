"""Reload (SIGHUP, ``systemctl reload``): what a re-read configuration changes, and its record.

:func:`plan` compares the running configuration with the re-read one:

* identical: nothing to do (``unchanged``);
* ``devices:`` changed: only the connections whose devices, points or settings changed are
  restarted (their pollers stop, the new ones start), added ones start, removed ones stop; the
  others keep polling without a gap. The buffer is never touched: no new file, no emptied rows,
  no new seqs. Points of new devices get their units and deadbands at once; the retained
  ``meta`` lists them from the next connect;
* with ``alarms:``, the rules are compiled again against the new devices (before anything is
  changed: a fault map that cannot be read refuses the reload) and the alarm stage runs on them;
  every alarm whose rule stays keeps its state, the records of rules gone with their points are
  dropped (:meth:`agent.alarms.runtime.AlarmRuntime.replace_rules`);
* any other section (``site``, ``uplink``, ``buffer``, ``control``, ``status``, ``alarms``)
  changed, a device the control loop reads or writes, or devices together with ``alarms:``:
  these are wired into running stages (MQTT session, buffer file, control loop, HTTP server, alarm
  engine) and are *not* applied; the reload says which need a restart
  (``systemctl restart pumproom-agent``), and the running values stay.

An invalid file (:class:`agent.config.ConfigError`) changes nothing: the running configuration
stays, and the reason is logged (each problem with FILE:LINE:COL), kept in status (``reload``)
and sent as an ``info`` event (code ``CONFIG_RELOAD_REFUSED``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.alarms.faults import FaultMapError
from agent.alarms.rules import alarm_facts, compile_rules
from agent.config import ConfigError, SiteConfig
from agent.config.plan import ConnectionPlan
from agent.control.state import catalogue_points
from agent.core.health import utc_text
from agent.core.model import clock
from agent.core.progress import PROGRESS

if TYPE_CHECKING:
    from agent.app import Agent

log = logging.getLogger("agent.reload")

SECTIONS = ("site", "uplink", "buffer", "control", "status", "alarms")
"""Sections of the configuration a reload does not apply (they need a restart)."""


class Outcome(enum.Enum):
    """What a reload did."""

    UNCHANGED = "unchanged"
    APPLIED = "applied"
    RESTART_NEEDED = "restart_needed"
    """Valid, but every change is one a reload does not apply (see ``restart_needed``)."""
    REFUSED = "refused"


@dataclass(slots=True)
class Plan:
    """What a re-read configuration changes.

    Attributes:
        stop: names of connections whose pollers stop (removed or changed).
        start: the connections to start (added or changed), in file order.
        restart_needed: what changed but is not applied (section names, or
            ``control outputs on <connection>``).
        devices: whether the new ``devices:`` are applied (they differ, and no connection the
            control loop holds changed); also when no connection changes (only a point's unit,
            description or deadband: no poller restarts).
    """

    stop: list[str] = field(default_factory=list)
    start: list[ConnectionPlan] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    devices: bool = False

    @property
    def empty(self) -> bool:
        """Nothing to apply and nothing held back."""
        return not (self.devices or self.restart_needed)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def control_points(config: SiteConfig) -> set[str]:
    """Names of the points the control loop of ``config`` reads or writes (empty without
    ``control:``)."""
    if config.control is None:
        return set()
    names = {p.name for p in config.catalogue()}
    return names & set(_strings(config.control.model_dump()))


def plan(running: SiteConfig, new: SiteConfig) -> Plan:
    """What reloading ``new`` over ``running`` does (see the module docstring)."""
    out = Plan()
    out.restart_needed = [s for s in SECTIONS if getattr(running, s) != getattr(new, s)]
    if running.devices == new.devices:
        return out
    if running.alarms != new.alarms:  # the rules and the points they name change together
        out.restart_needed.append("devices (with alarms:, which changed too)")
        return out
    old = {c.spec.name: c for c in running.connections()}
    now = {c.spec.name: c for c in new.connections()}
    stop = [n for n in old if n not in now or old[n] != now[n]]
    start = [c for n, c in now.items() if n not in old or old[n] != c]
    held = control_points(running)
    blocked = sorted(
        n for n in stop if any(p.name in held for g in old[n].groups.values() for p in g)
    )
    if blocked:  # the control loop holds these drivers: a restart rewires it
        out.restart_needed += [f"control outputs on {n}" for n in blocked]
        return out
    out.stop, out.start, out.devices = stop, start, True
    return out


@dataclass(slots=True)
class Record:
    """The last reload, for status: ``outcome``, when (UTC ms), why (``detail``), the
    connections restarted and what needs a restart."""

    outcome: Outcome
    at_ms: int
    detail: str
    restarted: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        """``{"outcome", "at", "detail", "restarted", "restart_needed"}`` (``at``: ISO 8601)."""
        return {
            "outcome": self.outcome.value,
            "at": utc_text(self.at_ms),
            "detail": self.detail,
            "restarted": list(self.restarted),
            "restart_needed": list(self.restart_needed),
        }

    def event(self) -> dict[str, Any]:
        """The ``info`` event of this reload (event.schema.json ``info``): code
        ``CONFIG_RELOADED``, ``CONFIG_RESTART_NEEDED`` or ``CONFIG_RELOAD_REFUSED``."""
        code = {
            Outcome.REFUSED: "CONFIG_RELOAD_REFUSED",
            Outcome.RESTART_NEEDED: "CONFIG_RESTART_NEEDED",
        }.get(self.outcome, "CONFIG_RELOADED")
        body: dict[str, Any] = {"type": "info", "t": self.at_ms, "code": code}
        body["detail"] = self.detail
        if self.restarted:
            body["restarted"] = list(self.restarted)
        if self.restart_needed:
            body["restart_needed"] = list(self.restart_needed)
        return body


async def reload(agent: Agent) -> Record:
    """Re-read the configuration (``agent.load``, in a thread) and apply what can be applied;
    never raises for a bad file. Logs the outcome, keeps it in ``agent.reloaded``, buffers its
    ``info`` event (not for an identical file) and tells systemd ``RELOADING=1`` … ``READY=1``.
    """
    agent.notifier.send(RELOADING="1", STATUS="reloading the configuration")
    rec = await _reload(agent)
    agent.reloaded = rec
    level = logging.ERROR if rec.outcome is Outcome.REFUSED else logging.INFO
    log.log(level, "reload: %s: %s", rec.outcome.value, rec.detail)
    if rec.restart_needed:
        log.warning("reload: not applied, needs a restart: %s", ", ".join(rec.restart_needed))
    if agent.store is not None and rec.outcome is not Outcome.UNCHANGED:
        await agent.store.add_event(rec.event())
        if agent.uplink is not None:
            agent.uplink.wake()
    agent.notifier.send(READY="1", STATUS=agent.status_line())
    return rec


async def _reload(agent: Agent) -> Record:
    now = clock.now_ms()
    if agent.load is None:
        return Record(Outcome.REFUSED, now, "no configuration file to re-read")
    try:
        new = await asyncio.to_thread(agent.load)
    except ConfigError as exc:
        problems = [str(p) for p in exc.problems]
        for text in problems:
            log.error("reload: %s", text)
        detail = "invalid configuration, the running one stays: " + "; ".join(problems[:3])
        return Record(Outcome.REFUSED, now, detail)
    change = plan(agent.config, new)
    if change.empty:
        return Record(Outcome.UNCHANGED, now, "identical configuration")
    if not change.devices:
        detail = "nothing applied, needs a restart: " + ", ".join(change.restart_needed)
        return Record(Outcome.RESTART_NEEDED, now, detail, [], change.restart_needed)
    specs = None
    if agent.alarms is not None and new.alarms is not None:
        # compiled before anything changes: a fault map that cannot be read refuses the reload
        try:
            catalogue = new.catalogue() + catalogue_points(new.control)
            specs = compile_rules(new.alarms, alarm_facts(new, catalogue), agent.config_dir)
        except FaultMapError as exc:
            return Record(Outcome.REFUSED, now, f"alarms: {exc}; the running configuration stays")
    assert agent.supervisor is not None
    keep = [p for p in agent.pollers if p.name not in change.stop]
    await agent.supervisor.stop(*(f"poll {n}" for n in change.stop))
    for name in change.stop:
        PROGRESS.drop(f"poll {name}")
    agent.config = agent.config.model_copy(update={"devices": new.devices})
    agent.set_catalogue()
    started = [agent.new_poller(cp) for cp in change.start]
    order = [c.spec.name for c in agent.config.connections()]
    agent.pollers = sorted(keep + started, key=lambda p: order.index(p.name))
    for p in started:
        agent.start_poller(p)
    if specs is not None and agent.alarms is not None:
        await agent.alarms.replace_rules(specs)
    restarted = sorted(set(change.stop) | {p.name for p in started})
    detail = (
        "connections restarted: " + ", ".join(restarted)
        if restarted
        else "points' units, descriptions or deadbands updated; no connection restarted"
    )
    return Record(Outcome.APPLIED, now, detail, restarted, change.restart_needed)
