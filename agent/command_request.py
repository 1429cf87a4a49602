"""A command request as far as it could be read, the refusal of one, and the response body.

Reading (:func:`read_request`) decodes the payload and finds the command id; what the request
schema does not allow is :mod:`agent.command_shape`'s, what is done with the request
:mod:`agent.commands`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
"""Every response code (shared/reference/uplink-protocol.md §6.7)."""
MAX_ID_LENGTH = 128
MAX_PAYLOAD = 16 * 1024


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


class CommandError(Exception):
    """A request that is refused before dispatch: ``code`` and ``detail`` say why."""

    def __init__(self, code: str, detail: dict[str, Any]) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def read_request(payload: bytes, unread: Request) -> tuple[dict[str, Any], Request]:
    """Decode the JSON payload (at most :data:`MAX_PAYLOAD` bytes) and find the command id;
    returns the decoded object and the :class:`Request` read from it (``unread``'s MQTT 5
    properties kept).

    Raises:
        CommandError: INVALID_ARGUMENT, before the id is read (too large, not JSON, not an
            object, no id of 1 to :data:`MAX_ID_LENGTH` characters).
    """
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


def response(
    req: Request | None,
    phase: str,
    status: str,
    code: str,
    *,
    ts: int,
    detail: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A response body: ``id`` (``None`` for a request refused unread), ``phase`` (``ack`` or
    ``result``), ``status``, ``code`` (one of :data:`CODES`), ``ts`` (epoch ms), and
    ``detail``/``result`` when not empty (the uplink adds the header and the seq:
    :func:`agent.contract.command_response`)."""
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
