"""The local status view for technicians: one snapshot of the whole agent, as JSON and as a page.

``GET /status.json`` returns :func:`snapshot`; ``GET /`` renders the same as a plain HTML page
that refreshes itself every 2 s (no JavaScript, readable on a phone in the pump room). The
server (aiohttp) listens where ``status.listen`` says, loopback by default. The same snapshot,
shortened, goes into the retained ``status`` message every minute.
"""

from __future__ import annotations

import html
import logging
import time
from typing import TYPE_CHECKING, Any

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
    "points": {name: {"value", "q", "reason", "age_s"}}}`` (``points`` only when asked).
    ``buffer`` counts since start: ``pending``, ``appended``, ``acked``, ``evicted`` (by the byte
    bound or a full disk), ``rejected``, and what was lost before the buffer: ``not_buffered``
    (readings the buffer refused: a disk error), ``dropped_overflow`` (readings the ingest queue
    dropped while the buffer was slow), ``unstorable`` (good readings whose value could not be
    kept, buffered as bad-value samples); each loss is also a ``data_loss`` event or a log line.

    ``alarms`` (when ``alarms:`` is configured and asked for): the active alarm list, most
    urgent first: ``[{"id", "point", "rule", "code", "priority", "state", "active", "value",
    "limit", "unit", "raised_at", "acked_at", "cleared_at", "shelved_until", "detail"}]``
    (times UTC ms; :func:`agent.alarms.runtime.status_entry`).

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
    if points:
        out["points"] = {
            name: {
                "value": latest.value,
                "q": latest.quality.code,
                "reason": latest.reason,
                "age_s": round(now - latest.mono, 1),
            }
            for name, latest in sorted(agent.cache.snapshot().items())
        }
    return out


def _connection(poller: ConnectionPoller, now: float) -> dict[str, Any]:
    """One connection's entry of :func:`snapshot` (``now``: ``time.monotonic()``)."""
    c = poller.counters
    own = c.health.snapshot(now)
    driver = _jsonable(poller.driver.counters())
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


def render(snap: dict[str, Any]) -> str:
    """The snapshot as a self-refreshing HTML page."""
    e = html.escape
    up = snap.get("uplink", {})
    buf = snap.get("buffer", {})
    rows = []
    for c in snap["connections"]:
        state = "OK" if c["ok"] else ("FAILING" if c["connected"] else "DOWN")
        style = "" if c["ok"] else ' style="color:#b00"'
        when = ""
        if c["last_error"] is not None:
            after = "recovered, OK now" if c["ok"] else "not recovered"
            when = f"{c['last_error_at']} ({c['last_error_age_s']} s ago; {after})"
        rows.append(
            f"<tr{style}><td>{e(c['name'])}</td><td>{state}</td><td>{c['polls']}</td>"
            f"<td>{c['polls_failed']}</td><td>{c['overruns']}</td>"
            f"<td>{e(c['last_error'] or '')}</td><td>{e(when)}</td></tr>"
        )
    points = []
    for name, p in snap.get("points", {}).items():
        style = "" if p["q"] == "g" else ' style="color:#b00"'
        points.append(
            f"<tr{style}><td>{e(name)}</td><td>{e(str(p['value']))}</td><td>{p['q']}"
            f" {e(p['reason'] or '')}</td><td>{p['age_s']}</td></tr>"
        )
    return (
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=2>"
        f"<title>pumproom-edge {e(snap['gateway'])}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style>"
        f"<h1>{e(snap['site'])} / {e(snap['gateway'])}</h1>"
        f"<p>uplink: <b>{'connected' if up.get('connected') else 'DOWN'}</b>, "
        f"{up.get('samples_live', 0)} live + {up.get('samples_backfill', 0)} backfill samples"
        " sent; "
        f"buffer: <b>{buf.get('pending', 0)}</b> samples waiting, {buf.get('evicted', 0)} evicted, "
        f"{buf.get('not_buffered', 0) + buf.get('dropped_overflow', 0)} lost before the buffer; "
        f"up {snap['uptime_s']} s</p>"
        "<h2>Connections</h2><table><tr><th>connection</th><th>state</th><th>polls</th>"
        "<th>failed</th><th>overruns</th><th>last error</th><th>when (UTC)</th></tr>"
        + "".join(rows)
        + "</table>"
        "<h2>Points</h2><table><tr><th>point</th><th>value</th><th>quality</th><th>age s</th></tr>"
        + "".join(points)
        + "</table>"
    )


async def serve(agent: Agent, host: str, port: int) -> web.AppRunner | None:
    """Start the status server; returns its runner, or ``None`` (logged) when the port is taken.

    aiohttp is imported here, not at module level: a gateway without the page saves its memory.
    """
    from aiohttp import web

    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=render(snapshot(agent)), content_type="text/html")

    async def status_json(request: web.Request) -> web.Response:
        return web.json_response(snapshot(agent))

    app.router.add_get("/", page)
    app.router.add_get("/status.json", status_json)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.error(
            "status page: cannot listen on %s:%d: %s (the agent runs on without it)",
            host,
            port,
            exc,
        )
        await runner.cleanup()
        return None
    log.info("status page on http://%s:%d/", host, port)
    return runner
