"""End to end: simulator, agent, Mosquitto and a platform subscriber as real processes."""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from typing import Any

import pytest

from agent.config import load_config
from agent.control.state import CATALOGUE, catalogue_points
from tests.procs import EXAMPLE, AgentProc, Mosquitto, Simulator, Subscriber, seq_report, wait_for

pytestmark = pytest.mark.e2e


def _meta(sub: Subscriber) -> dict[str, Any]:
    for topic, body, _ in sub.snapshot():
        if topic.endswith("/meta"):
            return body
    return {}


def _points_seen(sub: Subscriber) -> set[str]:
    return {s[1] for s in sub.samples()}


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return bool(a == b)
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)


def test_every_point_matches_the_simulator_truth_over_tcp_rtu_and_opcua(
    sim: Simulator, subscriber: Subscriber, agent: AgentProc
) -> None:
    agent.start()
    meta = wait_for(lambda: _meta(subscriber), 20, "the retained meta message")
    names = {p["name"] for p in meta["points"]}
    # the devices' points and the control loop's own telemetry (ctl.*: the example runs it)
    config = load_config(EXAMPLE)
    control = {p.name for p in catalogue_points(config.control)}
    assert len(control) == len(CATALOGUE)
    assert names == {p.name for d in config.devices for p in d.points} | control
    assert len(names) == config.point_count + len(CATALOGUE)
    wait_for(lambda: names <= _points_seen(subscriber), 20, "a sample of every point")
    names -= control  # the simulator's truth knows the devices' points, not the agent's

    sim.command({"cmd": "freeze", "on": True})
    frozen_at = int(time.time() * 1000)
    truth = sim.command({"cmd": "truth"})["values"]
    time.sleep(2.6)  # two full poll cycles after the freeze

    checked: dict[str, int] = defaultdict(int)
    transport = {p["name"]: p["source"].split()[0] for p in meta["points"]}
    wrong = []
    for _seq, point, t, value, q, reason, _hist in subscriber.samples():
        if t <= frozen_at + 50 or point in control:
            continue
        if q != "g" or not _close(value, truth[point]):
            wrong.append((point, value, q, reason, truth[point]))
        checked[point] += 1
    assert not wrong, f"uplinked values differ from the simulator's truth: {wrong[:10]}"
    assert set(checked) == names, f"points never checked: {sorted(names - set(checked))}"
    by_transport = defaultdict(int)
    for point in checked:
        by_transport[transport[point]] += 1
    assert set(by_transport) == {"modbus-tcp", "modbus-rtu", "opcua"}, by_transport
    print(f"checked {sum(checked.values())} samples of {len(checked)} points: {dict(by_transport)}")


def test_broker_down_20_s_every_sample_arrives_afterwards(
    sim: Simulator, broker: Mosquitto, subscriber: Subscriber, agent: AgentProc
) -> None:
    agent.start()
    wait_for(lambda: subscriber.samples(), 20, "first telemetry")
    time.sleep(2)
    broker.stop()
    down_from = int(time.time() * 1000)
    time.sleep(20)
    down_to = int(time.time() * 1000)
    broker.start()

    def backfilled() -> bool:
        return any(h and down_from < t < down_to for _, _, t, _, _, _, h in subscriber.samples())

    wait_for(backfilled, 30, "backfill of the outage")
    # drained: no backfill message for 3 s
    last = -1
    while True:
        n = sum(1 for topic, _, _ in subscriber.snapshot() if topic.endswith("/backfill"))
        if n == last:
            break
        last = n
        time.sleep(3)
    assert agent.stop() == 0, "SIGTERM must stop the agent cleanly (exit 0)"

    samples = subscriber.samples()
    missing, duplicates = seq_report(
        (s[0] for s in samples), agent.buffered_seqs(), agent.appended(), agent.seq_base()
    )
    print(
        f"{agent.appended() - agent.seq_base()} samples polled, {len(samples)} received, {duplicates} duplicates, "
        f"{len(agent.buffered_seqs())} still buffered"
    )
    assert not missing, f"{len(missing)} samples lost, e.g. seqs {sorted(missing)[:10]}"

    per_point: dict[str, list[int]] = defaultdict(list)
    for _seq, point, t, *_ in {s[0]: s for s in samples}.values():
        per_point[point].append(t)
    # every point is polled every cycle of its connection; the three connections (TCP, RTU,
    # OPC UA) keep their own schedules, and a cycle a loaded machine made late is skipped (an
    # overrun, agent/poller.py) on that connection alone: 39 against 37 was seen under pytest -n 3.
    # The control loop publishes its ctl.* every publish_interval_s (1 s) from its start (after
    # its start-up wait for the first outlet pressure), so they are a group of their own
    loop_points = {name for name, *_ in CATALOGUE}
    for group, members in (
        ("devices", [p for p in per_point if p not in loop_points]),
        ("ctl", sorted(loop_points)),
    ):
        counts = {p: len(per_point[p]) for p in members}
        assert max(counts.values()) - min(counts.values()) <= 3, (group, counts)
    in_gap = [t for t in per_point["cabinet.p_out"] if down_from < t < down_to]
    # 1 s polling over 20 s: 20 polls on an idle machine; a loaded CI machine (pytest -n 3 on 2
    # cores) has been seen to lose a couple of cycles, which the 2.5 s hole bound below still limits
    assert len(in_gap) >= 16, f"polling continued while the broker was down ({len(in_gap)} polls)"
    for point, ts in per_point.items():
        ts.sort()
        worst = max(b - a for a, b in itertools.pairwise(ts))
        assert worst < 2500, f"{point}: a {worst} ms hole in the series"


