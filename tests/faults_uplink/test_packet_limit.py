"""Mosquitto with ``max_packet_size 4096`` (announced in CONNACK, MQTT 5 §3.2.2.3.6), the way
AWS IoT Core or a hardened broker limits messages: the agent starts offline with the broker
down, builds a backlog, and when the broker comes back every backfill batch, the live batches,
the meta and the status fit. One session, every sample delivered, the limit named in the log
and in the status page (main reconnected about twice a second for ever, delivering nothing)."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

from tests.faults_uplink.conftest import account, appended, wait_delivered
from tests.procs import AgentProc, Mosquitto, Subscriber, wait_for

LIMIT = 4096


def _backlog(agent: AgentProc) -> int:
    try:
        return appended(agent) - agent.seq_base()
    except sqlite3.OperationalError:  # the buffer's tables are not made yet
        return 0


def test_every_packet_fits_maximum_packet_size(tmp_path: Path, agent: AgentProc, site: str) -> None:
    broker = Mosquitto(tmp_path, extra_conf=f"max_packet_size {LIMIT}\n").start()
    sub = Subscriber(broker.port, site, validate=True).start()
    try:
        broker.stop()  # the agent starts offline: a backlog of ~1,600 samples builds
        agent.broker_port = broker.port
        agent.start()
        wait_for(lambda: _backlog(agent) > 1500, 30, "a backlog")
        broker.start()  # same port; the subscriber's persistent session resumes
        wait_delivered(agent, sub, appended(agent), 40)
        url = f"http://127.0.0.1:{agent.status_port}/status.json"
        with urllib.request.urlopen(url, timeout=5) as r:
            limits = json.loads(r.read())["uplink"]["limits"]
        assert limits["max_packet_size"] == LIMIT
        time.sleep(1.0)
        log = agent.log.read_text()
        assert log.count("uplink: connected") == 1, "one session: no packet was too large"
        assert f"maximum packet {LIMIT}" in log
        assert any(t.endswith("/meta") for t, _, _ in sub.snapshot()), "the meta arrived"
        sub.assert_valid()
        account("max_packet_size_4096", agent, sub)
    finally:
        sub.stop()
        broker.stop()
