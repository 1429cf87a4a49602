"""Subscribed OPC UA values carry the server's SourceTimestamp into the samples, within clock
sanity bounds, through the real poller, driver and the simulator's OPC UA server."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from agent.core.model import Reading
from agent.poller import SOURCE_AHEAD_S, ConnectionPoller
from drivers import create
from drivers.specs import OpcUaConnection, OpcUaPoint
from hil_sim.devices.opcua_server import NAMESPACE_URI, OpcUaFacade
from hil_sim.plant import Plant
from tests.faults_field.test_opcua_faults import free_port

POLL_S = 0.2
PH = OpcUaPoint("wq.ph", "analyser", "ns=2;s=Analyser.pH", NAMESPACE_URI, mode="subscribe")


@pytest.fixture
async def ua_server():
    server = OpcUaFacade(Plant(), "127.0.0.1", free_port())
    server.clock_offset_s = -3.0  # the analyser's clock is 3 s behind ours
    await server.start()
    yield server
    await server.stop()


async def test_subscribed_values_carry_the_source_time_when_sane(ua_server, caplog):
    got: list[tuple[Reading, int]] = []
    spec = OpcUaConnection("analyser", ua_server.endpoint, 1.0, 2.0, publish_interval_s=0.05)
    poller = ConnectionPoller(
        create(spec), {POLL_S: [PH]}, lambda rs, ts: got.extend((r, ts) for r in rs)
    )
    task = asyncio.create_task(poller.run())

    async def sample_of(value: float) -> tuple[int, int]:
        """(sample time, wall ms when the batch arrived) of the first sample with ``value``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            for r, ts in got:
                if r.value == pytest.approx(value):
                    return ts, int(time.time() * 1000)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no sample of {value}")

    try:
        await asyncio.sleep(0.5)  # connected, subscribed
        # the analyser's clock is 3 s behind ours: its SourceTimestamp is used as it is
        written = int(time.time() * 1000)
        await ua_server.write_value("wq.ph", 7.125)
        ts, _ = await sample_of(7.125)
        assert abs(ts - (written - 3000)) < 300, (ts, written)
        # polled again unchanged: stamped with the poll time, never the same time twice
        await asyncio.sleep(3 * POLL_S)
        again = [ts for r, ts in got if r.value == pytest.approx(7.125)]
        assert len(again) >= 2 and again == sorted(set(again)) and again[-1] > written - 500
        # an hour ahead of our clock: not believed, the poll time stamps it, flagged once
        ua_server.clock_offset_s = 3600.0
        with caplog.at_level(logging.WARNING, logger="agent.poller"):
            await ua_server.write_value("wq.ph", 7.5)
            ts, arrived = await sample_of(7.5)
        assert arrived - 1000 - POLL_S * 1000 <= ts <= arrived + SOURCE_AHEAD_S * 1000
        assert poller.counters.source_time_rejected >= 1
        assert poller.counters.source_time_used >= 1
        assert any("ahead of our clock" in r.getMessage() for r in caplog.records)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