def test_an_exception_or_a_silent_unit_costs_only_its_points(
    sim: Simulator, subscriber: Subscriber, agent: AgentProc
) -> None:
    agent.start()
    meta = wait_for(lambda: _meta(subscriber), 20, "meta")
    names = {p["name"] for p in meta["points"]}
    wait_for(lambda: names <= _points_seen(subscriber), 20, "a sample of every point")
    source = {p["name"]: p["source"].split() for p in meta["points"]}
    device = {p["name"]: p["device"] for p in meta["points"]}
    # setpoint lives inside a coalesced block of the cabinet (unit 1): make just it unreadable
    src = source["setpoint"]
    sim.command(
        {
            "cmd": "fault",
            "unit": 1,
            "transport": "tcp",
            "exception": {"table": "holding_register", "address": int(src[-1]), "code": 2},
        }
    )
    sim.command({"cmd": "fault", "unit": 12, "transport": "rtu", "silent": True})
    faulted_at = int(time.time() * 1000)

    def settled() -> dict[str, Any] | None:
        latest = subscriber.latest_by_point()
        fresh = all(v[0] > faulted_at + 1500 for v in latest.values())
        return latest if fresh and len(latest) == len(names) else None

    latest = wait_for(settled, 20, "a full cycle after the faults")
    assert latest["setpoint"][2:] == ("b", "modbus:exception:2")
    vfd2 = {n for n in names if device[n] == "vfd2"}
    for name in vfd2:
        assert latest[name][2:] == ("c", "timeout"), (name, latest[name])
    others = {n: v for n, v in latest.items() if n != "setpoint" and n not in vfd2}
    assert all(v[2] == "g" for v in others.values()), {
        n: v for n, v in others.items() if v[2] != "g"
    }

    sim.command({"cmd": "clear_faults"})
    cleared_at = int(time.time() * 1000)

    def vfd2_back() -> bool:
        latest = subscriber.latest_by_point()
        return all(latest[n][0] > cleared_at and latest[n][2] == "g" for n in vfd2)

    wait_for(vfd2_back, 10, "the silent unit back within a few cycles")


