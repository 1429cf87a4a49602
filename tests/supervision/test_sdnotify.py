"""systemd notifications from a real agent process to a real ``NOTIFY_SOCKET`` (an abstract
AF_UNIX datagram socket bound here): ``READY=1`` once it runs, ``STATUS=`` lines, ``WATCHDOG=1``
every half ``WATCHDOG_USEC`` while every stage makes progress (also while the broker is gone:
a disconnected uplink is not a stuck one), no more ``WATCHDOG=1`` once a stage hangs (a poller
stuck on an await that never ends, injected through :mod:`agent.faultpoint`), ``STOPPING=1``
at SIGTERM."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from agent.core.progress import STALL_FLOOR_ENV
from tests.procs import wait_for


class NotifySocket:
    """Receives the agent's datagrams: (``time.monotonic()``, text)."""

    def __init__(self) -> None:
        self.name = f"@pumproom-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._run = True
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while self._run:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.got.append((time.monotonic(), data.decode()))

    def lines(self, key: str, since: float = 0.0) -> list[str]:
        """Values of ``KEY=`` in the datagrams received after ``since``."""
        with self._lock:
            got = list(self.got)
        return [
            line[len(key) + 1 :]
            for t, text in got
            if t >= since
            for line in text.splitlines()
            if line.startswith(key + "=")
        ]

    def close(self) -> None:
        self._run = False
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def test_ready_status_and_watchdog_only_while_every_stage_progresses(
    agent, broker, notify, fault_file
):
    agent.env.update(
        NOTIFY_SOCKET=notify.name, WATCHDOG_USEC="1000000", **{STALL_FLOOR_ENV: "4"}
    )  # fmt: skip
    agent.start()
    wait_for(lambda: notify.lines("READY"), 30, "READY=1")
    assert notify.lines("READY") == ["1"]
    wait_for(lambda: any("uplink up" in s for s in notify.lines("STATUS")), 10, "STATUS up")
    assert all("\n" not in s for s in notify.lines("STATUS"))  # one line each
    t0 = time.monotonic()
    wait_for(lambda: len(notify.lines("WATCHDOG", t0)) >= 3, 5, "watchdog pings (0.5 s)")

    # The broker stops answering: the uplink loses it and retries, but it is not stuck.
    broker.pause()
    paused = time.monotonic()
    try:
        wait_for(
            lambda: any("uplink down" in s for s in notify.lines("STATUS", paused)),
            20,
            "STATUS uplink down",
        )
        late = time.monotonic()
        wait_for(lambda: len(notify.lines("WATCHDOG", late)) >= 2, 3, "pings while down")
    finally:
        broker.resume()
    wait_for(lambda: any("uplink up" in s for s in notify.lines("STATUS", late)), 30, "up")
    assert not any("STALLED" in s for s in notify.lines("STATUS"))

    # A poller hangs (an await that never ends): its heartbeat stops, so do the pings.
    fault_file.write_text("poll cabinet hang\n")
    hung = time.monotonic()
    wait_for(
        lambda: [s for s in notify.lines("STATUS", hung) if "STALLED: poll cabinet" in s],
        10,
        "STATUS naming the stalled stage",
    )
    stalled_at = time.monotonic()
    time.sleep(2.5)
    assert notify.lines("WATCHDOG", stalled_at) == []
    log = agent.log.read_text()
    assert "ERROR agent.sdnotify: stage poll cabinet is stuck" in log
    assert agent.stop() == 0
    assert "1" in notify.lines("STOPPING")
