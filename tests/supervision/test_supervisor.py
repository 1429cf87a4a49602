"""Every long-lived task runs under the supervisor: a stage that dies is logged at ERROR with its
traceback at once, counted in status (page and retained ``status`` health), restarted with the
shared backoff, and data flows again; a task that keeps dying makes the agent give up.

The deaths are injected through the agent's fault-injection point (:mod:`agent.faultpoint`, a
test hook read from a file) into the real agent process; before the supervisor, the ingest task
died silently (its exception surfaced only at shutdown) and nothing was buffered any more.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.supervisor import Supervisor
from tests.procs import wait_for
from tests.supervision.conftest import status_json


def _task(agent, name):
    snap = status_json(agent)
    return snap["tasks"].get(name) if snap else None


def test_a_dying_stage_is_logged_counted_restarted_and_data_flows_again(
    agent, subscriber, fault_file
):
    agent.start()
    wait_for(lambda: (s := status_json(agent)) and s["buffer"]["appended"] > 10, 30, "data")

    fault_file.write_text("ingest raise\n")
    wait_for(lambda: "task ingest died" in agent.log.read_text(), 10, "the ERROR line")
    fault_file.write_text("")
    text = agent.log.read_text()
    line = text[text.index("task ingest died") - 40 :]
    assert " ERROR " in line.splitlines()[0]
    assert "Traceback" in line and "InjectedFault: fault injected in ingest" in line
    wait_for(lambda: (t := _task(agent, "ingest")) and t["failures"] >= 1, 5, "the count")
    t = _task(agent, "ingest")
    assert t["last_failure"].startswith("InjectedFault") and t["last_failure_at"]
    # restarted: running again, and new readings reach the buffer
    wait_for(lambda: (t := _task(agent, "ingest")) and t["running"], 20, "the restart")
    before = status_json(agent)["buffer"]["appended"]
    wait_for(lambda: status_json(agent)["buffer"]["appended"] > before + 10, 10, "data again")
    assert status_json(agent)["task_failures"] >= 1

    # the uplink dies: its next session's retained birth carries the count
    fault_file.write_text("uplink raise\n")
    wait_for(lambda: "task uplink died" in agent.log.read_text(), 15, "the uplink's death")
    fault_file.write_text("")

    def birth_with_count():
        for topic, body, _retained in subscriber.snapshot():
            tasks = body.get("health", {}).get("tasks", {})
            if topic.endswith("/status") and tasks.get("uplink", {}).get("failures", 0) >= 1:
                return body
        return None

    body = wait_for(birth_with_count, 20, "a status message counting the uplink's failure")
    assert body["health"]["tasks"]["ingest"]["failures"] >= 1
    assert body["health"]["task_failures"] >= 2
    subscriber.assert_valid()
    assert agent.stop() == 0


async def test_a_task_that_keeps_failing_makes_the_supervisor_give_up(caplog):
    """More than ``limit`` failures within the window: no more restarts, ``give_up`` called
    once (the agent then stops cleanly and exits 1). Cancellation is never a failure."""
    runs = 0
    reasons: list[str] = []

    async def broken() -> None:
        nonlocal runs
        runs += 1
        raise ValueError(f"run {runs}")

    async def returns() -> None:
        return None

    async def forever() -> None:
        await asyncio.Event().wait()

    from agent.core.model import Backoff

    sup = Supervisor(reasons.append, limit=2, backoff=lambda: Backoff(0.01, 0.02))
    caplog.set_level(logging.ERROR)
    sup.start("broken", broken)
    sup.start("returns", returns)
    sup.start("forever", forever)
    for _ in range(200):
        if len(reasons) == 2:
            break
        await asyncio.sleep(0.01)
    assert runs == 3 and len(reasons) == 2
    assert any("task broken failed 3 times" in r for r in reasons)
    snap = sup.snapshot()
    assert snap["broken"]["failures"] == 3 and not snap["broken"]["running"]
    assert snap["returns"]["last_failure"] == "returned"
    assert snap["forever"] == {
        "running": True, "failures": 0, "last_failure": None, "last_failure_at": None,
    }  # fmt: skip
    errors = [r for r in caplog.records if "task broken died" in r.getMessage()]
    assert len(errors) == 2 and all(r.exc_info for r in errors)
    await sup.stop("broken", "returns", "forever")
    assert sup.snapshot()["forever"]["failures"] == 0  # a stop is not a failure
    with pytest.raises(KeyError):
        sup.tasks["forever"]


def test_the_agent_exits_1_when_a_stage_keeps_dying(
    cabinet_config, fault_file, tmp_path, monkeypatch, caplog
):
    """The agent's own choice, end to end (in this process, the simulator's real cabinet): the
    ingest stage dies at every start; past the restart limit (here 1, backoff 50 ms, instead of
    5 within 10 minutes) the agent stops cleanly and ``run`` returns 1, for systemd to restart
    it."""
    import functools

    from agent import app, faultpoint
    from agent.config import load_config
    from agent.core.model import Backoff

    fault_file.write_text("ingest raise\n")
    monkeypatch.setattr(faultpoint, "_FILE", str(fault_file))
    monkeypatch.setattr(
        app,
        "Supervisor",
        functools.partial(Supervisor, limit=1, backoff=lambda: Backoff(0.05, 0.1)),
    )
    config = load_config(
        str(cabinet_config),
        (
            f"buffer.path={tmp_path / 'buffer.sqlite'}",
            "uplink.broker=mqtt://127.0.0.1:9",  # nothing listens: the uplink stays down
            "status.enabled=false",
        ),
    )
    caplog.set_level(logging.INFO)
    assert app.run(config) == 1
    text = caplog.text
    assert "task ingest failed 2 times" in text and "giving up" in text
    assert "stopped;" in text  # a clean stop: pollers, flush, uplink, buffer closed
