"""The side-by-side's own parts (tests/benchmarks/peer): the getSessionLimits stand-in answers a
real request through a real Mosquitto the way the peer's client accepts, the counter counts both
gateways' telemetry, and the CPU / interleaving arithmetic is right on synthetic input."""

from __future__ import annotations

import json
import os
import threading
import zlib
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.benchmarks.peer import cpu, peer_gw
from tests.benchmarks.peer.counter import count_values
from tests.benchmarks.peer.cpu import Run, Stat
from tests.benchmarks.peer.standin import SessionLimitsStandIn, answer
from tests.procs import Mosquitto, wait_for


def _no_limit(spec: str) -> bool:
    """The peer's reading of a rate-limit string (tb_device_mqtt.RateLimit): "" or "0:0" once
    the trailing commas are stripped means no limit."""
    return spec.replace(";", ",").strip(",").strip() in ("", "0:0")


def test_standin_answers_a_real_getsessionlimits_request_through_mosquitto(tmp_path: Path) -> None:
    mq = Mosquitto(tmp_path).start()
    standin = SessionLimitsStandIn(mq.port).start()
    got: list[tuple[str, Any]] = []
    subscribed = threading.Event()
    # The gateway's side, as tb_device_mqtt does it: subscribe to the responses, then publish
    # the RPC call on the request topic with its own request id.
    gw = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="gw-under-test")
    gw.on_connect = lambda c, u, f, rc, p: c.subscribe("v1/devices/me/rpc/response/+", qos=1)
    gw.on_subscribe = lambda *a: subscribed.set()
    gw.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    try:
        gw.connect("127.0.0.1", mq.port, keepalive=10)
        gw.loop_start()
        assert subscribed.wait(10)
        call = {"method": "getSessionLimits", "params": {"timeout": 5000}}
        gw.publish("v1/devices/me/rpc/request/7", json.dumps(call), qos=1)
        gw.publish("v1/devices/me/rpc/request/8", json.dumps({"method": "other"}), qos=1)
        gw.publish("v1/devices/me/rpc/request/9", json.dumps(call), qos=1)
        wait_for(lambda: len(got) >= 2, 20, "two answers")
        gw.publish("v1/devices/me/rpc/request/10", b"not json", qos=1)
        wait_for(lambda: standin.errors, 20, "the stand-in noting the bad request")
    finally:
        gw.disconnect()
        gw.loop_stop()
        standin.stop()
        mq.stop()
    assert sorted(t for t, _ in got) == [
        "v1/devices/me/rpc/response/7",
        "v1/devices/me/rpc/response/9",
    ]
    assert standin.answered == 2
    assert "request/10" in standin.errors[0]
    body = got[0][1]
    # what TBGatewayMqttClient.__on_service_configuration and on_service_configuration need
    assert isinstance(body, dict) and "error" not in body and "rateLimits" in body
    for section in ("rateLimits", "gatewayRateLimits"):
        limits = body[section]
        assert set(limits) == {"messages", "telemetryMessages", "telemetryDataPoints"}
        assert all(_no_limit(v) for v in limits.values())
    assert int(body["maxInflightMessages"]) >= 1
    assert int(body["maxPayloadSize"]) >= 8196  # the peer's maxPayloadSizeBytes in our config


def test_answer_ignores_other_topics_and_methods() -> None:
    assert answer("v1/devices/me/rpc/response/1", b"{}") is None
    assert answer("v1/devices/me/rpc/request/3", b'{"method": "x"}') is None
    assert answer("v1/devices/me/rpc/request/3", b"[1]") is None
    with pytest.raises(ValueError, match="request/3"):
        answer("v1/devices/me/rpc/request/3", b"{")


def test_parse_stat_counts_fields_after_a_command_name_with_spaces_and_parens() -> None:
    # proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime ...
    line = "4242 (tb gw) (x)) S 17 4242 4242 0 -1 4194304 900 0 0 0 311 52 7 3 20 0 9 0 1\n"
    assert cpu.parse_stat(line) == Stat(4242, 17, 311, 52, 7, 3)
    with pytest.raises(ValueError, match="not a /proc"):
        cpu.parse_stat("12 (short) S 1 2")


def test_tree_ticks_adds_live_descendants_and_reaped_children_only() -> None:
    stats = [
        Stat(1, 0, 1000, 1000, 0, 0),  # init: not in the tree
        Stat(10, 1, 100, 20, 5, 1),  # the gateway
        Stat(11, 10, 30, 4, 0, 0),  # its child
        Stat(12, 11, 2, 1, 0, 0),  # a grandchild
        Stat(13, 1, 500, 500, 0, 0),  # a sibling: not in the tree
    ]
    assert cpu.tree_ticks(10, stats) == (100 + 20 + 5 + 1) + (30 + 4) + (2 + 1)
    assert cpu.tree_ticks(12, stats) == 3
    with pytest.raises(KeyError):
        cpu.tree_ticks(99, stats)


def test_tree_cpu_s_of_this_process_is_at_least_what_os_times_said_before() -> None:
    before = os.times()
    sum(i * i for i in range(200_000))  # some CPU of our own
    # /proc/self/stat and times(2) count the same ticks: the later read is never smaller
    assert cpu.tree_cpu_s(os.getpid()) >= before.user + before.system - 1e-9


def test_schedule_interleaves_subjects_round_by_round() -> None:
    assert cpu.schedule(["ours", "memory", "sqlite"], 2) == [
        (0, "ours"), (0, "memory"), (0, "sqlite"), (1, "ours"), (1, "memory"), (1, "sqlite"),
    ]  # fmt: skip
    with pytest.raises(ValueError):
        cpu.schedule(["ours"], 0)


