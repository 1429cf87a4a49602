"""systemd readiness, status and watchdog notifications (sd_notify(3) protocol).

The protocol is one datagram per notification, ``KEY=value`` lines, sent to the AF_UNIX datagram
socket named by ``$NOTIFY_SOCKET`` (a name starting with ``@`` is in the abstract namespace:
the ``@`` becomes a NUL byte). Without ``$NOTIFY_SOCKET`` (not under systemd) nothing is sent.
The agent sends (systemd.service(5) ``Type=notify``, ``WatchdogSec=``):

* ``READY=1`` once the buffer is open and the pollers run; ``RELOADING=1`` … ``READY=1`` around
  a reload (SIGHUP); ``STOPPING=1`` when a stop begins;
* ``STATUS=<one line>`` (uplink state, backlog, failing connections, stalled stages, task
  failures) whenever it changes, shown by ``systemctl status``;
* ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` (when that is set for this process,
  ``$WATCHDOG_PID``), but only while no stage is stalled (:mod:`agent.core.progress`): a hung
  stage stops the pings and systemd kills and restarts the agent after ``WatchdogSec``.

Implemented here rather than with the ``sdnotify`` package (last released 2017): it is a few
lines and must never block or raise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

from agent.core.progress import Progress

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd; does nothing when ``NOTIFY_SOCKET`` is not set.

    Args:
        env: the environment (``os.environ``).

    Attributes:
        watchdog_s: the watchdog period systemd expects pings within (``WATCHDOG_USEC``), or
            ``None`` when there is no watchdog for this process.
    """

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        path = env.get("NOTIFY_SOCKET") or ""
        self._address: str | bytes | None = None
        if path.startswith("@"):
            self._address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self._address = path
        self._sock: socket.socket | None = None
        if self._address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        self.watchdog_s: float | None = None
        pid = env.get("WATCHDOG_PID")
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
        except ValueError:
            usec = 0
        if usec > 0 and (pid is None or pid == str(os.getpid())):
            self.watchdog_s = usec / 1e6
        self._failed = False

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify."""
        return self._sock is not None

    def send(self, **fields: str) -> bool:
        """Send one datagram of ``KEY=value`` lines; True when sent. Never raises: a failure
        is logged once (WARNING) and the agent runs on."""
        if self._sock is None or self._address is None:
            return False
        text = "\n".join(f"{k}={v}" for k, v in fields.items())
        try:
            self._sock.sendto(text.encode(), self._address)
        except OSError as exc:
            if not self._failed:
                log.warning("sd_notify to %r failed: %s", self._address, exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


WATCH_PERIOD_S = 5.0
"""How often the stages are checked (and STATUS refreshed) without a systemd watchdog, s."""


async def watch(notifier: Notifier, progress: Progress, status_line: Callable[[], str]) -> None:
    """Forever: check the stages' heartbeats, log a stalled stage at ERROR once (and when it
    moves again), send ``STATUS=`` when the line changed and ``WATCHDOG=1`` while nothing is
    stalled. Runs every half watchdog period (or :data:`WATCH_PERIOD_S`)."""
    period = notifier.watchdog_s / 2 if notifier.watchdog_s else WATCH_PERIOD_S
    reported: set[str] = set()
    last_line = None
    while True:
        now = time.monotonic()
        stalled = progress.stalled(now)
        for name in sorted(set(stalled) - reported):
            hb = progress.stages[name]
            log.error(
                "stage %s is stuck: no progress for %.0f s (limit %.0f s)%s",
                name,
                hb.age_s(now),
                hb.limit_s,
                "; systemd watchdog pings stop" if notifier.watchdog_s else "",
            )
        for name in sorted(reported - set(stalled)):
            if name in progress.stages:  # not a stage a reload removed
                log.warning("stage %s makes progress again", name)
        reported = set(stalled)
        line = status_line()
        if line != last_line and notifier.send(STATUS=line):
            last_line = line
        if not stalled and notifier.watchdog_s:
            notifier.send(WATCHDOG="1")
        await asyncio.sleep(period)
