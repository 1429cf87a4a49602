"""The status page as HTML, rendered on the gateway from one :func:`agent.status.snapshot`.

The page is split into sections (``alarms``, ``control``, ``trends``, ``uplink``, ``devices``,
``connections``); the first load gets them all inside :data:`SHELL`, and the live stream
(``/events``) sends them again every second for the page's few lines of script to swap in: one
renderer, no reload, readable with script off (then it is a snapshot). Values are rounded for
reading (:func:`fmt_value`), coded values shown in words (the point's ``enum``), quality in words.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.statuspage.trends import CHARTS, Trends

QUALITY = {"g": "good", "c": "comm fail", "b": "bad value", "s": "stale"}
"""Quality codes of the snapshot (:class:`agent.core.model.Quality`) in words."""
e = html.escape


def fmt_value(value: Any, unit: str | None = None) -> str:
    """A value for reading: booleans yes/no, numbers rounded to what a gauge shows (3 decimals
    below 1, 2 below 10, 1 below 100, none above), with the unit."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            text = str(value)
        else:
            a = abs(value)
            digits = 3 if a < 1 else 2 if a < 10 else 1 if a < 100 else 0
            text = f"{value:.{digits}f}"
    else:
        text = str(value)
    return f"{text} {unit}" if unit else text


ALARM_STATES = {
    "unack_active": "active, not acknowledged",
    "ack_active": "active, acknowledged",
    "rtn_unack": "back to normal, not acknowledged",
    "shelved": "shelved",
    "out_of_service": "out of service",
}
"""Alarm states (ISA-18.2, :class:`agent.alarms.state.State`) in words."""


def utc_text(ms: Any) -> str:
    """UTC ms → ``2026-12-05 08:00:00 UTC`` (text as given when not a number)."""
    if isinstance(ms, int | float) and not isinstance(ms, bool):
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "" if ms is None else str(ms)


def alarm_text(a: dict[str, Any]) -> str:
    """One alarm of the snapshot's ``alarms`` list as one line of text."""
    value, limit, unit = a.get("value"), a.get("limit"), a.get("unit")
    text = f"{a.get('code') or a.get('rule')} on {a.get('point')}"
    if value is not None:
        text += f": {fmt_value(value, unit)}"
    if limit is not None:
        text += f" (limit {fmt_value(limit, unit)})"
    state = ALARM_STATES.get(str(a.get("state")), str(a.get("state", "")))
    return f"{text}, {a.get('priority', '')}, {state}, since {utc_text(a.get('raised_at'))}"


def _alarms(snap: dict[str, Any]) -> str:
    alarms = snap.get("alarms")
    down = [c for c in snap.get("connections", []) if not c.get("ok")]
    items = []
    for a in alarms or []:  # the agent's list: what needs attention, most urgent first
        if a.get("state") == "normal":
            continue
        items.append(f'<li class="alarm p-{e(str(a.get("priority", "")))}">{e(alarm_text(a))}</li>')
    for c in down:
        items.append(
            f'<li class="alarm"><b>connection {e(c["name"])}</b> '
            f"{'failing' if c.get('connected') else 'down'}: {e(str(c.get('last_error') or ''))}"
            "</li>"
        )
    if not items:
        note = "no active alarms" if alarms is not None else "no connection problems"
        return f'<p class="ok">✓ {note}</p>'
    return f'<ul class="alarms">{"".join(items)}</ul>'


def _control(snap: dict[str, Any]) -> str:
    ctl = snap.get("control")
    points = snap.get("points", {})
    rows: list[tuple[str, str]] = []
    if ctl:
        rows.append(("loop", f"{ctl.get('state')} ({ctl.get('mode')})"))
        rows.append(("setpoint", fmt_value(ctl.get("setpoint_mpa"), "MPa")))
        rows.append(("effective setpoint", fmt_value(ctl.get("effective_setpoint_mpa"), "MPa")))
        rows.append(("outlet pressure", fmt_value(ctl.get("pv_mpa"), "MPa")))
        if ctl.get("fallback"):
            rows.append(("fallback", f"yes: {ctl.get('pv_fault') or ''}"))
        if ctl.get("active"):
            rows.append(("active functions", ", ".join(ctl["active"])))
        running = ctl.get("pumps_running") or []
        if running:
            rows.append(
                (
                    "pumps",
                    " ".join(f"P{i + 1} {'on' if r else 'off'}" for i, r in enumerate(running)),
                )
            )
    else:
        rows.append(("loop", "none (the cabinet's own)"))
    for name in ("cabinet.mode", "setpoint", "cabinet.setpoint_active", "p_out", "flow"):
        p = points.get(name)
        if p is not None:
            rows.append((name, _value_text(p)))
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _value_text(p: dict[str, Any]) -> str:
    if p.get("q") != "g":
        return f"{QUALITY.get(p.get('q', ''), p.get('q'))} ({p.get('reason') or ''})"
    text = fmt_value(p.get("value"), p.get("unit"))
    return f"{p['text']} [{text}]" if p.get("text") else text


