"""A PUBACK with a failure reason code is a failure: Mosquitto denies the telemetry topics to the
agent's user by ACL and answers an MQTT 5 PUBLISH with PUBACK 0x87 (not authorised). The rows
stay buffered; once the ACL allows them (SIGHUP reloads it) they arrive."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.faults_uplink.conftest import account, appended, buffer_query, wait_delivered
from tests.procs import AgentProc, Mosquitto, Subscriber, wait_for

DENY = """user platform
topic read pumproom/v1/#
user gw
topic write pumproom/v1/+/+/status
topic write pumproom/v1/+/+/meta
topic write pumproom/v1/+/+/event
topic readwrite pumproom/v1/+/+/cmd/#
"""
ALLOW = DENY + "topic write pumproom/v1/#\n"


def test_puback_not_authorised_keeps_rows_buffered_until_allowed(
    tmp_path: Path, agent: AgentProc, site: str
) -> None:
    pw, acl = tmp_path / "passwd", tmp_path / "acl"
    pw.touch()
    for user, password in (("gw", "gw-secret"), ("platform", "pf-secret")):
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
    acl.write_text(DENY)
    broker = Mosquitto(
        tmp_path, extra_conf=f"allow_anonymous false\npassword_file {pw}\nacl_file {acl}\n"
    ).start()
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
        assert agent.log.read_text().count("uplink: connected") == 1
        acl.write_text(ALLOW)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)  # reload the ACL
        wait_delivered(agent, sub, appended(agent), 30)
        account("puback_0x87_then_allowed", agent, sub, buffered_while_denied=buffered)
    finally:
        sub.stop()
        broker.stop()
