"""OPC UA session pieces for :mod:`drivers.opcua`: client set-up (security, identity, session
timeout), the keep-alive, and data-change subscriptions. asyncua 2.1.

* Security: policy ``None`` or ``Basic256Sha256`` with mode ``Sign`` or ``SignAndEncrypt``
  (OPC UA Part 7 "SecurityPolicy - Basic256Sha256"; Part 4 §7.20 MessageSecurityMode); identity
  anonymous, user name + password, or an X.509 user certificate (Part 4 §7.36 UserIdentityToken).
* Session timeout: the server may revise the requested timeout (Part 4 §5.6.2
  CreateSession ``revisedSessionTimeout``); :class:`KeepAlive` reads the server state whenever
  the session has been idle for a third of the *revised* value, so the session never times out
  between slow polls.
* Subscriptions (Part 4 §5.13): one subscription per session. Monitored items that the server
  refuses (e.g. ``BadNodeIdUnknown`` while it is still loading its address space) are retried on
  later reads; a new session always creates a new subscription (ids of the old one are never
  reused, since a restarted server has forgotten them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from agent.core.aio import within
from drivers.specs import OpcUaConnection

log = logging.getLogger(__name__)

_MODES = {
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}

SERVER_STATE = ua.NodeId(ua.Int32(ua.ObjectIds.Server_ServerStatus_State))
"""Node i=2259, Server/ServerStatus/State (Part 5 §6.3.1): read to prove the session alive."""


async def make_client(spec: OpcUaConnection, lib_timeout_s: float) -> Client:
    """A new, unconnected client with the spec's session timeout, security and identity.

    Raises:
        ValueError: unknown policy/mode, or a policy without certificate and key.
        OSError: a certificate or key file cannot be read.
    """
    client = Client(spec.endpoint, timeout=lib_timeout_s)
    client.session_timeout = int(spec.session_timeout_s * 1000)
    if spec.application_uri is not None:  # before set_security, which checks it against the cert
        client.application_uri = spec.application_uri
        client.product_uri = "urn:pumproom-edge"
        client.name = client.description = "pumproom-edge agent"
    if spec.security_policy != "None":
        if spec.security_policy != "Basic256Sha256":
            raise ValueError(f"unsupported security policy {spec.security_policy!r}")
        if spec.security_mode not in _MODES:
            raise ValueError(
                f"security mode must be Sign or SignAndEncrypt with {spec.security_policy}"
            )
        if not spec.certificate or not spec.private_key:
            raise ValueError("a security policy needs certificate and private_key")
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            spec.certificate,
            spec.private_key,
            server_certificate=spec.server_certificate,
            mode=_MODES[spec.security_mode],
        )
    if spec.username is not None:
        client.set_user(spec.username)
        client.set_password(spec.password or "")
    elif spec.user_certificate and spec.user_private_key:
        await client.load_client_certificate(spec.user_certificate)
        await client.load_private_key(Path(spec.user_private_key))
    return client


class KeepAlive:
    """Reads the server state when the session has been idle for a third of the revised
    session timeout. One task per session, cancelled by :meth:`stop`.

    Attributes:
        revised_s: the session timeout the server granted, seconds.
        last_request: ``time.monotonic()`` of the driver's last answered request.
        failed: set when a keep-alive read failed (the next driver call reports the loss).
    """

    def __init__(self, client: Client, timeout_s: float) -> None:
        self.revised_s = client.session_timeout / 1000
        self.interval_s = max(0.05, self.revised_s / 3)
        self.last_request = time.monotonic()
        self.failed: str | None = None
        self._client = client
        self._timeout_s = timeout_s
        self._task = asyncio.get_running_loop().create_task(self._run(), name="opcua-keepalive")

    async def _run(self) -> None:
        while True:
            idle = time.monotonic() - self.last_request
            await asyncio.sleep(max(0.0, self.interval_s - idle))
            if time.monotonic() - self.last_request < self.interval_s:
                continue
            try:
                node = self._client.get_node(SERVER_STATE)
                await within(node.read_value(), self._timeout_s)
                self.last_request = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means the session is in doubt
                self.failed = f"keep-alive: {exc!r}"
                return

    async def stop(self) -> None:
        """Cancel the task and wait for it to end. A cancellation of the caller still
        propagates (``asyncio.wait`` does not swallow it, unlike suppressing CancelledError
        around ``await self._task``)."""
        self._task.cancel()
        await asyncio.wait([self._task])
        if not self._task.cancelled():
            self._task.exception()  # retrieved: a failure is already in self.failed


class _Handler:
    """asyncua data-change handler: keeps the latest DataValue per node id string."""

    def __init__(self) -> None:
        self.latest: dict[str, ua.DataValue] = {}
        self.status: str | None = None

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.latest[node.nodeid.to_string()] = data.monitored_item.Value

    def status_change_notification(self, status: Any) -> None:
        self.status = f"subscription status {status}"


class Subscriptions:
    """The data-change subscription of one session.

    Attributes:
        refused: node id string → status name of items the server refused (retried on
            :meth:`ensure`).
    """

    def __init__(self, client: Client, publish_interval_s: float, timeout_s: float) -> None:
        self._client = client
        self._period_ms = publish_interval_s * 1000
        self._timeout_s = timeout_s
        self._handler = _Handler()
        self._sub: Any = None
        self._items: set[str] = set()
        self._reported: dict[str, ua.DataValue] = {}
        self.refused: dict[str, str] = {}

    async def ensure(self, node_ids: list[ua.NodeId]) -> None:
        """Create the subscription if needed and monitor every node not yet monitored.

        Raises:
            TimeoutError, UaError, OSError: the service calls failed (the caller maps them).
        """
        missing = [n for n in node_ids if n.to_string() not in self._items]
        if not missing:
            return
        if self._sub is None:
            self._sub = await within(
                self._client.create_subscription(self._period_ms, self._handler), self._timeout_s
            )
        nodes = [self._client.get_node(n) for n in missing]
        results = await within(self._sub.subscribe_data_change(nodes, queuesize=1), self._timeout_s)
        if not isinstance(results, list):
            results = [results]
        for n, r in zip(missing, results, strict=True):
            key = n.to_string()
            if isinstance(r, ua.StatusCode):
                self.refused[key] = r.name
            else:
                self._items.add(key)
                self.refused.pop(key, None)

    def latest(self, node_id: ua.NodeId) -> ua.DataValue | None:
        """The last value published for ``node_id``, or None (none yet / refused)."""
        return self._handler.latest.get(node_id.to_string())

    def take_new(self, node_id: ua.NodeId) -> bool:
        """Whether the last value published for ``node_id`` is reported for the first time
        (it is then marked reported): only a new notification carries its source time."""
        key = node_id.to_string()
        dv = self._handler.latest.get(key)
        if dv is None or self._reported.get(key) is dv:
            return False
        self._reported[key] = dv
        return True

    @property
    def status(self) -> str | None:
        """Set when the server reported a subscription status change (e.g. timeout)."""
        return self._handler.status