def test_summarise_gives_medians_ranges_and_the_ratio_ours_over_peer() -> None:
    runs = [
        Run("ours", 0, 10.0, 0.30, 10_000, 700_000),  # 30 ms / 1000 values, 70 B/value
        Run("memory", 0, 10.0, 0.80, 10_000, 170_000),  # 80, 17 B/value
        Run("ours", 1, 10.0, 0.20, 10_000, 690_000),  # 20
        Run("memory", 1, 10.0, 0.90, 9_000, 171_000),  # 100, 19 B/value
        Run("ours", 2, 10.0, 0.25, 10_000, 710_000),  # 25
        Run("memory", 2, 10.0, 0.0, 0),  # nothing delivered: no per-value figure
    ]
    s = cpu.summarise(runs, "ours")
    assert s["ours"]["cpu_ms_per_1000"] == pytest.approx(25.0)
    assert (s["ours"]["cpu_ms_per_1000_min"], s["ours"]["cpu_ms_per_1000_max"]) == (
        pytest.approx(20.0),
        pytest.approx(30.0),
    )
    assert s["memory"]["cpu_ms_per_1000"] == pytest.approx(90.0)  # median of 80 and 100
    assert s["memory"]["values_per_s"] == pytest.approx(900.0)  # median of 1000, 900, 0
    assert s["memory"]["cpu_pct_of_core"] == pytest.approx(8.0)  # median of 8, 9, 0
    assert s["memory"]["ratio"] == pytest.approx(25.0 / 90.0)
    assert s["memory"]["bytes_per_value"] == pytest.approx(18.0)  # median of 17 and 19
    assert s["ours"]["bytes_per_value"] == pytest.approx(70.0)  # median of 70, 69 and 71
    assert s["ours"]["ratio"] == pytest.approx(1.0)
    flat = cpu.flat(s, "ours")
    assert flat["peer_ratio_ours_memory"] == pytest.approx(0.278)
    assert flat["peer_memory_cpu_ms_per_1000"] == pytest.approx(90.0)
    assert "peer_ratio_ours_ours" not in flat


def test_count_values_of_both_gateways_telemetry() -> None:
    ours = {"series": {"a": {"s": [[1, 0, 1.5], [2, 100, 1.6]]}, "b": {"s": [[3, 0, 2.0]]}}}
    raw = json.dumps(ours).encode()
    assert count_values("pumproom/v1/site/gw/telemetry", raw) == 3
    assert count_values("pumproom/v1/site/gw/telemetry/backfill", zlib.compress(raw)) == 3
    assert count_values("pumproom/v1/site/gw/status", b"{}") == 0
    peer = {"bench-plc": [{"ts": 1, "values": {"f0": 1.0, "f1": 2.0}}, {"ts": 2, "values": {}}]}
    last: dict[str, Any] = {}
    assert count_values("v1/gateway/telemetry", json.dumps(peer).encode(), last) == 2
    assert count_values("pumproom/v1/site/gw/telemetry", raw, last) == 3
    assert last == {"f0": 1.0, "f1": 2.0, "a": 1.6, "b": 2.0}
    assert count_values("v1/devices/me/telemetry", b"{}") == 0  # the peer's own statistics
    with pytest.raises(ValueError, match="v1/gateway/telemetry"):
        count_values("v1/gateway/telemetry", b"{")


def test_peer_config_reads_the_same_registers_as_ours(tmp_path: Path) -> None:
    conf = peer_gw.write_config(tmp_path, 1883, 5020, "sqlite", points=100, poll_ms=100)
    gw = json.loads((conf / "tb_gateway.json").read_text())
    assert gw["storage"]["type"] == "sqlite" and gw["storage"]["data_file_path"].endswith("/")
    slave = json.loads((conf / "modbus.json").read_text())["master"]["slaves"][0]
    assert slave["pollPeriod"] == 100 and (slave["byteOrder"], slave["wordOrder"]) == ("BIG",) * 2
    keys = slave["timeseries"]
    assert [k["address"] for k in keys] == list(range(0, 200, 2))
    assert {(k["type"], k["objectsCount"], k["functionCode"]) for k in keys} == {("32float", 2, 3)}
    with pytest.raises(ValueError, match="file"):
        peer_gw.write_config(tmp_path, 1883, 5020, "file")


def test_issue17_table_says_not_measured_and_prefers_the_builders_key() -> None:
    from tests.benchmarks import issue17

    text = issue17.table({"peer_ours_cpu_ms_per_1000": 31.0, "peer_ratio_ours_memory": 0.4})
    lines = dict(zip((r[0].strip() for r in issue17.ROWS), text.splitlines()[2:], strict=True))
    cpu_row = lines["CPU per 1000 points, 100 float32 / 100 ms, ms"]
    assert "31.000" in cpu_row and " NO " in cpu_row and "(peer_ours_cpu_ms_per_1000)" in cpu_row
    assert "NO" in lines["ours / peer memory (same run)"]
    assert "not measured" in lines["marginal CPU per sample, us"]
    assert "not measured" in lines["config load + check, 10k points, s"]
    text = issue17.table({"cpu_ms_per_1000_points": 7.5, "peer_ours_cpu_ms_per_1000": 31})
    assert "7.500  <= 8" in text and "yes (cpu_ms_per_1000_points)" in text
    assert "31.000" not in text
