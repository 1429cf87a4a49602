"""Command intake: validate, deduplicate, expire, dispatch, answer (request → ack → result).

A request arrives on ``{base}/cmd/req`` (QoS 1, never retained). The agent answers on
``{base}/cmd/res`` (or the MQTT 5 Response Topic, when it lies under ``{base}/``) with the same
``id`` and MQTT 5 Correlation Data: first an ``ack`` (accepted or rejected, with its code) at
once, then, for an accepted request, a ``result`` when the change is done or has failed.

Result codes (fixed; shared/reference/uplink-protocol.md §6.7): ``OK``, ``DUPLICATE`` (the id
was seen in the last 24 h; the earlier answer is replayed in ``detail.previous``), ``EXPIRED``,
``INVALID_ARGUMENT``, ``OUT_OF_RANGE``, ``RATE_LIMITED``, ``NOT_PERMITTED``, ``UNAVAILABLE``,
``TIMEOUT``, ``INTERNAL``.

The one method today is ``setpoint.set`` (outlet-pressure setpoint, MPa), carried out by the local
control loop, which owns the bounds (``control.remote``: refused, never clamped) and audits
every change. Nothing here writes to a device.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agent.aio import cancel_all, wait_event
from agent.model import WallClock

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
)
MAX_ID_LENGTH = 128
MAX_PAYLOAD = 16 * 1024
RESULT_MARGIN_S = 30.0
"""How long after the end of the ramp a setpoint change may take to be reached."""


class SetpointTarget(Protocol):
    """What carries out ``setpoint.set`` (the control loop)."""

    async def request_setpoint(self, value_mpa: float, *, cmd_id: str, by: str) -> Any:
        """Returns an object with ``code`` (str) and ``detail`` (dict)."""

    async def wait_reached(self, timeout_s: float) -> bool:
        """True once the new setpoint is reached."""


@dataclass(frozen=True, slots=True)
class Request:
    """A validated command request."""

    id: str
    method: str
    params: dict[str, Any]
    by: str
    correlation: bytes | None
    response_topic: str | None


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
    """

    def __init__(
        self,
        clock: WallClock,
        seen: Callable[[str], Awaitable[dict[str, Any] | None]],
        remember: Callable[[str, dict[str, Any]], Awaitable[None]],
        target: SetpointTarget | None,
        reply: Reply,
        max_per_minute: int = 30,
    ) -> None:
        self.clock = clock
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
        """Answer one request (ack now; result later in a task of its own)."""
        self.counters["received"] += 1
        req: Request | None = None
        try:
            msg, req = self._identify(payload, properties)
            if retained and (earlier := await self.seen(req.id)) is not None:
                # a retained request comes back on every reconnect: give its first answer again
                raise CommandError("DUPLICATE", {"previous": earlier})
            self._validate(msg, req, retained)
            first = self._in_progress.get(req.id)
            if first is not None:  # the same id again before its first answer: wait for it
                await wait_event(first, 10.0)
                raise CommandError("DUPLICATE", {"previous": await self.seen(req.id)})
            self._in_progress[req.id] = asyncio.Event()
            try:
                previous = await self.seen(req.id)
                if previous is not None:
                    raise CommandError("DUPLICATE", {"previous": previous})
                self._rate_limit()
                await self._dispatch(req)
            finally:
                self._in_progress.pop(req.id).set()
        except CommandError as exc:
            self.counters["rejected"] += 1
            body = _response(
                req, "ack", "rejected", exc.code, detail=exc.detail, ts=self.clock.now_ms()
            )
            if req is not None and exc.code != "DUPLICATE":
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

    def _identify(self, payload: bytes, properties: Any) -> tuple[dict[str, Any], Request]:
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
        correlation = getattr(properties, "CorrelationData", None)
        response_topic = getattr(properties, "ResponseTopic", None)
        issuer, method, params = msg.get("issuer"), msg.get("method"), msg.get("params")
        principal = issuer.get("principal") if isinstance(issuer, dict) else None
        req = Request(
            id=cid,
            method=method if isinstance(method, str) else "",
            params=params if isinstance(params, dict) else {},
            by=principal if isinstance(principal, str) else "unknown",
            correlation=bytes(correlation) if correlation else None,
            response_topic=response_topic if isinstance(response_topic, str) else None,
        )
        return msg, req

    def _validate(self, msg: dict[str, Any], req: Request, retained: bool) -> None:
        problems = []
        if msg.get("v") != 1:
            problems.append("v: expected 1")
        if req.method != "setpoint.set":
            problems.append(f"method: unknown {msg.get('method')!r} (known: setpoint.set)")
        if not isinstance(msg.get("params"), dict):
            problems.append("params: expected an object")
        if problems:
            raise CommandError("INVALID_ARGUMENT", {"reason": "; ".join(problems)})
        if retained:
            raise CommandError("INVALID_ARGUMENT", {"reason": "retained command refused"})
        expires = msg.get("expires_at")
        if expires is not None:
            if isinstance(expires, bool) or not isinstance(expires, int):
                raise CommandError("INVALID_ARGUMENT", {"reason": "expires_at: epoch ms"})
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

    async def _dispatch(self, req: Request) -> None:
        value = req.params.get("value")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise CommandError("INVALID_ARGUMENT", {"reason": "params.value: a number in MPa"})
        unit = req.params.get("unit", "MPa")
        if unit != "MPa":
            raise CommandError(
                "INVALID_ARGUMENT", {"reason": f"params.unit: expected MPa, got {unit!r}"}
            )
        if self.target is None:
            raise CommandError("NOT_PERMITTED", {"reason": "no local control configured"})
        result = await self.target.request_setpoint(float(value), cmd_id=req.id, by=req.by)
        if result.code != "OK":
            raise CommandError(
                result.code if result.code in CODES else "INTERNAL", dict(result.detail)
            )
        self.counters["accepted"] += 1
        ack = _response(
            req, "ack", "accepted", "OK", detail=dict(result.detail), ts=self.clock.now_ms()
        )
        await self.remember(req.id, ack)
        await self.reply(ack, req)
        ramp_s = float(result.detail.get("ramp_s", 0.0))
        task = asyncio.create_task(
            self._result(req, ramp_s + RESULT_MARGIN_S), name=f"cmd {req.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _result(self, req: Request, timeout_s: float) -> None:
        assert self.target is not None
        reached = await self.target.wait_reached(timeout_s)
        if reached:
            body = _response(
                req, "result", "completed", "OK", result={"reached": True}, ts=self.clock.now_ms()
            )
        else:
            waited = {"waited_s": round(timeout_s, 1)}
            body = _response(
                req, "result", "failed", "TIMEOUT",
                result={"reached": False}, detail=waited, ts=self.clock.now_ms(),
            )  # fmt: skip
        await self.remember(req.id, body)
        await self.reply(body, req)


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
