"""The compact telemetry encoding end to end: the agent (``uplink.telemetry_format: cbor-c1``,
``compression: zlib``) as a process, the simulator's cabinet, a real Mosquitto that goes down
and comes back, and a validating platform subscriber that decodes with the reference decoder.

Live telemetry and the backfill after the outage arrive in the compact encoding; every CBOR map
and every decoded message keeps its schema; a buffer seeded with extreme values (uint64, -0.0,
subnormals, NaN, comm failures, unsynced samples, a point no longer configured) decodes to
exactly the v1 JSON samples; and nothing is lost (:func:`account`)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from agent import contract
from agent.core.model import Quality, Reading, Sample
from agent.store import Poll, Store
from tests.faults_uplink.conftest import account, appended, wait_delivered
from tests.procs import AgentProc, Mosquitto, Simulator, Subscriber, wait_for

ODD = [(1 << 64) - 1, -(1 << 63), -0.0, 5e-324, float("nan"), float("-inf"), True, 0.1]
UNITS = {"cabinet.p_out_f": "MPa", "cabinet.energy": "kWh", "removed.point": None}


def _seed(path: Path) -> list[Sample]:
    """Buffer 200 old samples before the agent starts (a backlog it sends as backfill)."""

    async def fill() -> list[Sample]:
        store = await Store.open(path, 1 << 26)
        try:
            polls = []
            for j in range(50):
                readings = [
                    Reading("cabinet.p_out_f", 0.4 + j / 1000),
                    Reading("cabinet.energy", ODD[j % len(ODD)]),
                    Reading("removed.point", j),
                    Reading("cabinet.flow", None, Quality.COMM_FAIL, "timeout"),
                ]
                polls.append(Poll(readings, 1_700_000_000_000 + 1000 * j, synced=j % 5 != 0))
            return (await store.append(polls)).samples
        finally:
            await store.close()

    return asyncio.run(fill())


def _v1(samples: list[Sample]) -> dict[int, list[tuple[str, str]]]:
    """seq → the v1 JSON sample (point first), each element tagged by type and repr."""
    out = {}
    for s in samples:
        units = {**UNITS, "cabinet.flow": "m³/h"}
        body = json.loads(contract.telemetry(contract.Identity("s", "g"), [s], units,
                                             hist=True, sent_ms=0))  # fmt: skip
        ((point, series),) = body["series"].items()
        out[s.seq] = _typed([point, *series["s"][0]])
    return out


def _typed(row: list[Any]) -> list[tuple[str, str]]:
    return [(type(v).__name__, repr(v)) for v in row]


def test_compact_telemetry_live_and_backfill_after_an_outage(
    tmp_path: Path, broker: Mosquitto, sim: Simulator, site: str, cabinet_config: Path
) -> None:
    sub = Subscriber(broker.port, site, validate=True).start()
    agent = AgentProc(
        tmp_path, broker.port, sim, site, config=cabinet_config, device_sets=[],
        extra=["uplink.telemetry_format=cbor-c1", "uplink.compression=zlib"],
    )  # fmt: skip
    try:
        seeded = _seed(agent.buffer)
        agent.start()
        wait_delivered(agent, sub, seeded[-1].seq, 40)  # the seeded backlog, as backfill
        wait_for(lambda: _cbor(sub, live=True), 20, "live telemetry in cbor-c1")

        broker.stop()  # an outage of a few seconds: the polls stay buffered
        before = appended(agent)
        wait_for(lambda: appended(agent) > before + 50, 20, "polls buffered during the outage")
        during = appended(agent)
        broker.start()
        wait_delivered(agent, sub, during, 60)
        time.sleep(1.0)  # live again after the outage
        counts = account("wire_cbor_outage", agent, sub)
    finally:
        if agent.proc is not None:
            agent.stop(9)
        sub.stop()
    sub.assert_valid()
    assert counts["lost"] == 0
    hist_after = [b for t, b in sub.cbor if b["hist"] and b["seq"] + len(b["x"]) > before]
    assert hist_after, "no backfill in cbor-c1 after the outage"
    assert _cbor(sub, live=True), "no live telemetry in cbor-c1"
    telemetry = [t for t, _, _ in sub.snapshot() if "/telemetry" in t]
    assert len(telemetry) == len(sub.cbor), "some telemetry messages were not cbor-c1"
    got = {}
    for seq, point, t, value, q, reason, _ in sub.samples():
        got[seq] = _typed([point, seq, t, value] + ([q, reason] if q != "g" else []))
    want = _v1(seeded)
    assert {s: got.get(s) for s in want} == want
    metas = [b for t, b, _ in sub.snapshot() if t.endswith("/meta")]
    assert metas and all(m["encoding"]["telemetry_format"] == "cbor-c1" for m in metas)


def _cbor(sub: Subscriber, *, live: bool) -> list[dict[str, Any]]:
    return [b for _, b in sub.cbor if b["hist"] is not live]
