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
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agent.alarms import commands as alarm_commands
from agent.alarms.state import Refused
from agent.core.aio import cancel_all, spawn, wait_event
from agent.core.model import WallClock

log = logging.getLogger(__name__)

CODES = (
    "OK",
    "DUPLICATE",
    "EXPIRED",
    "INVALID_ARGUMENT",
    "OUT_OF_RANGE",
    "RATE_LIMITED",
    "NOT_PERMITTED",
    "UNAVAILABLE",
    "TIMEOUT",
    "INTERNAL",
    "SUPERSEDED",
    "CANCELLED",
)
MAX_ID_LENGTH = 128
MAX_PAYLOAD = 16 * 1024
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


@dataclass(frozen=True, slots=True)
class Request:
    """A command request, as far as it could be read.

    Attributes:
        id: the command id; ``None`` when the payload was refused before its id could be read
            (the answer then carries ``"id": null``, and still the MQTT 5 Correlation Data and
            Response Topic below, the platform's only way to match it).
        method: the method asked for ('' when not a string).
        params: the parameters ({} when not an object).
        by: ``issuer.principal``, or ``unknown``.
        correlation: MQTT 5 Correlation Data of the request, echoed on every answer.
        response_topic: MQTT 5 Response Topic of the request, as sent (the uplink decides
            whether to use it, see :meth:`agent.contract.Topics.response_topic`).
    """

    id: str | None
    method: str
    params: dict[str, Any]
    by: str
    correlation: bytes | None
    response_topic: str | None

    @classmethod
    def unread(cls, properties: Any) -> Request:
        """What is known of a request before its payload is read: its MQTT 5 properties."""
        correlation = getattr(properties, "CorrelationData", None)
        response_topic = getattr(properties, "ResponseTopic", None)
        return cls(
            id=None,
            method="",
            params={},
            by="unknown",
            correlation=bytes(correlation) if correlation else None,
            response_topic=response_topic if isinstance(response_topic, str) else None,
        )


Reply = Callable[[dict[str, Any], "Request | None"], Awaitable[None]]
"""Publishes one response body (the uplink adds the header and the per-stream seq)."""


