"""Broker faults during steady polling: restarts, and a broker that hangs (SIGSTOP) for longer
than the keep-alive without closing the connection."""

from __future__ import annotations

import random
import time

from tests.faults_uplink.conftest import account, appended, wait_delivered
from tests.procs import AgentProc, Mosquitto, Subscriber, wait_for


def _sessions(sub: Subscriber) -> list[int]:
    return [
        body["session"]
        for topic, body, _ in sub.snapshot()
        if topic.endswith("/status") and body.get("state") == "online"
    ]


def _connects(agent: AgentProc) -> int:
    return agent.log.read_text().count("uplink: connected")


def test_ten_broker_restarts_during_steady_polling_lose_nothing(
    broker: Mosquitto, subscriber: Subscriber, agent: AgentProc
) -> None:
    agent.start()
    wait_for(lambda: subscriber.samples(), 20, "first telemetry")
    rng = random.Random(3)
    for i in range(10):
        # each restart hits a live session: wait for the (i+1)-th connect first
        wait_for(lambda i=i: _connects(agent) > i, 40, f"connect {i + 1}")
        time.sleep(rng.uniform(0.3, 1.5))
        broker.stop()
        time.sleep(rng.uniform(0.3, 1.5))
        broker.start()
    target = appended(agent)
    wait_delivered(agent, subscriber, target, 30)
    counts = account("broker_restarts_10", agent, subscriber, restarts=10)
    sessions = _sessions(subscriber)
    assert counts["polled"] > 10 * 200, "polling went on through the restarts"
    assert len(set(sessions)) >= 11, f"the agent reconnected after each restart: {sessions}"
    assert sessions == sorted(sessions), "session numbers grow on every connect"


def test_broker_hung_longer_than_keepalive_is_noticed_and_nothing_lost(
    broker: Mosquitto, subscriber: Subscriber, agent: AgentProc
) -> None:
    agent.extra = ["uplink.keepalive_s=5"]
    agent.start()
    wait_for(lambda: subscriber.samples(), 20, "first telemetry")
    wait_for(lambda: _sessions(subscriber), 10, "birth")
    time.sleep(1.0)
    broker.pause()
    paused_at = time.monotonic()
    time.sleep(12.0)  # > keep-alive (5 s) plus paho's check
    broker.resume()
    log = agent.log.read_text()
    assert "connection lost" in log, "the agent noticed the hung broker through keep-alive"
    wait_for(lambda: len(set(_sessions(subscriber))) >= 2, 30, "a new session after the hang")
    target = appended(agent)
    wait_delivered(agent, subscriber, target, 30)
    account("broker_sigstop_12s", agent, subscriber, paused_s=round(time.monotonic() - paused_at))
