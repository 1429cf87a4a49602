"""Command intake: validate, deduplicate, expire, dispatch, answer (request → ack → result).

A request arrives on ``{base}/cmd/req`` (QoS 1, never retained; an empty payload, which clears a
retained message, is ignored). The agent answers on ``{base}/cmd/res`` (or the MQTT 5 Response
Topic, when it is ``cmd/res`` or below it) with the same ``id`` and MQTT 5 Correlation Data (also
when the payload is refused before its id is read: then ``"id": null``). The request is a closed
shape (``v1/command-request.schema.json``): an unknown member is refused, never ignored. First
comes an ``ack`` (accepted or rejected, with its code) at once, then, for an accepted request, a
``result`` when the change is done or has failed.

Result codes (fixed; shared/reference/uplink-protocol.md §6.7): ``OK``, ``DUPLICATE`` (the id
was seen in the last 24 h; the earlier answer is replayed in ``detail.previous``), ``EXPIRED``,
``INVALID_ARGUMENT``, ``OUT_OF_RANGE``, ``RATE_LIMITED``, ``NOT_PERMITTED``, ``UNAVAILABLE``,
``TIMEOUT``, ``INTERNAL``.

``setpoint.set`` (outlet-pressure setpoint, MPa) is carried out by the local control loop, which
owns the bounds (``control.remote``: refused, never clamped) and audits every change.
``alarm.ack``, ``alarm.shelve`` and ``alarm.unshelve`` go to the alarm stage
(:mod:`agent.alarms.commands` for their parameters); an accepted one is answered ack + result
at once, and its transition is an ``alarm`` event with ``by`` and ``cmd_id``. Nothing here
writes to a device.

Reading a request and the response body are :mod:`agent.command_request`'s, what its schema
does not allow :mod:`agent.command_shape`'s; this module dispatches and tracks the result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from agent.alarms import commands as alarm_commands
from agent.alarms.state import Refused
from agent.command_request import CODES, CommandError, Request, read_request, response
from agent.command_shape import shape_problems, time_ms
from agent.core.aio import cancel_all, spawn, wait_event
from agent.core.model import WallClock

__all__ = ["CODES", "AlarmTarget", "CommandError", "CommandHandler", "Request", "SetpointTarget"]

log = logging.getLogger(__name__)

RESULT_MARGIN_S = 30.0
"""How long after the end of the ramp a setpoint change may take to be reached."""


class SetpointTarget(Protocol):
    """What carries out ``setpoint.set`` (the control loop)."""

    async def request_setpoint(self, value_mpa: float, *, cmd_id: str, by: str) -> Any:
        """Returns an object with ``code`` (str) and ``detail`` (dict)."""

    async def wait_result(self, cmd_id: str, timeout_s: float) -> str:
        """How accepted command ``cmd_id`` ended: ``reached``, ``superseded``, ``cancelled``
        or ``timeout`` (about its own target, not a later command's)."""


class AlarmTarget(Protocol):
    """What carries out the alarm commands (:class:`agent.alarms.runtime.AlarmRuntime`)."""

    async def command(
        self, method: str, params: dict[str, Any], cmd_id: str, by: str
    ) -> dict[str, Any]:
        """Returns the result; raises :class:`agent.alarms.state.Refused`."""


Reply = Callable[[dict[str, Any], "Request | None"], Awaitable[None]]
"""Publishes one response body (the uplink adds the header and the per-stream seq)."""


class CommandHandler:
    """Handles command requests. ``handle`` never raises, whatever the payload.

    Args:
        clock: wall clock (``expires_at`` is checked against it only while it is synchronised;
            otherwise the broker's MQTT 5 message expiry is what protects).
        seen: async lookup of an earlier answer by command id (persisted, 24 h).
        remember: async store of the answer given to a command id.
        target: the control loop, or ``None`` when no control is configured.
        reply: publishes a response.
        max_per_minute: most requests taken per minute; more are answered RATE_LIMITED.
        alarms: the alarm stage, or ``None`` when no ``alarms:`` are configured.
    """

    def __init__(
        self,
        clock: WallClock,
        seen: Callable[[str], Awaitable[dict[str, Any] | None]],
        remember: Callable[[str, dict[str, Any]], Awaitable[None]],
        target: SetpointTarget | None,
        reply: Reply,
        max_per_minute: int = 30,
        alarms: AlarmTarget | None = None,
    ) -> None:
        self.clock = clock
        self.alarms = alarms
        self.seen = seen
        self.remember = remember
        self.target = target
        self.reply = reply
        self.max_per_minute = max_per_minute
        self._recent: list[float] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_progress: dict[str, asyncio.Event] = {}
        self.counters = {"received": 0, "accepted": 0, "rejected": 0}

    async def handle(self, payload: bytes, properties: Any = None, retained: bool = False) -> None:
        """Answer one request (ack now; result later in a task of its own).

        An empty payload is not a request (it is how a platform clears a retained message on
        ``cmd/req``): it is ignored, without an answer.
        """
        if not payload:
            log.debug("commands: empty payload on cmd/req ignored (retained=%s)", retained)
            return
        self.counters["received"] += 1
        # the MQTT 5 properties first, so even a payload refused unread is answered with them
        req = Request.unread(properties)
        try:
            msg, req = read_request(payload, req)
            cid = req.id
            assert cid is not None
            if retained and (earlier := await self.seen(cid)) is not None:
                # a retained request comes back on every reconnect: give its first answer again
                raise CommandError("DUPLICATE", {"previous": earlier})
            self._validate(msg, req, retained)
            first = self._in_progress.get(cid)
            if first is not None:  # the same id again before its first answer: wait for it
                await wait_event(first, 10.0)
                raise CommandError("DUPLICATE", {"previous": await self.seen(cid)})
            self._in_progress[cid] = asyncio.Event()
            try:
                previous = await self.seen(cid)
                if previous is not None:
                    raise CommandError("DUPLICATE", {"previous": previous})
                self._rate_limit()
                await self._dispatch(req, cid)
            finally:
                self._in_progress.pop(cid).set()
        except CommandError as exc:
            self.counters["rejected"] += 1
            body = response(
                req, "ack", "rejected", exc.code, detail=exc.detail, ts=self.clock.now_ms()
            )
            if req.id is not None and exc.code != "DUPLICATE":
                await self.remember(req.id, body)
            await self.reply(body, req)
        except Exception as exc:  # never let a payload crash the agent
            log.exception("command handling failed")
            detail = {"error": type(exc).__name__}
            body = response(
                req, "ack", "rejected", "INTERNAL", detail=detail, ts=self.clock.now_ms()
            )
            await self.reply(body, req)

    async def close(self) -> None:
        """Cancel results still being awaited."""
        await cancel_all(list(self._tasks))

    def _validate(self, msg: dict[str, Any], req: Request, retained: bool) -> None:
        """Refuse, INVALID_ARGUMENT, what the command-request schema does not allow (every
        problem named with its key), then a retained request, then an expired one."""
        problems = shape_problems(msg)
        if problems:
            raise CommandError("INVALID_ARGUMENT", {"reason": "; ".join(problems)})
        if retained:
            raise CommandError("INVALID_ARGUMENT", {"reason": "retained command refused"})
        expires = time_ms(msg.get("expires_at"))
        if expires is not None:
            now = self.clock.now_ms()
            if self.clock.synced() and expires < now:
                raise CommandError("EXPIRED", {"expires_at": expires, "now": now})

    def _rate_limit(self) -> None:
        now = time.monotonic()
        self._recent = [t for t in self._recent if now - t < 60.0]
        if len(self._recent) >= self.max_per_minute:
            raise CommandError(
                "RATE_LIMITED", {"reason": f"more than {self.max_per_minute} commands a minute"}
            )
        self._recent.append(now)

    async def _dispatch(self, req: Request, cid: str) -> None:
        if req.method in alarm_commands.METHODS:
            await self._alarm(req, cid)
            return
        value = req.params["value"]  # a finite number: _validate made sure
        if self.target is None:
            raise CommandError("NOT_PERMITTED", {"reason": "no local control configured"})
        result = await self.target.request_setpoint(float(value), cmd_id=cid, by=req.by)
        if result.code != "OK":
            raise CommandError(
                result.code if result.code in CODES else "INTERNAL", dict(result.detail)
            )
        self.counters["accepted"] += 1
        ack = response(
            req, "ack", "accepted", "OK", detail=dict(result.detail), ts=self.clock.now_ms()
        )
        await self.remember(cid, ack)
        await self.reply(ack, req)
        ramp_s = float(result.detail.get("ramp_s", 0.0))
        spawn(self._result(req, cid, ramp_s + RESULT_MARGIN_S), f"cmd {cid}", self._tasks, log)

    async def _alarm(self, req: Request, cid: str) -> None:
        """An alarm command: done at once, so the ack and the result go together."""
        if self.alarms is None:
            raise CommandError("NOT_PERMITTED", {"reason": "no alarms configured"})
        try:
            result = await self.alarms.command(req.method, req.params, cid, req.by)
        except Refused as exc:
            raise CommandError(exc.code, dict(exc.detail)) from None
        self.counters["accepted"] += 1
        ack = response(req, "ack", "accepted", "OK", ts=self.clock.now_ms())
        await self.reply(ack, req)
        done = response(req, "result", "completed", "OK", result=result, ts=self.clock.now_ms())
        await self.remember(cid, done)
        await self.reply(done, req)

    async def _result(self, req: Request, cid: str, timeout_s: float) -> None:
        assert self.target is not None
        outcome = await self.target.wait_result(cid, timeout_s)
        now = self.clock.now_ms()
        if outcome == "reached":
            body = response(req, "result", "completed", "OK", result={"reached": True}, ts=now)
        else:
            code, why = _OUTCOMES.get(outcome, _OUTCOMES["timeout"])
            detail: dict[str, str | float] = {"reason": why}
            if code == "TIMEOUT":
                detail["waited_s"] = round(timeout_s, 1)
            body = response(
                req, "result", "failed", code, result={"reached": False}, detail=detail, ts=now
            )
        await self.remember(cid, body)
        await self.reply(body, req)


_OUTCOMES = {
    "superseded": ("SUPERSEDED", "a later setpoint command replaced this target first"),
    "cancelled": ("CANCELLED", "the loop left remote control (manual, local or stopped)"),
    "timeout": ("TIMEOUT", "the setpoint was not reached in time"),
}
"""Outcome of an accepted setpoint command → (result code, reason) of its failed result."""
