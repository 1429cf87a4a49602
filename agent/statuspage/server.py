"""The status page server (aiohttp): read-only, loopback by default, live over server-sent events.

Routes (all ``GET``; nothing on the page can change the agent or a device):

* ``/`` the page (:mod:`agent.statuspage.render`), complete on first load;
* ``/events`` a ``text/event-stream``: every :data:`~agent.statuspage.trends.SAMPLE_S` one
  ``data:`` line ``{"t": ms, "sections": {id: html}}`` that the page swaps in (no reload);
* ``/status.json`` :func:`agent.status.snapshot` as JSON (``pumproom-agent status`` reads it).

One task samples the cache once a second into the trend history and, while a page is open,
renders the sections once (in a thread: the event loop never waits on it) for every open page.
With ``status.token_env``/``token_file`` configured every request needs the token, as
``?token=…`` (the page passes it on to ``/events``) or ``Authorization: Bearer …``; a
``status.listen`` on anything but loopback is refused by the config without one.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agent.core.aio import cancel_all, within
from agent.statuspage import render
from agent.statuspage.trends import SAMPLE_S, Trends

if TYPE_CHECKING:
    from aiohttp import web

    from agent.app import Agent

log = logging.getLogger(__name__)
MAX_STREAMS = 8
"""Open pages served at once (each gets the same rendered sections; more are refused 503)."""
WRITE_TIMEOUT_S = 10.0
"""A page that does not take an update within this long is dropped (a vanished phone)."""


class _Live:
    """The shared trend history and the latest rendered sections."""

    def __init__(self, agent: Agent) -> None:
        from agent.status import trend_points

        self.agent = agent
        self.trends = Trends(trend_points(agent.config))
        self.streams = 0
        self.latest: dict[str, str] = {}
        self.version = 0
        self.changed = asyncio.Condition()

    def sample(self) -> None:
        values: dict[str, float | None] = {}
        snap = self.agent.cache.snapshot()
        for name in self.trends.series:
            latest = snap.get(name)
            ok = latest is not None and latest.quality.code == "g"
            v = latest.value if latest is not None else None
            num = isinstance(v, int | float) and not isinstance(v, bool)
            values[name] = float(v) if ok and num else None  # type: ignore[arg-type]
        self.trends.sample(time.time(), values)

    async def run(self) -> None:
        from agent.status import snapshot

        while True:
            try:
                self.sample()
                if self.streams:
                    snap = snapshot(self.agent)
                    self.latest = await asyncio.to_thread(
                        render.sections, snap, self.trends, time.time()
                    )
                    async with self.changed:
                        self.version += 1
                        self.changed.notify_all()
            except Exception:  # a rendering bug must not end the page's updates for good
                log.exception("status page: rendering failed (retrying in %.0f s)", SAMPLE_S)
            await asyncio.sleep(SAMPLE_S)


def _authorised(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    given = request.query.get("token", "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth[len("Bearer ") :]
    return hmac.compare_digest(given.encode(), token.encode())


async def serve(agent: Agent, host: str, port: int, token: str | None = None) -> Any:
    """Start the page server; returns its ``web.AppRunner`` (``await runner.cleanup()`` stops
    it and its sampling task), or ``None`` (logged) when the port is taken.

    aiohttp is imported here, not at module level: a gateway without the page saves its memory.
    """
    from aiohttp import web

    from agent.status import snapshot

    live = _Live(agent)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        if not _authorised(request, token):
            raise web.HTTPUnauthorized(text="status page: token required (?token=...)\n")
        response: web.StreamResponse = await handler(request)
        return response

    async def page(request: web.Request) -> web.Response:
        text = await asyncio.to_thread(render.page, snapshot(agent), live.trends, time.time())
        return web.Response(text=text, content_type="text/html")

    async def status_json(request: web.Request) -> web.Response:
        return web.json_response(snapshot(agent))

    async def events(request: web.Request) -> web.StreamResponse:
        if live.streams >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(text="too many open status pages\n")
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await within(resp.prepare(request), WRITE_TIMEOUT_S)
        live.streams += 1
        seen = [live.version]
        try:
            while True:
                async with live.changed:
                    await within(live.changed.wait_for(lambda: live.version != seen[0]), 30.0)
                    seen[0] = live.version
                body = json.dumps({"t": int(time.time() * 1000), "sections": live.latest})
                await within(resp.write(f"data: {body}\n\n".encode()), WRITE_TIMEOUT_S)
        except (ConnectionError, TimeoutError):
            pass  # the page went away (or stopped reading): nothing to clean up but the count
        finally:
            live.streams -= 1
        return resp

    async def sampler(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(live.run(), name="status-page-sampler")
        yield
        await cancel_all([task])

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", page)
    app.router.add_get("/status.json", status_json)
    app.router.add_get("/events", events)
    app.cleanup_ctx.append(sampler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
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
    log.info("status page on http://%s:%d/%s", host, port, " (token required)" if token else "")
    return runner
