"""The local status view for technicians: one snapshot of the whole agent.

``GET /status.json`` returns :func:`snapshot`; ``GET /`` renders the same as a page grouped by
device with live updates and trend charts (:mod:`agent.statuspage`). The server (aiohttp)
listens where ``status.listen`` says, loopback by default. The same snapshot, shortened, goes
into the retained ``status`` message every minute.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from agent.core.progress import PROGRESS

if TYPE_CHECKING:
    from aiohttp import web

    from agent.app import Agent
    from agent.poller import ConnectionPoller

log = logging.getLogger(__name__)
_STARTED = time.monotonic()


def snapshot(agent: Agent, *, points: bool = True, alarms: bool = True) -> dict[str, Any]:
    """The agent's state now: uplink, buffer, connections with their counters, latest values.

    Shape: ``{"gateway", "site", "uptime_s", "uplink": {...}, "buffer": {...},
    "connections": [{"name", "connected", "polls", "polls_failed", "overruns", "ok",
    "last_error", "last_error_at", "last_error_age_s", "driver": {...}}],
    "task_failures", "tasks": {name: {"running", "failures", "last_failure",
    "last_failure_at"}}, "stages": {name: {"age_s", "limit_s", "stalled"}},
    "reload": {"outcome", "at", "detail", "restarted", "restart_needed"} | None,
    "points": {name: {"value", "q", "reason", "age_s", "unit", "text", "device"}},
    "devices": [{"name", "description", "profile", "transport", "connection", "points": [...]}],
    "control": {...}}`` (``points``, ``devices`` and ``control`` only when asked, so the retained
    ``status`` message keeps its shape; ``control`` only with a control loop, see
    :func:`control_state`). A point's ``unit`` is its configured unit, ``text``
    the word of its ``enum`` for the current value (``None`` without one).
    ``buffer`` counts since start: ``pending``, ``appended``, ``acked``, ``evicted`` (by the byte
    bound or a full disk), ``rejected``, and what was lost before the buffer: ``not_buffered``
    (readings the buffer refused: a disk error), ``dropped_overflow`` (readings the ingest queue
    dropped while the buffer was slow), ``unstorable`` (good readings whose value could not be
    kept, buffered as bad-value samples); each loss is also a ``data_loss`` event or a log line.

    ``alarms`` (when ``alarms:`` is configured and asked for): the active alarm list, most
    urgent first: ``[{"id", "point", "rule", "code", "priority", "state", "active", "value",
    "limit", "unit", "raised_at", "acked_at", "cleared_at", "shelved_until", "detail"}]``
    (times UTC ms; :func:`agent.alarms.runtime.status_entry`).

    ``uplink`` also holds what the broker imposes: ``refusals`` (``{"counts": {"PUBACK 0x87 Not
    authorized (telemetry)": n, …}, "last", "last_age_s"}``, :mod:`agent.refusals`),
    ``set_aside`` (messages that can never fit the broker's packet limit) and ``limits``
    (``{"receive_maximum", "inflight_limit", "max_packet_size"}`` of the current connection).

    ``tasks`` is the supervisor's record of every long-lived task (:mod:`agent.supervisor`):
    failures (an exception or an unexpected end) since start, the last one and when;
    ``stages`` the heartbeats (:mod:`agent.core.progress`): seconds since each stage last made
    progress, its limit, and whether it is stalled.

    A connection's ``last_error`` is the newest failure of the connection, its driver or one of
    its devices (a device's prefixed with the device name), ``last_error_at`` its UTC time
    (ISO 8601, ms, the agent's clock when it happened) and ``last_error_age_s`` its age in
    seconds (``None`` when there was none). ``ok`` is whether it works *now*: connected, and
    for the connection, the driver and every device the last success is newer than the last
    failure. So an error followed by recovery still shows, with its time, beside ``ok: true``.
    The driver's own counters (and each device's) carry the same ``last_error_at``,
    ``last_error_age_s``, ``last_ok_age_s`` and ``ok`` (:class:`agent.core.health.Health`).
    """
    now = time.monotonic()
    out: dict[str, Any] = {
        "gateway": agent.gateway,
        "site": agent.config.site.id,
        "uptime_s": round(now - _STARTED, 1),
    }
    runtime = getattr(agent, "alarms", None)
    if alarms and runtime is not None:
        out["alarms"] = runtime.status_list()
    if agent.uplink is not None:
        c = agent.uplink.counters
        out["uplink"] = {
            "connected": agent.uplink.connected.is_set(),
            "connects": c.connects,
            "connect_failures": c.connect_failures,
            "samples_live": c.samples_live,
            "samples_backfill": c.samples_backfill,
            "publish_failures": c.publish_failures,
            "last_error": c.last_error,
            "watermark": dict(agent.uplink.watermark),
            "set_aside": c.set_aside,
            "refusals": agent.uplink.refusals.snapshot(),
            "limits": agent.uplink.limits(),
        }
    if agent.store is not None:
        s = agent.store.counters
        out["buffer"] = {
            "pending": agent.store.pending_rows,
            "appended": s.appended,
            "acked": s.acked,
            "evicted": s.evicted,
            "rejected": s.rejected,
        }
        if agent.ingest is not None:  # readings that never got a seq, and values not kept
            i = agent.ingest.counters
            out["buffer"].update(
                not_buffered=i.append_failures,
                dropped_overflow=i.dropped_overflow,
                unstorable=i.unstorable,
            )
    out["connections"] = [_connection(p, now) for p in agent.pollers]
    sup = agent.supervisor
    out["task_failures"] = sup.failures if sup is not None else 0
    out["tasks"] = sup.snapshot() if sup is not None else {}
    out["stages"] = PROGRESS.snapshot(now)
    out["reload"] = agent.reloaded.snapshot() if agent.reloaded is not None else None
    control = control_state(agent.control) if points else None
    if control is not None:
        out["control"] = control
    if points:
        meta = point_meta(agent.config)
        out["points"] = {}
        for name, latest in sorted(agent.cache.snapshot().items()):
            unit, enum, device = meta.get(name, (None, None, None))
            value = latest.value
            text = None
            if enum and isinstance(value, int | float) and not isinstance(value, bool):
                text = enum.get(int(value)) if float(value).is_integer() else None
            out["points"][name] = {
                "value": value,
                "q": latest.quality.code,
                "reason": latest.reason,
                "age_s": round(now - latest.mono, 1),
                "unit": unit,
                "text": text,
                "device": device,
            }
        out["devices"] = _devices(agent)
    return out


def trend_points(config: Any) -> dict[str, str | None]:
    """Point name → unit of the points marked ``trend: true`` (all points when none is)."""
    marked = {p.name: p.unit for d in config.devices for p in d.points if p.trend}
    return marked or {p.name: p.unit for d in config.devices for p in d.points}


def point_meta(config: Any) -> dict[str, tuple[str | None, dict[int, str] | None, str]]:
    """Point name → (unit, enum, device name) from the configuration (``ctl.*`` points of the
    control loop get their unit from its catalogue)."""
    from agent.control.state import CATALOGUE

    out: dict[str, tuple[str | None, dict[int, str] | None, str]] = {}
    for d in config.devices:
        for p in d.points:
            out[p.name] = (p.unit, p.enum, d.name)
    for name, unit, _ in CATALOGUE:
        out.setdefault(name, (unit, None, "control"))
    return out


def _devices(agent: Agent) -> list[dict[str, Any]]:
    """Each configured device with its points, in config order, and whether its connection
    works now (the ``ok`` of the connection that polls it)."""
    conn_of: dict[str, str] = {}
    for poller in agent.pollers:
        for group in poller.groups:
            for spec in group.points:
                conn_of.setdefault(spec.device, poller.name)
    out = []
    for d in agent.config.devices:
        out.append(
            {
                "name": d.name,
                "description": d.description,
                "profile": d.profile,
                "transport": d.transport,
                "connection": conn_of.get(d.name),
                "points": [p.name for p in d.points],
            }
        )
    return out


def control_state(loop: Any) -> dict[str, Any] | None:
    """The local control loop's state, or ``None`` without one: ``{"state": "supervisory",
    "mode": "auto"|"remote"|"manual", "setpoint_mpa", "effective_setpoint_mpa", "pv_mpa",
    "fallback", "pv_fault", "active": [functions], "pumps_running": [bool per pump],
    "drive_comm_loss", "outputs"}`` (MPa); ``drive_comm_loss`` (direct mode) is ``{"action",
    "timeout_s", "confirmed"}`` — whether every drive reads back the communication-loss action
    the loop set — and ``outputs`` per written point its wanted and read-back value and state
    (:meth:`agent.control.loop.ControlLoop.status`)."""
    if loop is None:
        return None

    def _round(v: Any) -> float | None:
        return None if v is None else round(float(v), 4)

    staging = getattr(loop, "staging", None)
    status = getattr(loop, "status", None)
    extra: dict[str, Any] = status() if callable(status) else {}
    return {
        "state": getattr(loop, "state", None),
        "mode": str(getattr(loop, "mode", "")) or None,
        "setpoint_mpa": _round(getattr(loop, "sp", None)),
        "effective_setpoint_mpa": _round(getattr(loop, "sp_eff", None)),
        "pv_mpa": _round(getattr(loop, "pv", None)),
        "fallback": bool(getattr(loop, "fallback", False)),
        "pv_fault": getattr(loop, "pv_fault", None),
        "active": sorted(getattr(loop, "active", set()) or ()),
        "pumps_running": list(getattr(staging, "running", ()) or ()),
        "drive_comm_loss": extra.get("drive_comm_loss"),
        "outputs": extra.get("outputs"),
    }


def status_line(agent: Agent) -> str:
    """One line for systemd's ``STATUS=`` (``systemctl status``): uplink state, backlog,
    failing connections, stalled stages, task failures. Example:
    ``uplink up, backlog 0, failing: analyser, task failures 1``."""
    up = agent.uplink is not None and agent.uplink.connected.is_set()
    backlog = agent.store.pending_rows if agent.store is not None else 0
    failing = [
        p.name
        for p in agent.pollers
        if not p.counters.connected or p.counters.health.ok_now is False
    ]
    line = f"uplink {'up' if up else 'down'}, backlog {backlog}"
    line += f", failing: {' '.join(failing)}" if failing else ", all connections ok"
    stalled = PROGRESS.stalled()
    if stalled:
        line += f", STALLED: {' '.join(stalled)}"
    if agent.supervisor is not None and agent.supervisor.failures:
        line += f", task failures {agent.supervisor.failures}"
    return line


def _connection(poller: ConnectionPoller, now: float) -> dict[str, Any]:
    """One connection's entry of :func:`snapshot` (``now``: ``time.monotonic()``)."""
    c = poller.counters
    own = c.health.snapshot(now)
    driver = _jsonable(poller.driver.counters())
    driver["unmapped_errors"] = dict(vars(poller.driver).get("unmapped_errors", {}))
    marks: list[tuple[str, dict[str, Any]]] = [("", own)]
    if "ok" in driver:
        marks.append(("", driver))
    for device, unit in (driver.get("devices") or {}).items():
        if isinstance(unit, dict) and "ok" in unit:
            marks.append((f"{device}: ", unit))
    errors = [
        (mark["last_error_age_s"], prefix + str(mark["last_error"]), mark.get("last_error_at"))
        for prefix, mark in marks
        if mark.get("last_error") is not None and mark.get("last_error_age_s") is not None
    ]
    age, text, at = min(errors) if errors else (None, None, None)
    return {
        "name": poller.name,
        "connected": c.connected,
        "polls": c.polls,
        "polls_failed": c.polls_failed,
        "overruns": c.overruns,
        "ok": c.connected and all(mark.get("ok") is not False for _, mark in marks),
        "last_error": text,
        "last_error_at": at,
        "last_error_age_s": age,
        "driver": driver,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


async def serve(agent: Agent, host: str, port: int) -> web.AppRunner | None:
    """Start the status page (:mod:`agent.statuspage.server`) with the token ``status:``
    configures, if any; returns its runner, or ``None`` (logged at ERROR) when the port is taken
    or the configured token cannot be read (then no page rather than an open one)."""
    from agent.logs import redact
    from agent.statuspage.server import serve as serve_page

    page = agent.config.status
    try:
        token = page.token() if page is not None else None
        redact(token)
    except OSError as exc:
        log.error("status page not started: cannot read its access token: %s", exc)
        return None
    runner: web.AppRunner | None = await serve_page(agent, host, port, token)
    return runner
