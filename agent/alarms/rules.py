"""The compiled rule set: ``alarms:`` config + the point catalogue + fault maps → :class:`Spec`s.

Besides the configured rules it adds the flood-control summaries (one cause, one alarm):

* ``comm.<device>`` (kind ``comm_lost``, code ``COMM_LOST``): no good sample from any point of
  the device for ``comm_loss_delay_s`` (at least two of its fastest poll intervals plus 1 s,
  plus, on a shared connection, its longest poll: one response timeout per device on it).
  The device's ``stale`` and ``bad_quality`` rules are its members.
* ``comm.<connection>`` for a connection with several devices (an RS-485 bus, a TCP gateway):
  none of its devices answers. Its devices' ``comm.<device>`` alarms are its members: a whole
  bus lost is ONE alarm, with the affected devices and points in ``detail.affected``.
* configured ``groups``: ``cause`` rule id → ``members`` patterns.

A member waits at least its group's window before it raises, so a cause read a poll later
still folds it. For comm loss the window is what the cause needs beyond the member's own time
(``comm delay − after_s`` for stale, the whole comm delay for bad quality) plus one poll
interval (for a connection's devices, also its longest poll: a device read at the start of a
poll that the others' silence drags out arrives that much later) and :data:`FOLD_MARGIN_S`: a
point's alarm never beats its silent device's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from agent.alarms.faults import FaultMap, FaultMapError, load_fault_map
from agent.config.alarms import AlarmRule, AlarmsConfig
from agent.config.checks_alarms import FAULTMAPS_DIR, fault_map_path
from agent.config.plan import PointInfo
from agent.config.site import SiteConfig

COMM_KIND = "comm_lost"
FOLD_MARGIN_S = 1.0
"""A comm-loss member waits this long, plus one poll interval, past the time its device's (or
connection's) comm-loss condition needs to show, so a tick or a poll of skew still folds it."""


@dataclass(slots=True)
class Spec:
    """One compiled rule (see :class:`agent.config.alarms.AlarmRule` for the fields).

    Attributes:
        id: ``<point>.<name or kind>``, or ``comm.<device or connection>``.
        point: the watched point; ``None`` for comm summaries.
        watch: comm summaries: the points whose good samples show the device answers.
        device: the device (or connection) name, for events.
        cause: id of the group cause this rule folds into, if any.
        window_s: that group's window (also the rule's least on-delay).
        fault_map: the loaded map of a ``fault`` rule.
        unit: the point's engineering unit.
    """

    id: str
    point: str | None
    kind: str
    code: str
    priority: str
    limit: float | None = None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    state: bool | int | None = None
    after_s: float | None = None
    moving: str | None = None
    min_change: float = 0.0
    fault_map: FaultMap | None = None
    out_of_service: bool = False
    unit: str | None = None
    device: str | None = None
    watch: tuple[str, ...] = ()
    cause: str | None = None
    window_s: float = 0.0
    members: list[str] = field(default_factory=list)

    @property
    def delay_on(self) -> float:
        """The effective on-delay: at least the group window of a member."""
        return max(self.on_delay_s, self.window_s if self.cause else 0.0)


@dataclass(frozen=True, slots=True)
class PointFacts:
    """What the rule set needs of a point: its device, connection, unit, poll interval (s), its
    connection's per-request response timeout (s) and how many devices share that connection."""

    device: str
    connection: str
    unit: str | None
    interval_s: float
    timeout_s: float = 1.0
    devices_on_connection: int = 1


def default_code(rule_id: str) -> str:
    """``wq.chlorine.low`` → ``WQ_CHLORINE_LOW`` (the event code pattern ``^[A-Z][A-Z0-9_]*$``)."""
    code = re.sub(r"[^A-Z0-9]+", "_", rule_id.upper()).strip("_")
    return code if code[:1].isalpha() else "A_" + code


def compile_rules(
    cfg: AlarmsConfig, points: dict[str, PointFacts], config_dir: Path
) -> dict[str, Spec]:
    """All rules by id: the configured ones and the comm-loss summaries, with the flood-control
    membership (``cause``, ``window_s``, ``members``) filled in.

    Raises:
        FaultMapError: a fault map cannot be read (``check`` refuses a missing one earlier).
    """
    maps: dict[str, FaultMap] = {}
    specs: dict[str, Spec] = {}
    for pname, rules in cfg.points.items():
        facts = points.get(pname)
        for r in rules:
            s = _spec(pname, r, facts)
            if r.fault_map is not None:
                if r.fault_map not in maps:
                    path = fault_map_path(r.fault_map, config_dir)
                    if path is None:
                        raise FaultMapError(f"no fault map {FAULTMAPS_DIR}/{r.fault_map}.yaml")
                    maps[r.fault_map] = load_fault_map(path)
                s.fault_map = maps[r.fault_map]
            specs[s.id] = s
    _comm_rules(cfg, points, specs)
    for g in cfg.groups:
        for s in specs.values():
            if s.id != g.cause and any(fnmatchcase(s.id, m) for m in g.members):
                s.cause, s.window_s = g.cause, g.window_s
    for s in specs.values():
        if s.cause in specs:
            specs[s.cause].members.append(s.id)
    return specs


