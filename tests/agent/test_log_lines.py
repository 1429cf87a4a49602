"""The agent's log lines: one line per record (a traceback folded in), no secrets, device names
on connection failures, and a failure that repeats for hours summarised instead of repeated."""

from __future__ import annotations

import asyncio
import io
import logging
import socket

from agent.logs import NEWLINE, Repeated, configure, redact
from agent.poller import ConnectionPoller
from drivers import create
from drivers.specs import DataType, ModbusPoint, ModbusTcpConnection, Table


def _configured() -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    return stream, configure("info", stream)


def test_a_record_is_one_line_and_secrets_are_blanked() -> None:
    stream, handler = _configured()
    try:
        redact("hunter2-pw")
        try:
            raise ValueError("broker said:\nbad password hunter2-pw\nbye")
        except ValueError:
            logging.getLogger("agent.test").exception("login failed for user x / hunter2-pw")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "hunter2" not in lines[0], lines[0]
    assert lines[0].count("***") == 3  # message, the raise line, the exception text
    assert f"Traceback (most recent call last):{NEWLINE}" in lines[0] and "bye" in lines[0]


def test_a_failure_repeating_for_an_hour_logs_a_summary_per_interval() -> None:
    now = [0.0]
    log = logging.getLogger("agent.test.repeated")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    keep = Keep()
    log.addHandler(keep)
    log.setLevel(logging.INFO)
    try:
        r = Repeated(log, "rtu:/dev/ttyUSB0 (vfd1, vfd2): cannot connect", 600.0, lambda: now[0])
        for _ in range(720):  # every 5 s for an hour
            r.failed("no such device")
            now[0] += 5.0
        r.ok("connected again")
        now[0] += 3600.0
        r.failed("timeout")  # after a quiet hour: news again, at once
    finally:
        log.removeHandler(keep)
    assert records[0] == "rtu:/dev/ttyUSB0 (vfd1, vfd2): cannot connect: no such device"
    summaries = [m for m in records if "still failing" in m]
    assert len(summaries) == 5 and "120 times in the last 600 s" in summaries[0], summaries
    assert "connected again after 720 failures over 3600 s" in records[-2]
    assert records[-1].endswith("cannot connect: timeout") and len(records) == 8


async def test_a_connection_that_cannot_connect_names_its_devices_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    spec = ModbusTcpConnection(name=f"tcp:127.0.0.1:{port}", host="127.0.0.1", port=port,
                               timeout_s=0.2, connect_timeout_s=0.2)  # fmt: skip
    points = [ModbusPoint(f"p{u}", dev, u, Table.HOLDING_REGISTER, 0, DataType.UINT16)
              for u, dev in ((1, "cabinet"), (2, "flowmeter"))]  # fmt: skip
    stream, handler = _configured()
    poller = ConnectionPoller(create(spec), {0.1: points}, lambda *_: None)
    poller.backoff.initial_s = poller.backoff.cap_s = 0.1
    task = asyncio.create_task(poller.run(), name="poller")
    try:
        await asyncio.sleep(1.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        logging.getLogger().removeHandler(handler)
    assert poller.counters.connect_failures >= 3
    lines = [x for x in stream.getvalue().splitlines() if "cannot connect" in x]
    assert len(lines) == 1, lines
    assert f"tcp:127.0.0.1:{port} (cabinet, flowmeter): cannot connect" in lines[0]
