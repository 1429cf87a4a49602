"""The agent's log when an OPC UA server restarts under it: asyncua's ERROR traceback for the
expected disconnect is gone from the agent's log, our poller's WARNING line stays. A real
simulator OPC UA server, a real poller with subscribed points, the agent's own log set-up."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from agent.logs import configure, is_disconnect
from agent.poller import ConnectionPoller
from drivers import create
from drivers.specs import OpcUaConnection, OpcUaPoint
from hil_sim.devices.opcua_server import NAMESPACE_URI, UA_POINTS, OpcUaFacade
from hil_sim.plant import Plant


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Raw(logging.Handler):
    """What the loggers emitted, level and traceback, before any filter of the agent's."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.name, record.levelno, bool(record.exc_info)))


@pytest.fixture
def agent_log() -> Iterator[tuple[io.StringIO, _Raw]]:
    """The agent's logging set-up writing to a buffer, after a raw recorder; undone after."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("asyncua").level)
    raw = _Raw()
    root.addHandler(raw)
    out = io.StringIO()
    handler = configure("info", out)
    try:
        yield out, raw
    finally:
        for h in (handler, raw):
            root.removeHandler(h)
        root.setLevel(saved[0])
        logging.getLogger("asyncua").setLevel(saved[2])


async def _until(what: str, check, timeout_s: float = 20.0) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_opcua_server_restart_logs_one_warning_and_no_traceback(agent_log) -> None:
    out, raw = agent_log
    points = [
        OpcUaPoint(p.name, "analyser", f"ns=2;s={p.node}", namespace_uri=NAMESPACE_URI,
                   mode="subscribe")
        for p in UA_POINTS
    ]  # fmt: skip
    server = OpcUaFacade(Plant(), "127.0.0.1", _free_port())
    await server.start()
    readings: list[int] = []
    poller = ConnectionPoller(
        create(OpcUaConnection("analyser", server.endpoint, 1.0, 2.0)),
        {0.2: points},
        lambda rs, _ts: readings.append(sum(r.quality.code == "g" for r in rs)),
    )
    poller.backoff.initial_s = 0.2
    task = asyncio.create_task(poller.run(), name="poller-analyser")
    try:
        await _until("good readings", lambda: readings and readings[-1] == len(points))
        await server.stop()
        await _until("the poller's warning", lambda: "connection lost" in out.getvalue())

        def asyncua_error() -> bool:
            return any(n.startswith("asyncua") and lv >= logging.ERROR for n, lv, _ in raw.seen)

        await _until("asyncua's error (the publish loop)", asyncua_error)
        await server.start()
        await _until("the poller reconnecting", lambda: "connected again" in out.getvalue())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    text = out.getvalue()
    assert any(tb for n, lv, tb in raw.seen if n.startswith("asyncua") and lv >= logging.ERROR)
    assert "Traceback" not in text, text
    assert not [line for line in text.splitlines() if " ERROR asyncua" in line], text
    lost = [line for line in text.splitlines() if "connection lost" in line]
    assert len(lost) == 1 and " WARNING agent.poller: analyser: connection lost" in lost[0], text


def test_other_asyncua_errors_keep_their_traceback(agent_log) -> None:
    out, _raw = agent_log
    log = logging.getLogger("asyncua.client.ua_session.UaSession")
    try:
        raise ValueError("a decoding bug")
    except ValueError:
        log.exception("Publish iteration crashed; retrying in 1s")
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        log.exception("Publish iteration crashed; retrying in 1s")
    text = out.getvalue()
    assert text.count("ERROR asyncua.client.ua_session.UaSession") == 1
    assert "ValueError: a decoding bug" in text and "Traceback" in text
    assert "Connection reset by peer" not in text  # expected: DEBUG, hidden at info


def test_disconnect_kinds() -> None:
    from asyncua.ua.uaerrors import BadSessionClosed, BadTypeMismatch

    assert is_disconnect(ConnectionError("Connection is closed"))
    assert is_disconnect(TimeoutError())
    assert is_disconnect(BadSessionClosed())
    assert not is_disconnect(BadTypeMismatch())
    assert not is_disconnect(ValueError())
    try:
        try:
            raise BrokenPipeError()
        except BrokenPipeError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_disconnect(wrapped)
