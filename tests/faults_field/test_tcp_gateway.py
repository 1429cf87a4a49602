"""A Modbus TCP/RTU gateway with a dead or silent unit behind it, against the simulator's TCP
server playing the gateway (exception 0x0A/0x0B, Modbus Application Protocol V1.1b3 §7)."""

from __future__ import annotations

import time

import pytest

from agent.core.model import Quality
from drivers import create
from drivers.modbus.health import OFFLINE_AFTER
from tests.drivers.conftest import typed_points
from tests.faults_field.conftest import tcp_spec


def unit_requests(server, unit: int) -> int:
    return sum(server.counters.snapshot().get("tcp", {}).get(unit, {}).values())


@pytest.mark.parametrize("code", [0x0A, 0x0B])
async def test_gateway_exception_is_a_comm_failure_of_that_unit_never_a_split(tcp_server, code):
    tcp_server.faults.unit(2).gateway_error = code
    drv = create(tcp_spec(tcp_server))
    drv.probe_interval_s = 0.3
    await drv.connect()
    try:
        plan = drv.plan(typed_points(1) + typed_points(2))
        per_unit = {u: sum(r.unit_id == u for r in plan.requests) for u in (1, 2)}
        reasons = []
        for _ in range(OFFLINE_AFTER + 2):
            before = unit_requests(tcp_server, 2)
            got = await drv.read(plan)
            # one request to the dead unit per read at most: its other requests are skipped,
            # nothing is split into single-point reads
            assert unit_requests(tcp_server, 2) - before <= 1
            u2 = {(r.quality, r.reason) for r in got if r.point.startswith("u2.")}
            assert len(u2) == 1, u2
            quality, reason = next(iter(u2))
            assert quality is Quality.COMM_FAIL  # not BAD_VALUE: the unit, not the address
            reasons.append(reason)
            assert all(r.quality is Quality.GOOD for r in got if r.point.startswith("u1."))
        first = [f"modbus:exception:{code}"] * OFFLINE_AFTER
        assert reasons == [*first, "offline", "offline"]
        c = drv.counters()
        assert c["unreadable_points"] == 0  # nothing learned about addresses
        assert c["devices"]["dev2"]["offline"] is True
        assert c["devices"]["dev2"]["exceptions"] == {code: OFFLINE_AFTER}
        # the slave answers again: back at the next probe (probe_interval_s), in full
        tcp_server.faults.unit(2).gateway_error = 0
        t0 = time.monotonic()
        while not all(r.quality is Quality.GOOD for r in await drv.read(plan)):
            assert time.monotonic() - t0 < 2.0, "unit 2 did not come back"
        assert per_unit[2] > 1  # (the plan has several requests for unit 2)
    finally:
        await drv.close()


async def test_silent_unit_behind_gateway_goes_offline_and_is_probed_slowly(tcp_server):
    tcp_server.faults.unit(2).silent = True
    drv = create(tcp_spec(tcp_server, timeout_s=0.2))
    drv.probe_interval_s = 0.6
    await drv.connect()
    try:
        plan = drv.plan(typed_points(1)[:4] + typed_points(2)[:4])
        t_end = time.monotonic() + 2.0
        reads = 0
        while time.monotonic() < t_end:
            got = await drv.read(plan)
            reads += 1
            assert all(r.quality is Quality.GOOD for r in got if r.point.startswith("u1."))
        c = drv.counters()["devices"]["dev2"]
        assert c["offline"] is True
        # two timeouts to go offline, then one probe per 0.6 s at most (not one per read)
        assert c["timeouts"] <= OFFLINE_AFTER + 2.0 / 0.6 + 1, (c, reads)
        assert reads > c["timeouts"] + 5
    finally:
        await drv.close()