def _spec(pname: str, r: AlarmRule, facts: PointFacts | None) -> Spec:
    rid = f"{pname}.{r.suffix}"
    return Spec(
        id=rid, point=pname, kind=r.kind, code=r.code or default_code(rid),
        priority=r.priority, limit=r.limit, deadband=r.deadband, on_delay_s=r.on_delay_s,
        off_delay_s=r.off_delay_s, state=True if r.kind == "state" and r.state is None
        else r.state, after_s=r.after_s, moving=r.moving, min_change=r.min_change,
        out_of_service=r.out_of_service, unit=facts.unit if facts else None,
        device=facts.device if facts else None,
    )  # fmt: skip


def _comm_rules(cfg: AlarmsConfig, points: dict[str, PointFacts], specs: dict[str, Spec]) -> None:
    by_device: dict[str, list[str]] = {}
    by_conn: dict[str, set[str]] = {}
    for name, f in points.items():
        by_device.setdefault(f.device, []).append(name)
        by_conn.setdefault(f.connection, set()).add(f.device)
    for dev, names in by_device.items():
        fastest = min(points[n].interval_s for n in names)
        delay = max(cfg.comm_loss_delay_s, 2 * fastest + 1.0 + _longest_poll(points[names[0]]))
        specs[f"comm.{dev}"] = Spec(
            id=f"comm.{dev}", point=None, kind=COMM_KIND, code="COMM_LOST",
            priority=cfg.comm_loss_priority, after_s=delay, device=dev, watch=tuple(names),
        )  # fmt: skip
        for s in specs.values():
            if s.point in names and s.kind in ("stale", "bad_quality") and s.cause is None:
                own = s.after_s if s.kind == "stale" else 0.0
                margin = FOLD_MARGIN_S + fastest
                s.cause, s.window_s = f"comm.{dev}", max(0.0, delay - (own or 0.0)) + margin
    for conn, devs in by_conn.items():
        if len(devs) < 2:
            continue
        names = [n for n, f in points.items() if f.connection == conn]
        delay = max(specs[f"comm.{d}"].after_s or 0.0 for d in devs)
        cid = f"comm.{_safe(conn)}"
        specs[cid] = Spec(
            id=cid, point=None, kind=COMM_KIND, code="COMM_LOST",
            priority=cfg.comm_loss_priority, after_s=delay, device=conn, watch=tuple(names),
        )  # fmt: skip
        fastest = min(points[n].interval_s for n in names)
        skew = fastest + _longest_poll(points[names[0]])  # one device's poll arrives this late
        for d in devs:
            own = specs[f"comm.{d}"].after_s or 0.0
            specs[f"comm.{d}"].cause = cid
            specs[f"comm.{d}"].window_s = max(0.0, delay - own) + FOLD_MARGIN_S + skew


def _longest_poll(f: PointFacts) -> float:
    """How long one poll of ``f``'s connection can take when its devices stop answering, s: a
    silent device costs one response timeout per poll (it is then offline and probed), so
    ``timeout × devices on the connection``. A poll hands over its readings when it ends, so
    a good reading taken at its start arrives this much later; a comm-loss delay shorter than
    this raises while such a poll is still on its way and clears when it lands."""
    if f.devices_on_connection < 2:
        return 0.0  # one device: a poll cut by its own silence ends within the 1 s of slack
    return f.timeout_s * f.devices_on_connection


def _safe(name: str) -> str:
    """A connection name as an id part (``/tmp/x/ttyRTU0`` → ``tmp_x_ttyRTU0``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def alarm_facts(config: SiteConfig, catalogue: Sequence[PointInfo]) -> dict[str, PointFacts]:
    """Point → what the alarm rules need of it (device, connection, unit, poll interval), for
    the polled points of ``config``; ``catalogue`` gives the units."""
    units = {p.name: p.unit for p in catalogue}
    out: dict[str, PointFacts] = {}
    for cp in config.connections():
        groups = cp.groups.items()
        devices = len({p.device for _, points in groups for p in points})
        timeout = float(getattr(cp.spec, "timeout_s", 1.0))
        for interval, points in groups:
            for p in points:
                out[p.name] = PointFacts(
                    p.device, cp.spec.name, units.get(p.name), interval, timeout, devices
                )
    return out
