"""``pumproom-agent status``: the running agent's live state, from its status endpoint
(``/status.json``, :func:`agent.status.snapshot`), as text tables or ``--json``."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import click

from agent.statuspage.render import QUALITY, alarm_text, fmt_value
from agent.tools import options

TIMEOUT_S = 5.0


def fetch(url: str, token: str | None) -> dict[str, Any]:
    """GET ``url`` (``…/status.json``) as JSON.

    Raises:
        OSError: unreachable, refused, HTTP error (``urllib.error.URLError`` is one).
        ValueError: not JSON.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # the operator's own agent
        data: dict[str, Any] = json.loads(resp.read().decode())
    return data


def render(snap: dict[str, Any]) -> str:
    """The snapshot as text: alarms, control, uplink and buffer, devices, connections."""
    out = [f"{snap.get('site')} / {snap.get('gateway')}, up {snap.get('uptime_s')} s", ""]
    alarms = snap.get("alarms")
    out.append("ALARMS")
    active = [a for a in alarms or [] if a.get("state") != "normal"]
    out += [f"  {alarm_text(a)}" for a in active]
    if not active:
        out.append("  none active" if alarms is not None else "  (no alarms configured)")
    ctl = snap.get("control")
    out += ["", "CONTROL"]
    if ctl:
        out.append(
            f"  {ctl.get('state')} ({ctl.get('mode')}), setpoint "
            f"{fmt_value(ctl.get('setpoint_mpa'), 'MPa')} (effective "
            f"{fmt_value(ctl.get('effective_setpoint_mpa'), 'MPa')}), outlet "
            f"{fmt_value(ctl.get('pv_mpa'), 'MPa')}"
            + (f", FALLBACK {ctl.get('pv_fault')}" if ctl.get("fallback") else "")
        )
    else:
        out.append("  no local control loop (the cabinet's own)")
    up, buf = snap.get("uplink", {}), snap.get("buffer", {})
    out += ["", "UPLINK AND BUFFER"]
    out.append(
        f"  uplink {'connected' if up.get('connected') else 'DOWN'}, "
        f"{up.get('samples_live', 0)} live + {up.get('samples_backfill', 0)} backfill samples "
        f"sent, {up.get('connects', 0)} connects ({up.get('connect_failures', 0)} failed)"
        + (f", last error: {up['last_error']}" if up.get("last_error") else "")
    )
    out.append(
        f"  buffer {buf.get('pending', 0)} samples waiting; {buf.get('appended', 0)} appended, "
        f"{buf.get('acked', 0)} acked, {buf.get('evicted', 0)} evicted, "
        f"{buf.get('not_buffered', 0) + buf.get('dropped_overflow', 0)} lost before the buffer"
    )
    points = snap.get("points", {})
    width = max((len(n) for n in points), default=10)
    for d in snap.get("devices", []):
        title = d["name"] + (f" ({d['profile']})" if d.get("profile") else "")
        out += ["", f"DEVICE {title}"]
        for name in d.get("points", []):
            p = points.get(name)
            if p is None:
                out.append(f"  {name:<{width}}  –")
                continue
            good = p.get("q") == "g"
            value = fmt_value(p.get("value"), p.get("unit")) if good else "–"
            if good and p.get("text"):
                value += f" ({p['text']})"
            quality = QUALITY.get(p.get("q"), p.get("q"))
            if not good:
                quality += f": {p.get('reason')}"
            out.append(f"  {name:<{width}}  {value:>24}  {quality}")
    out += ["", "CONNECTIONS"]
    for c in snap.get("connections", []):
        state = "OK" if c.get("ok") else ("FAILING" if c.get("connected") else "DOWN")
        line = (
            f"  {c['name']}: {state}, {c.get('polls')} polls, {c.get('polls_failed')} failed, "
            f"{c.get('overruns')} overruns"
        )
        if c.get("last_error"):
            line += f"; last error {c['last_error']} at {c.get('last_error_at')}"
        out.append(line)
    return "\n".join(out)


@click.command("status", epilog=options.EPILOG_STATUS)
@options.config(required=False)
@options.overrides
@click.option("--url", help="The agent's status page, e.g. http://127.0.0.1:8080.")
@click.option("--token", help="The page's access token (default: from the config).")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
def status(
    config_path: str | None,
    overrides: tuple[str, ...],
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Show the running agent's live state: devices, values, control, alarms, buffer, uplink."""
    if url is None:
        site = options.load_site(
            options.need(config_path, "status without --url"),
            overrides,
            hint="status: the agent still runs on the config it last loaded; to see it, give its"
            " status page with --url (e.g. --url http://127.0.0.1:8080)",
        )
        page = site.status
        if page is None or not page.enabled:
            click.echo("status: the configuration has no status page (status.enabled)", err=True)
            sys.exit(2)
        host = page.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        url = f"http://{host if ':' not in host else f'[{host}]'}:{page.port}"
        if token is None:
            try:
                token = page.token()
            except OSError as exc:
                click.echo(f"status: cannot read the page token: {exc}", err=True)
                sys.exit(2)
    try:
        snap = fetch(url.rstrip("/") + "/status.json", token)
    except (OSError, ValueError) as exc:
        click.echo(
            f"status: no answer from the agent at {url}: {exc} (is the agent running, and is"
            " its status page at that address? --url picks another)",
            err=True,
        )
        sys.exit(1)
    click.echo(json.dumps(snap, indent=2) if as_json else render(snap))