def _minimum_requests(config_path: Any) -> dict[tuple[str, int], int]:
    """Independent oracle: the fewest reads per (transport, unit id) that each device's request
    limit (max_read_registers / max_read_bits) allows, by a sweep over sorted addresses. It
    ignores max_gap: the config must bridge every gap the device can read through."""
    cfg = load_config(config_path)
    out: dict[tuple[str, int], int] = {}
    from agent.config import pdu_address

    for d in cfg.devices:
        if d.transport == "opcua":
            continue
        spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for p in d.points:
            start = pdu_address(p.register, p.address, d.addressing)
            width = 1 if p.register in ("coil", "discrete_input") else _width(p.dtype)
            spans[p.register].append((start, start + width))
        n = 0
        for register, items in spans.items():
            limit = (
                d.max_read_bits if register in ("coil", "discrete_input") else d.max_read_registers
            )
            items.sort()
            block_start, block_end = items[0]
            n += 1
            for s, e in items[1:]:
                if max(e, block_end) - block_start > limit:
                    n += 1
                    block_start, block_end = s, e
                else:
                    block_end = max(block_end, e)
        key = ("tcp" if d.transport == "modbus-tcp" else "rtu", d.unit_id)
        out[key] = out.get(key, 0) + n
    return out


def _width(dtype: str) -> int:
    return {"float64": 4, "int64": 4, "uint64": 4, "float32": 2, "int32": 2, "uint32": 2}.get(
        dtype, 1
    )


READS = (1, 2, 3, 4)
"""Modbus read function codes: coils, discrete inputs, holding and input registers."""


def test_requests_per_poll_cycle_are_the_minimum_the_limits_allow(
    sim: Simulator, subscriber: Subscriber, agent: AgentProc
) -> None:
    cfg = load_config(EXAMPLE)
    agent.extra = [f"devices.{d.name}.poll_interval_s=2.0" for d in cfg.devices]
    agent.start()
    meta = wait_for(lambda: _meta(subscriber), 20, "meta")
    names = {p["name"] for p in meta["points"]}
    wait_for(lambda: names <= _points_seen(subscriber), 20, "a sample of every point")

    def total() -> int:
        stats = sim.command({"cmd": "stats"})["stats"]
        return sum(n for units in stats.values() for fcs in units.values() for n in fcs.values())

    # align to the middle between two 2-second cycles: wait for a burst to start, then 1 s
    before = total()
    wait_for(lambda: total() != before, 5, "a poll burst")
    time.sleep(1.0)
    sim.command({"cmd": "reset_stats"})
    cycles = 3
    time.sleep(2.0 * cycles)
    stats = sim.command({"cmd": "stats"})["stats"]
    expected = _minimum_requests(EXAMPLE)
    measured = {
        (transport, int(unit)): sum(n for fc, n in fcs.items() if int(fc) in READS) / cycles
        for transport, units in stats.items()
        for unit, fcs in units.items()
    }
    print("read requests per cycle by (transport, unit):", measured, "minimum:", expected)
    assert measured == {k: float(v) for k, v in expected.items()}
    # the example's control loop (supervisory) wrote the cabinet's setpoint and run enable at
    # its start; read back, they are not written again (no watchdog to feed on the cabinet)
    writes = {(tr, unit, fc): n for tr, units in stats.items() for unit, fcs in units.items()
              for fc, n in fcs.items() if int(fc) not in READS}  # fmt: skip
    assert not writes, f"writes in steady supervisory control: {writes}"


def test_status_page_shows_connections_buffer_and_points(
    sim: Simulator, subscriber: Subscriber, agent: AgentProc
) -> None:
    import json
    import urllib.request

    agent.start()
    wait_for(lambda: subscriber.samples(), 20, "first telemetry")
    base = f"http://127.0.0.1:{agent.status_port}"

    def fetch() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{base}/status.json", timeout=2) as r:
                return json.load(r)
        except OSError:
            return None

    snap = wait_for(fetch, 10, "the status page")
    assert snap["site"] == agent.site and snap["uplink"]["connected"] is True
    assert {c["name"] for c in snap["connections"]} >= {"analyser"}

    def all_polled() -> dict[str, Any] | None:
        # the first telemetry may come from one connection before the slowest (OPC UA, on a
        # loaded machine) has connected: wait for every one rather than race it
        s = fetch()
        return s if s and all(c["connected"] and c["polls"] > 0 for c in s["connections"]) else None

    snap = wait_for(all_polled, 20, "every connection connected and polled")
    assert snap["points"]["cabinet.p_out"]["q"] == "g"
    with urllib.request.urlopen(base + "/", timeout=2) as r:
        page = r.read().decode()
    assert "cabinet.p_out" in page and "connected" in page