def _uplink(snap: dict[str, Any]) -> str:
    up = snap.get("uplink", {})
    buf = snap.get("buffer", {})
    state = "connected" if up.get("connected") else "DOWN"
    rows = [
        ("uplink", state + (f": {up['last_error']}" if up.get("last_error") else "")),
        ("sent", f"{up.get('samples_live', 0)} live + {up.get('samples_backfill', 0)} backfill"),
        ("connects", f"{up.get('connects', 0)} ({up.get('connect_failures', 0)} failed)"),
        ("buffer", f"{buf.get('pending', 0)} samples waiting"),
        ("buffer totals", f"{buf.get('appended', 0)} appended, {buf.get('acked', 0)} acked, "
         f"{buf.get('evicted', 0)} evicted"),
        ("lost before the buffer",
         str(buf.get("not_buffered", 0) + buf.get("dropped_overflow", 0))),
        ("up", f"{snap.get('uptime_s', 0)} s"),
    ]  # fmt: skip
    ref = up.get("refusals") or {}
    if ref.get("last"):  # the broker refuses something (agent.refusals)
        counts = ", ".join(f"{k} ×{n}" for k, n in sorted(ref.get("counts", {}).items()))
        rows.insert(1, ("broker refuses", f"{ref['last']} ({ref.get('last_age_s')} s ago); "
                                          f"since start: {counts}"))  # fmt: skip
    bad = {"broker refuses"} | (set() if up.get("connected") else {"uplink"})
    cls = ' class="bad"'
    body = "".join(f"<tr{cls if k in bad else ''}><th>{e(k)}</th><td>{e(v)}</td></tr>"
                   for k, v in rows)  # fmt: skip
    return f'<table class="kv">{body}</table>'


def _devices(snap: dict[str, Any]) -> str:
    points = snap.get("points", {})
    conns = {c["name"]: c for c in snap.get("connections", [])}
    cards = []
    for d in snap.get("devices", []):
        conn = conns.get(d.get("connection") or "")
        ok = conn is None or conn.get("ok")
        head = f"<h3>{e(d['name'])} <small>{e(d.get('description') or '')}</small></h3>"
        if d.get("profile"):
            head += f'<p class="muted">profile {e(d["profile"])}</p>'
        rows = []
        for name in d["points"]:
            p = points.get(name)
            if p is None:
                rows.append(f"<tr><td>{e(name)}</td><td>–</td><td>not read yet</td></tr>")
                continue
            good = p.get("q") == "g"
            value = fmt_value(p.get("value"), p.get("unit")) if good else "–"
            words = f' <span class="enum">{e(p["text"])}</span>' if good and p.get("text") else ""
            quality = QUALITY.get(p.get("q"), p.get("q"))
            if not good and p.get("reason"):
                quality += f": {p['reason']}"
            cls = "" if good else ' class="bad"'
            rows.append(
                f'<tr{cls}><td>{e(name)}</td><td class="v">{e(value)}{words}</td>'
                f'<td class="q">{e(quality)}</td></tr>'
            )
        state = "OK" if ok else "FAILING"
        cards.append(
            f'<section class="card device{"" if ok else " down"}" id="dev-{e(d["name"])}">'
            f'{head}<p class="state">{state}</p><table class="points">{"".join(rows)}</table>'
            "</section>"
        )
    return "".join(cards)


def _connections(snap: dict[str, Any]) -> str:
    rows = []
    for c in snap.get("connections", []):
        state = "OK" if c["ok"] else ("FAILING" if c["connected"] else "DOWN")
        when = ""
        if c.get("last_error") is not None:
            after = "recovered, OK now" if c["ok"] else "not recovered"
            when = f"{c['last_error_at']} ({c['last_error_age_s']} s ago; {after})"
        cls = "" if c["ok"] else ' class="bad"'
        rows.append(
            f"<tr{cls}><td>{e(c['name'])}</td><td>{state}</td><td>{c['polls']}</td>"
            f"<td>{c['polls_failed']}</td><td>{c['overruns']}</td>"
            f"<td>{e(c.get('last_error') or '')}</td><td>{e(when)}</td></tr>"
        )
    return (
        '<table class="conns"><tr><th>connection</th><th>state</th><th>polls</th><th>failed</th>'
        "<th>overruns</th><th>last error</th><th>when (UTC)</th></tr>" + "".join(rows) + "</table>"
    )


def sections(snap: dict[str, Any], trends: Trends | None, now_s: float) -> dict[str, str]:
    """Section id → inner HTML, for the page and for each live update."""
    charts = ""
    if trends is not None:
        charts = "".join(trends.svg(c, title, unit, now_s) for c, unit, title in CHARTS)
    return {
        "alarms": _alarms(snap),
        "control": _control(snap),
        "trends": charts or '<p class="muted">no pressure, flow or frequency points</p>',
        "uplink": _uplink(snap),
        "devices": _devices(snap),
        "connections": _connections(snap),
    }


_HERE = Path(__file__).resolve().parent
SHELL = (_HERE / "shell.html").read_text(encoding="utf-8")
"""The page around the sections (``str.format`` fields: gateway, site, css, js, section ids)."""
CSS = (_HERE / "page.css").read_text(encoding="utf-8")
JS = (_HERE / "page.js").read_text(encoding="utf-8")
"""Swaps in each ``/events`` update's sections; marks the page stale after 5 s without one."""


def page(snap: dict[str, Any], trends: Trends | None, now_s: float) -> str:
    """The whole page (first load)."""
    parts = sections(snap, trends, now_s)
    return SHELL.format(
        gateway=e(str(snap.get("gateway"))),
        site=e(str(snap.get("site"))),
        css=CSS,
        js=JS,
        **parts,
    )


Renderer = Callable[[dict[str, Any], Trends | None, float], dict[str, str]]
