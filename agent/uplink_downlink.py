"""The uplink's downlink: what the platform sends the gateway (command requests on ``cmd/req``,
its ``ingest`` watermark) and the command responses sent back on ``cmd/res``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from agent import contract
from agent.core.aio import spawn, within
from agent.mqtt import MqttConnection, PublishFailed, PublishRefused
from agent.refusals import Refusals
from agent.store import Store

log = logging.getLogger("agent.uplink")


class Downlink:
    """Routes the messages of the subscribed topics and publishes command responses.

    Args:
        topics: topic names of this gateway.
        ident: site and gateway ids (the session is given per response).
        store: the buffer (the ``cmd`` stream's persisted seq).
        refusals: where a refused response is named and counted.
    """

    def __init__(
        self, topics: contract.Topics, ident: contract.Identity, store: Store, refusals: Refusals
    ) -> None:
        self.topics = topics
        self.ident = ident
        self.store = store
        self.refusals = refusals
        self._inbox: set[asyncio.Task[None]] = set()
        self.on_command: Callable[[bytes, Any, bool], Coroutine[Any, Any, None]] | None = None
        """Handles a command request: (payload, MQTT 5 properties or None, retained)."""
        self.watermark: dict[str, int] = {}
        """The platform's last ``ingest`` watermark (stream → seq stored by the platform)."""

    def on_message(self, topic: str, payload: bytes, props: Any, retained: bool) -> None:
        """A message from the broker (:attr:`agent.mqtt.MqttConnection.on_message`): a command
        request is handled in a task of its own, a watermark is taken at once."""
        if topic == self.topics.cmd_req and self.on_command is not None:
            spawn(self.on_command(payload, props, retained), "command", self._inbox, log)
        elif topic == self.topics.ingest:
            self._on_watermark(payload)

    def _on_watermark(self, payload: bytes) -> None:
        try:
            body = json.loads(payload)
            marks = {k: int(v) for k, v in body.items() if k in ("telemetry", "event")}
        except (ValueError, TypeError, AttributeError):
            log.warning("uplink: ignoring a malformed ingest watermark: %.100r", payload)
            return
        self.watermark.update(marks)

    async def reply(
        self,
        conn: MqttConnection | None,
        session: int,
        body: Mapping[str, Any],
        correlation: bytes | None,
        topic: str | None,
    ) -> bool:
        """Publish a command response on ``conn`` (session number ``session``; stream ``cmd``,
        persisted seq); True once PUBACKed. See :meth:`agent.uplink.Uplink.reply`."""
        if conn is None:
            return False
        seq = await self.store.next_seq("cmd")
        ident = contract.Identity(self.ident.site, self.ident.gateway, session)
        target = self.topics.response_topic(topic)
        payload = contract.command_response(ident, seq, body)
        try:
            await within(conn.publish(target, payload, correlation=correlation), 10.0)
        except PublishRefused as exc:
            self.refusals.note("PUBACK", exc.code, exc.name, "cmd", "the answer is not repeated")
            return False
        except (TimeoutError, PublishFailed) as exc:
            log.warning("uplink: command response %s not delivered: %s", body.get("id"), exc)
            return False
        return True
