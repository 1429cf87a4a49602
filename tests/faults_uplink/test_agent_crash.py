"""Agent crashes and clean stops while a backlog drains: SIGKILL at random instants (20 times,
restarting on the same buffer file) and SIGTERM; nothing the buffer accepted is lost."""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.faults_uplink.conftest import account, appended, wait_delivered
from tests.procs import AgentProc, Mosquitto, Subscriber, wait_for

BACKLOG_RATE = 200
"""Backlog drain rate in these tests, samples/s: slow, so the kills land mid-drain."""


def _connects(agent: AgentProc) -> int:
    return agent.log.read_text().count("uplink: connected")


def _build_backlog(agent: AgentProc, broker: Mosquitto, sub: Subscriber, seconds: float) -> int:
    """Run the agent with the broker stopped for ``seconds``; return the backlog (samples)."""
    agent.start()
    wait_for(lambda: sub.samples(), 20, "first telemetry")
    broker.stop()
    before = appended(agent)
    time.sleep(seconds)
    broker.start()
    return appended(agent) - before


def _backfill_received(sub: Subscriber) -> int:
    return sum(1 for s in sub.samples() if s[6])


@pytest.mark.timeout(300)  # 21 agent start-ups of 3-5 s each on a loaded machine: > 120 s
def test_twenty_sigkills_while_a_backlog_drains_lose_nothing(
    broker: Mosquitto, subscriber: Subscriber, agent: AgentProc
) -> None:
    agent.extra = [f"uplink.backlog_rate_per_s={BACKLOG_RATE}"]
    backlog = _build_backlog(agent, broker, subscriber, 8.0)
    assert backlog > 2000, backlog
    rng = random.Random(20)
    kills = []
    for i in range(20):
        if agent.proc is None:
            agent.start()
        if i % 2:  # from the process start: may hit start-up, buffer open, connect
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # from the connect: mid-drain
            n = _connects(agent)
            wait_for(lambda n=n: _connects(agent) > n, 20, "a connect")
            time.sleep(rng.uniform(0.0, 1.2))
        agent.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        agent.proc.wait(5)  # type: ignore[union-attr]
        agent.proc = None
        kills.append(_backfill_received(subscriber))
    print("backfilled samples received after each kill:", kills)
    assert kills[-1] > kills[0], "the backlog drained between the kills"
    n = _connects(agent)
    agent.start()
    # a SIGTERM before the agent has installed its handler (still importing) would kill it
    wait_for(lambda: _connects(agent) > n, 20, "the last run connected")
    wait_delivered(agent, subscriber, appended(agent), 60)
    account("agent_sigkill_20", agent, subscriber, kills=20, backlog=backlog)


def test_sigterm_mid_backlog_then_restart_loses_nothing(
    broker: Mosquitto, subscriber: Subscriber, agent: AgentProc
) -> None:
    agent.extra = [f"uplink.backlog_rate_per_s={BACKLOG_RATE}"]
    backlog = _build_backlog(agent, broker, subscriber, 5.0)
    wait_for(lambda: _backfill_received(subscriber) > 100, 20, "backfill under way")
    assert agent.stop() == 0, "SIGTERM stops the agent cleanly mid-backlog"
    left = len(agent.buffered_seqs())
    assert left > 0, "the backlog was still draining at SIGTERM"
    n = _connects(agent)
    agent.start()
    wait_for(lambda: _connects(agent) > n, 20, "the restart connected")
    wait_delivered(agent, subscriber, appended(agent), 40)
    account("agent_sigterm_mid_backlog", agent, subscriber, backlog=backlog, left_at_stop=left)