class CommandError(Exception):
    """A request that is refused before dispatch: ``code`` and ``detail`` say why."""

    def __init__(self, code: str, detail: dict[str, Any]) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


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
            msg, req = self._identify(payload, req)
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
            body = _response(
                req, "ack", "rejected", exc.code, detail=exc.detail, ts=self.clock.now_ms()
            )
            if req.id is not None and exc.code != "DUPLICATE":
                await self.remember(req.id, body)
            await self.reply(body, req)
        except Exception as exc:  # never let a payload crash the agent
            log.exception("command handling failed")
            detail = {"error": type(exc).__name__}
            body = _response(
                req, "ack", "rejected", "INTERNAL", detail=detail, ts=self.clock.now_ms()
            )
            await self.reply(body, req)

    async def close(self) -> None:
        """Cancel results still being awaited."""
        await cancel_all(list(self._tasks))

    def _identify(self, payload: bytes, unread: Request) -> tuple[dict[str, Any], Request]:
        """Decode the JSON and find the command id (refusals before this have no id)."""
        if len(payload) > MAX_PAYLOAD:
            raise CommandError("INVALID_ARGUMENT", {"reason": f"payload over {MAX_PAYLOAD} bytes"})
        try:
            msg = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise CommandError("INVALID_ARGUMENT", {"reason": "payload is not JSON"}) from None
        if not isinstance(msg, dict):
            raise CommandError("INVALID_ARGUMENT", {"reason": "payload is not a JSON object"})
        cid = msg.get("id")
        if not isinstance(cid, str) or not 0 < len(cid) <= MAX_ID_LENGTH:
            raise CommandError(
                "INVALID_ARGUMENT", {"reason": f"id: a string of 1–{MAX_ID_LENGTH} characters"}
            )
        issuer, method, params = msg.get("issuer"), msg.get("method"), msg.get("params")
        principal = issuer.get("principal") if isinstance(issuer, dict) else None
        req = Request(
            id=cid,
            method=method if isinstance(method, str) else "",
            params=params if isinstance(params, dict) else {},
            by=principal if isinstance(principal, str) else "unknown",
            correlation=unread.correlation,
            response_topic=unread.response_topic,
        )
        return msg, req

    def _validate(self, msg: dict[str, Any], req: Request, retained: bool) -> None:
        """Refuse, INVALID_ARGUMENT, what the command-request schema does not allow (every
        problem named with its key), then a retained request, then an expired one."""
        problems = _shape_problems(msg)
        if problems:
            raise CommandError("INVALID_ARGUMENT", {"reason": "; ".join(problems)})
        if retained:
            raise CommandError("INVALID_ARGUMENT", {"reason": "retained command refused"})
        expires = _time_ms(msg.get("expires_at"))
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
        ack = _response(
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
        ack = _response(req, "ack", "accepted", "OK", ts=self.clock.now_ms())
        await self.reply(ack, req)
        done = _response(req, "result", "completed", "OK", result=result, ts=self.clock.now_ms())
        await self.remember(cid, done)
        await self.reply(done, req)

    async def _result(self, req: Request, cid: str, timeout_s: float) -> None:
        assert self.target is not None
        outcome = await self.target.wait_result(cid, timeout_s)
        now = self.clock.now_ms()
        if outcome == "reached":
            body = _response(req, "result", "completed", "OK", result={"reached": True}, ts=now)
        else:
            code, why = _OUTCOMES.get(outcome, _OUTCOMES["timeout"])
            detail: dict[str, str | float] = {"reason": why}
            if code == "TIMEOUT":
                detail["waited_s"] = round(timeout_s, 1)
            body = _response(
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


REQUEST_MEMBERS = ("v", "id", "method", "issued_at", "expires_at", "issuer", "params")
"""Every member a v1 command request may have (agent/schemas/v1/command-request.schema.json,
a closed shape): a gateway never ignores a member it does not know, since it could change what
the platform meant; a request with one is refused INVALID_ARGUMENT naming it."""
PARAMS_MEMBERS = ("value", "unit", "point")
ISSUER_MEMBERS = ("principal", "reason")
MAX_TIME_MS = 2**53 - 1
"""Largest timeMs (common.schema.json): the largest integer exact in a JSON double."""
_POINT_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _unknown(where: str, obj: dict[str, Any], known: tuple[str, ...]) -> list[str]:
    extra = sorted(str(k) for k in obj if k not in known)
    if not extra:
        return []
    return [f"{where}unknown member {', '.join(map(repr, extra))} (known: {', '.join(known)})"]


def _time_ms(value: Any) -> int | None:
    """An epoch-ms value as JSON Schema's ``integer`` allows it (1.0 is an integer), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TIME_MS:
        return value
    return None


def _shape_problems(msg: dict[str, Any]) -> list[str]:
    """What in ``msg`` (its id already read) the command-request schema does not allow."""
    problems = _unknown("", msg, REQUEST_MEMBERS)
    v = msg.get("v")
    if isinstance(v, bool) or v != 1:
        problems.append("v: expected 1")
    method = msg.get("method")
    if method != "setpoint.set" and method not in alarm_commands.METHODS:
        known = ", ".join(("setpoint.set", *alarm_commands.METHODS))
        problems.append(f"method: unknown {method!r} (known: {known})")
    for key in ("issued_at", "expires_at"):
        if key in msg and _time_ms(msg[key]) is None:
            problems.append(f"{key}: epoch ms, an integer 0–{MAX_TIME_MS}")
    if "issuer" in msg:
        issuer = msg["issuer"]
        if not isinstance(issuer, dict):
            problems.append("issuer: expected an object")
        else:
            problems += _unknown("issuer: ", issuer, ISSUER_MEMBERS)
            principal = issuer.get("principal")
            if not isinstance(principal, str) or not principal:
                problems.append("issuer.principal: a non-empty string")
            if "reason" in issuer and not isinstance(issuer["reason"], str):
                problems.append("issuer.reason: a string")
    params = msg.get("params")
    if not isinstance(params, dict):
        problems.append("params: expected an object")
        return problems
    if method in alarm_commands.METHODS:
        return problems + alarm_commands.param_problems(method, params)
    problems += _unknown("params: ", params, PARAMS_MEMBERS)
    value = params.get("value")
    try:
        finite = (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    except OverflowError:  # an integer beyond a double
        finite = False
    if not finite:
        problems.append("params.value: a number in MPa")
    if "unit" in params and params["unit"] != "MPa":
        problems.append(f"params.unit: expected MPa, got {params['unit']!r}")
    if "point" in params and not (
        isinstance(params["point"], str) and _POINT_NAME.fullmatch(params["point"])
    ):
        problems.append("params.point: a point name (A–Z a–z 0–9 _ . -)")
    return problems


def _response(
    req: Request | None,
    phase: str,
    status: str,
    code: str,
    *,
    ts: int,
    detail: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": req.id if req else None,
        "phase": phase,
        "status": status,
        "code": code,
        "ts": ts,
    }
    if detail:
        body["detail"] = detail
    if result:
        body["result"] = result
    return body
