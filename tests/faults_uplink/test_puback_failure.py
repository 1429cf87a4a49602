"""A PUBACK with a failure reason code is a failure: Mosquitto denies the telemetry topics to the
agent's user by ACL and answers an MQTT 5 PUBLISH with PUBACK 0x87 (not authorised). The rows
stay buffered; once the ACL allows them (SIGHUP reloads it) they arrive. Meanwhile the agent
backs off (a handful of refused publishes, not a hot loop of thousands), names the refusal once
in its log and shows it in its status page and its retained status."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.faults_uplink.conftest import account, appended, buffer_query, wait_delivered
from tests.procs import (
    ACL_ALLOW_ALL,
    ACL_DENY_TELEMETRY,
    AgentProc,
    Subscriber,
    acl_broker,
    wait_for,
)

KEY = "PUBACK 0x87 Not authorized (telemetry)"


def _status(agent: AgentProc) -> dict[str, Any]:
    url = f"http://127.0.0.1:{agent.status_port}/status.json"
    with urllib.request.urlopen(url, timeout=5) as r:
        return dict(json.loads(r.read()))


def test_puback_not_authorised_keeps_rows_buffered_until_allowed(
    tmp_path: Path, agent: AgentProc, site: str
) -> None:
    broker, acl = acl_broker(tmp_path, ACL_DENY_TELEMETRY)
    sub = Subscriber(broker.port, site)
    sub.client.username_pw_set("platform", "pf-secret")
    sub.start()
    try:
        agent.broker_port = broker.port
        agent.env = {"FU_MQTT_USER": "gw", "FU_MQTT_PASSWORD": "gw-secret"}
        agent.extra = [
            "uplink.credentials.username_env=FU_MQTT_USER",
            "uplink.credentials.password_env=FU_MQTT_PASSWORD",
        ]
        agent.start()
        wait_for(lambda: any(t.endswith("/status") for t, _, _ in sub.snapshot()), 20, "the birth")
        time.sleep(4.0)
        assert not sub.samples(), "the broker refused every telemetry publish"
        buffered = buffer_query(agent.buffer, "SELECT count(*) FROM samples")[0][0]
        polled = appended(agent) - agent.seq_base()  # a new buffer's seqs start at its base
        print(f"denied: {polled} polled, {buffered} still buffered")
        assert polled > 1000 and buffered >= polled - 100, "refused rows stay in the buffer"
        # one session throughout: the refusals came as PUBACK reason codes, not disconnects
        log = agent.log.read_text()
        assert log.count("uplink: connected") == 1
        assert log.count(f"broker refused: {KEY}") == 1, "named once in the log"
        refused = _status(agent)["uplink"]["refusals"]["counts"].get(KEY, 0)
        print(f"refused publishes while denied: {refused}")
        # backoff 0.25–0.5, 0.5–1, 1–2, 2–4 s, one probe at a time (live and backlog): ~10;
        # main sent ~800 refused publishes a second
        assert 1 <= refused <= 20, f"{refused} refused publishes in ~5 s"
        retained = [
            b for t, b, _ in sub.snapshot() if t.endswith("/status") and b.get("state") == "online"
        ]
        assert any(
            KEY in b.get("health", {}).get("uplink", {}).get("refusals", {}).get("counts", {})
            for b in retained
        ), "the retained status names the refusal"
        acl.write_text(ACL_ALLOW_ALL)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)  # reload the ACL
        wait_delivered(agent, sub, appended(agent), 30)
        account("puback_0x87_then_allowed", agent, sub, buffered_while_denied=buffered)
    finally:
        sub.stop()
        broker.stop()
