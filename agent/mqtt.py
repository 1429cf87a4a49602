"""One MQTT connection, paho-mqtt driven from the asyncio event loop (no network thread).

paho-mqtt is used directly (the uplink contract needs the PUBACK reason code: a wrapper that
reports a publish as done when the PUBACK carries a failure code would lose buffered data). Its
socket is watched with ``loop.add_reader``/``add_writer`` and ``loop_misc`` runs every second for
keep-alive, the pattern paho documents for external event loops (paho-mqtt 2.x
``on_socket_register_write``). A fresh :class:`paho.mqtt.client.Client` is made for every
connection, so nothing queued for a dead session is ever replayed.

A connection ends when the socket closes, on a keep-alive timeout (paho sends PINGREQ after
``keepalive`` seconds of silence and drops the link when no PINGRESP comes back by the next
check), or on :meth:`MqttConnection.close`. Then :attr:`MqttConnection.closed` is set and every
pending publish fails with :class:`PublishFailed`.

What a connection is opened with is :mod:`agent.mqtt_settings`; its in-flight window (publishes
awaiting PUBACK, and those waiting for a place) :mod:`agent.mqtt_window`; reason codes, errors and
packet sizes :mod:`agent.mqtt_codes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.core.aio import wait_event, within
from agent.mqtt_codes import (
    PACKET_TOO_LARGE,
    RECEIVE_MAXIMUM_DEFAULT,
    RECEIVE_MAXIMUM_EXCEEDED,
    SESSION_TAKEN_OVER,
    ConnectFailed,
    PacketTooLarge,
    PublishFailed,
    PublishRefused,
    publish_packet_size,
)
from agent.mqtt_settings import BrokerSettings, Will
from agent.mqtt_window import InflightWindow, Queued

__all__ = [
    "PACKET_TOO_LARGE",
    "RECEIVE_MAXIMUM_DEFAULT",
    "RECEIVE_MAXIMUM_EXCEEDED",
    "SESSION_TAKEN_OVER",
    "BrokerSettings",
    "ConnectFailed",
    "MqttConnection",
    "PacketTooLarge",
    "PublishFailed",
    "PublishRefused",
    "Will",
]

log = logging.getLogger(__name__)


class MqttConnection:
    """A connected MQTT session. Make one with :meth:`connect`."""

    def __init__(self, settings: BrokerSettings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self._loop = loop
        self.closed = asyncio.Event()
        self._connack: asyncio.Future[int] = loop.create_future()
        self._misc_task: asyncio.Task[None] | None = None
        self._sock: Any = None
        self.disconnect_reason = 0
        """MQTT 5 reason code of the broker's DISCONNECT (0 when none came)."""
        self.disconnect_name = ""
        """Its name (MQTT 5 §2.4), e.g. ``Receive maximum exceeded``; empty when none came."""
        self.receive_maximum = RECEIVE_MAXIMUM_DEFAULT
        """The broker's Receive Maximum from CONNACK (MQTT 5 §3.2.2.3.3; 65,535 if absent)."""
        self.max_packet_size: int | None = settings.max_packet_size
        """Largest packet we may send, bytes: the smaller of our own bound and the CONNACK's
        Maximum Packet Size (MQTT 5 §3.2.2.3.6); ``None`` when neither limits it."""
        self.largest_sent = 0
        """Largest PUBLISH packet handed to the socket on this connection, bytes."""
        self.on_message: Callable[[str, bytes, Any, bool], None] | None = None
        """Called with (topic, payload, MQTT 5 properties or None, retained flag: under MQTT 5
        the publisher's flag, under 3.1.1 only set on delivery at subscription time)."""
        protocol = paho.MQTTv5 if settings.mqtt5 else paho.MQTTv311
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=protocol,
            clean_session=None if settings.mqtt5 else True,
        )
        self._client.connect_timeout = settings.connect_timeout_s
        # The in-flight limit is ours (paho's cannot change once connected, and the broker's
        # Receive Maximum is known only then): paho sends everything it is given.
        self._client.max_inflight_messages_set(0)
        self._window = InflightWindow(lambda: self.inflight_limit, self._transmit)
        if settings.tls is not None:
            self._client.tls_set_context(settings.tls)
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    @classmethod
    async def connect(cls, settings: BrokerSettings, will: Will | None = None) -> MqttConnection:
        """Connect and wait for a successful CONNACK (clean start, session expiry 0).

        Raises:
            ConnectFailed: unreachable (the OS error), refused (with the CONNACK reason), or
                timed out after ``connect_timeout_s`` (``TCP connect not done`` or ``no CONNACK``
                within that many seconds).
        """
        conn = cls(settings, asyncio.get_running_loop())
        if will is not None:
            conn._client.will_set(will.topic, will.payload, qos=1, retain=True)
        try:
            await within(conn._open(), settings.connect_timeout_s)
        except TimeoutError as exc:  # str(TimeoutError()) is empty: say what did not happen
            unreachable = conn._sock is None
            stage = "TCP connect not done" if unreachable else "no CONNACK"
            conn._teardown()
            raise ConnectFailed(
                f"{settings.host}:{settings.port}: {stage} within {settings.connect_timeout_s:g} s",
                unreachable=unreachable,
            ) from exc
        except (OSError, ssl.SSLError, ConnectFailed) as exc:
            # a refused/unroutable TCP connect, not TLS, DNS (gaierror) or the MQTT handshake
            if isinstance(exc, ConnectFailed):
                unreachable = exc.unreachable
            else:
                unreachable = conn._sock is None and not isinstance(
                    exc, ssl.SSLError | socket.gaierror
                )
            conn._teardown()
            raise ConnectFailed(
                f"{settings.host}:{settings.port}: {str(exc) or type(exc).__name__}",
                unreachable=unreachable,
            ) from exc
        except BaseException:
            conn._teardown()
            raise
        return conn

    async def _open(self) -> None:
        s = self.settings
        kwargs: dict[str, Any] = {}
        if s.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            kwargs = {"clean_start": True, "properties": props}
        # The socket connect blocks: do it in a thread, before the socket callbacks exist.
        rc = await asyncio.to_thread(self._client.connect, s.host, s.port, s.keepalive_s, **kwargs)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectFailed(paho.error_string(rc), unreachable=True)
        self._sock = self._client.socket()
        # Small PUBLISH/PUBACK packets must not wait for Nagle's algorithm and the peer's delayed
        # ACK (40 ms on Linux): that alone made a command round trip 43 ms instead of 3 ms.
        with contextlib.suppress(OSError, AttributeError):
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_register_write
        self._client.on_socket_unregister_write = self._on_unregister_write
        self._loop.add_reader(self._sock, self._do_read)
        if self._client.want_write():
            self._loop.add_writer(self._sock, self._do_write)
        self._misc_task = asyncio.create_task(self._misc(), name="mqtt-keepalive")
        code = await self._connack
        if code != 0:
            raise ConnectFailed(f"CONNACK refused: {paho.connack_string(code)} ({code})")

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        correlation: bytes | None = None,
        content_type: str = "application/json",
    ) -> asyncio.Future[None]:
        """Publish at QoS 1. The returned future resolves on a successful PUBACK.

        At most :attr:`inflight_limit` publishes are on the wire at once; more wait, in order,
        for a PUBACK to free a place (so the wait counts in the caller's timeout).

        Raises (through the future):
            PacketTooLarge: the packet exceeds :attr:`max_packet_size` (nothing was sent).
            PublishRefused: a failure reason code in the PUBACK.
            PublishFailed: the connection ended first.
        """
        fut: asyncio.Future[None] = self._loop.create_future()
        if self.closed.is_set():
            fut.set_exception(PublishFailed("not connected"))
            return fut
        props = self._properties(content_type, correlation)
        size = publish_packet_size(topic, len(payload), props)
        if self.max_packet_size is not None and size > self.max_packet_size:
            fut.set_exception(PacketTooLarge(size, self.max_packet_size))
            return fut
        self.largest_sent = max(self.largest_sent, size)
        self._window.submit(Queued(topic, payload, retain, props, fut))
        return fut

    def _transmit(self, q: Queued) -> int:
        """Hand ``q`` to paho; returns its packet id (its PUBACK, on_publish, can only come from
        _do_read, later on this same loop: no race).

        Raises:
            PublishFailed: paho did not take it (its error string).
        """
        info = self._client.publish(q.topic, q.payload, qos=1, retain=q.retain, properties=q.props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise PublishFailed(paho.error_string(info.rc))
        return info.mid

    def _properties(self, content_type: str, correlation: bytes | None) -> Properties | None:
        if not self.settings.mqtt5:
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
        props.PayloadFormatIndicator = 1 if content_type == "application/json" else 0
        if correlation is not None:
            props.CorrelationData = correlation
        return props

    def fits(
        self,
        topic: str,
        payload_len: int,
        *,
        correlation: bytes | None = None,
        content_type: str = "application/json",
    ) -> bool:
        """Whether a PUBLISH of ``payload_len`` bytes on ``topic`` (with the properties
        :meth:`publish` would add) is within :attr:`max_packet_size`."""
        if self.max_packet_size is None:
            return True
        size = publish_packet_size(topic, payload_len, self._properties(content_type, correlation))
        return size <= self.max_packet_size

    @property
    def inflight_limit(self) -> int:
        """Most QoS 1 publishes awaiting PUBACK at once: ``settings.max_inflight``, lowered to
        the broker's Receive Maximum (MQTT 5 §3.3.4: the client MUST NOT exceed it); kept to by
        :class:`agent.mqtt_window.InflightWindow`."""
        return max(1, min(self.settings.max_inflight, self.receive_maximum))

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1.

        MQTT 5: no-local (the agent never hears itself) and retain-as-published (MQTT 5
        §3.8.3.1): without it the broker clears the RETAIN flag of a message published while
        the subscription exists, and the agent could not tell a retained command from a normal
        one until its next reconnect. MQTT 3.1.1 has no such option (§3.3.1.3: the broker MUST
        clear the flag on live delivery), so there a retained message is seen as retained only
        when the broker hands it over on (re)subscription.
        """
        if self.settings.mqtt5:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            opts = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True)
            self._client.subscribe(topic, options=opts)
        else:
            self._client.subscribe(topic, qos=1)

    @property
    def inflight(self) -> int:
        """Publishes sent and not yet acknowledged (those waiting for a place not counted)."""
        return self._window.inflight

    async def close(self, timeout_s: float = 2.0) -> None:
        """Send DISCONNECT (the broker then drops the last will) and wait, bounded, for the end."""
        if not self.closed.is_set():
            self._client.disconnect()
            await wait_event(self.closed, timeout_s)
        self._teardown()

    def abort(self) -> None:
        """Drop the connection at once without DISCONNECT (the broker will publish the will)."""
        self._teardown()

    # ---- paho plumbing -------------------------------------------------------------------------

    async def _misc(self) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(1.0)
            self._client.loop_misc()

    def _do_read(self) -> None:
        rc = self._client.loop_read()
        if rc != paho.MQTT_ERR_SUCCESS:
            self._teardown()

    def _do_write(self) -> None:
        rc = self._client.loop_write()
        if rc != paho.MQTT_ERR_SUCCESS:
            self._teardown()

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        if self._sock is not None and not self.closed.is_set():
            self._loop.add_writer(sock, self._do_write)

    def _on_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._sock = None
        self._mark_closed("socket closed")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.settings.mqtt5 and props is not None:
            self.receive_maximum = int(getattr(props, "ReceiveMaximum", RECEIVE_MAXIMUM_DEFAULT))
            announced = getattr(props, "MaximumPacketSize", None)
            if announced is not None:
                mine = self.max_packet_size
                self.max_packet_size = int(announced) if mine is None else min(mine, announced)
        if not self._connack.done():
            self._connack.set_result(int(reason.value) if hasattr(reason, "value") else int(reason))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        # paho reports a lost socket as reason 0x80 too: only a DISCONNECT packet counts.
        if getattr(flags, "is_disconnect_packet_from_server", False):
            self.disconnect_reason = int(getattr(reason, "value", 0) or 0)
            self.disconnect_name = str(reason)
        self._mark_closed(f"disconnected: {reason}")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        fut = self._window.acked(mid)
        if fut is None or fut.done():
            return
        if getattr(reason, "is_failure", False):
            fut.set_exception(PublishRefused(int(reason.value), str(reason)))
        else:
            fut.set_result(None)

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        if self.on_message is not None:
            props = msg.properties if self.settings.mqtt5 else None
            self.on_message(msg.topic, bytes(msg.payload), props, bool(msg.retain))

    def _mark_closed(self, why: str) -> None:
        if self.closed.is_set():
            return
        log.debug("mqtt connection closed: %s", why)
        self.closed.set()
        if not self._connack.done():
            self._connack.set_exception(ConnectFailed(why))
            self._connack.exception()  # mark retrieved: nobody may be waiting any more
        self._window.fail_all(why)

    def _teardown(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._loop.remove_writer(self._sock)
            self._sock = None
        if self._misc_task is not None and self._misc_task is not asyncio.current_task():
            self._misc_task.cancel()
        self._client.on_socket_close = None
        self._client.on_socket_register_write = None
        self._client.on_socket_unregister_write = None
        sock = self._client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._mark_closed("closed")
