"""Command intake: codes for every kind of bad request, duplicates, expiry, and a fuzz that never
crashes. The setpoint target uses the control loop's real bound checks (RemoteSetpoint)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.commands import CODES, CommandHandler, Request
from agent.config.control import Remote
from agent.control.remote import RemoteSetpoint
from agent.core.model import WallClock
from agent.store import Store


class BoundedTarget:
    """The control loop's command API over its real bound checks; records what it applied."""

    def __init__(self) -> None:
        self.remote = RemoteSetpoint(
            Remote(min_mpa=0.2, max_mpa=0.6, max_step_mpa=0.1, min_interval_s=10), 0.40
        )
        self.applied: list[float] = []

    async def request_setpoint(self, value_mpa: float, *, cmd_id: str, by: str) -> Any:
        result = self.remote.request(value_mpa, time.monotonic(), self.remote.target, cmd_id)
        if result.ok:
            self.applied.append(value_mpa)
            self.remote.reached.set()
        return result

    async def wait_result(self, cmd_id: str, timeout_s: float) -> str:
        return "reached"


class Rig:
    def __init__(self, store: Store, clock: WallClock) -> None:
        self.target = BoundedTarget()
        self.replies: list[dict[str, Any]] = []
        self.requests: list[Request | None] = []  # what each reply was given to answer

        async def reply(body: dict[str, Any], req: Request | None) -> None:
            self.replies.append(body)
            self.requests.append(req)

        self.handler = CommandHandler(
            clock, store.command_answer, store.remember_command, self.target, reply
        )

    async def send(
        self, msg: Any, retained: bool = False, properties: Any = None
    ) -> list[dict[str, Any]]:
        before = len(self.replies)
        payload = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        await self.handler.handle(payload, properties, retained)
        await asyncio.gather(*self.handler._tasks)
        return self.replies[before:]


def _cmd(cid: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "id": cid,
        "method": "setpoint.set",
        "params": {"value": value, "unit": "MPa"},
        **extra,
    }


async def _rig(tmp_path: Path) -> tuple[Rig, Store]:
    clock = WallClock()
    clock.synced_override = True
    store = await Store.open(tmp_path / "b.sqlite", 1 << 20)
    return Rig(store, clock), store


async def test_valid_change_is_acked_then_completed_and_applied(tmp_path: Path) -> None:
    rig, store = await _rig(tmp_path)
    try:
        out = await rig.send(_cmd("c-1", 0.45))
        assert [(r["phase"], r["status"], r["code"]) for r in out] == [
            ("ack", "accepted", "OK"),
            ("result", "completed", "OK"),
        ]
        assert all(r["id"] == "c-1" for r in out)
        assert rig.target.applied == [0.45]
    finally:
        await store.close()


async def test_a_result_that_cannot_be_sent_is_logged_at_error_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig, store = await _rig(tmp_path)
    sent = rig.handler.reply

    async def reply_once(body: dict[str, Any], req: Request | None) -> None:
        if body["phase"] == "result":
            raise ConnectionError("the broker went away")
        await sent(body, req)

    rig.handler.reply = reply_once  # type: ignore[method-assign]
    caplog.set_level("ERROR", logger="agent.commands")
    try:
        await rig.handler.handle(json.dumps(_cmd("c-9", 0.45)).encode(), None, False)
        await asyncio.wait(set(rig.handler._tasks), timeout=5)
        await asyncio.sleep(0)  # the done callbacks run
        failed = [r for r in caplog.records if r.levelname == "ERROR"]
        assert [r.getMessage() for r in failed] == [
            "task cmd c-9 failed: ConnectionError: the broker went away"
        ]
        assert failed[0].exc_info is not None  # with its traceback
    finally:
        await store.close()


async def test_each_bad_request_gets_its_code_and_nothing_is_applied(tmp_path: Path) -> None:
    rig, store = await _rig(tmp_path)
    now = int(time.time() * 1000)
    cases = [
        (_cmd("r-1", 0.9), "OUT_OF_RANGE"),
        (_cmd("r-2", 0.55), "OUT_OF_RANGE"),  # a step of 0.15 > max_step 0.1
        (_cmd("r-3", 0.45, expires_at=now - 1000), "EXPIRED"),
        (_cmd("r-4", "high"), "INVALID_ARGUMENT"),
        (_cmd("r-5", 0.45) | {"method": "reboot"}, "INVALID_ARGUMENT"),
        (_cmd("r-6", 0.45) | {"v": 2}, "INVALID_ARGUMENT"),
        (_cmd("r-7", 0.45) | {"params": {"value": 0.45, "unit": "bar"}}, "INVALID_ARGUMENT"),
        (b"{not json", "INVALID_ARGUMENT"),
        ({"v": 1, "method": "setpoint.set"}, "INVALID_ARGUMENT"),
    ]
    try:
        for msg, code in cases:
            out = await rig.send(msg)
            assert [(r["phase"], r["status"], r["code"]) for r in out] == [
                ("ack", "rejected", code)
            ], msg
        out = await rig.send(_cmd("r-8", 0.45), retained=True)
        assert out[0]["code"] == "INVALID_ARGUMENT" and "retained" in out[0]["detail"]["reason"]
        assert rig.target.applied == []
    finally:
        await store.close()


async def test_too_frequent_and_duplicate(tmp_path: Path) -> None:
    rig, store = await _rig(tmp_path)
    try:
        assert (await rig.send(_cmd("d-1", 0.45)))[0]["code"] == "OK"
        assert (await rig.send(_cmd("d-2", 0.40)))[0]["code"] == "RATE_LIMITED"
        dup = await rig.send(_cmd("d-1", 0.45))
        assert [r["code"] for r in dup] == ["DUPLICATE"]
        assert dup[0]["detail"]["previous"]["phase"] == "result", "the earlier answer is replayed"
        assert rig.target.applied == [0.45]
    finally:
        await store.close()


async def test_duplicates_are_remembered_across_a_restart(tmp_path: Path) -> None:
    rig, store = await _rig(tmp_path)
    await rig.send(_cmd("p-1", 0.45))
    await store.close()
    rig, store = await _rig(tmp_path)
    try:
        assert [r["code"] for r in await rig.send(_cmd("p-1", 0.45))] == ["DUPLICATE"]
        assert rig.target.applied == []
    finally:
        await store.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "v": json_values,
            "id": json_values,
            "method": st.sampled_from(["setpoint.set", "x"]) | json_values,
        },
        optional={
            "params": st.fixed_dictionaries(
                {}, optional={"value": json_values, "unit": json_values}
            )
            | json_values,
            "expires_at": json_values,
            "issuer": json_values,
        },
    ).map(lambda d: json.dumps(d).encode()),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=payloads)
def test_fuzzed_payloads_never_crash_and_always_get_one_known_code(
    tmp_path: Path, payload: bytes
) -> None:
    async def run() -> None:
        rig, store = await _rig(tmp_path)
        rig.handler.max_per_minute = 10**9
        try:
            out = await rig.send(payload)
            if not payload:  # not a request (it clears a retained message): no answer
                assert out == []
                return
            assert out, "every request is answered"
            assert all(r["code"] in CODES for r in out)
            assert out[0]["phase"] == "ack"
        finally:
            await store.close()

    asyncio.run(run())


async def test_the_same_id_twice_at_once_is_carried_out_once(tmp_path: Path) -> None:
    rig, store = await _rig(tmp_path)
    try:
        payload = json.dumps(_cmd("twin", 0.45)).encode()
        await asyncio.gather(rig.handler.handle(payload), rig.handler.handle(payload))
        await asyncio.gather(*rig.handler._tasks)
        codes = sorted(r["code"] for r in rig.replies if r["phase"] == "ack")
        assert codes == ["DUPLICATE", "OK"]
        assert rig.target.applied == [0.45]
    finally:
        await store.close()


async def test_a_retained_copy_of_an_answered_command_gets_the_first_answer(tmp_path: Path) -> None:
    rig, store = await _rig(tmp_path)
    try:
        first = await rig.send(_cmd("kept", 0.45))
        assert first[0]["code"] == "OK"
        again = await rig.send(_cmd("kept", 0.45), retained=True)  # the broker replays it
        assert [r["code"] for r in again] == ["DUPLICATE"]
        assert again[0]["detail"]["previous"]["phase"] == "result"
        fresh = await rig.send(_cmd("never-seen", 0.45), retained=True)
        assert fresh[0]["code"] == "INVALID_ARGUMENT", "a retained request is never carried out"
        assert rig.target.applied == [0.45]
    finally:
        await store.close()


UNREAD = [
    (b"garbage", "not JSON"),
    (b"{" + b" " * (16 * 1024) + b"}", "over 16384 bytes"),
    (b"[1, 2]", "not a JSON object"),
    (b'"setpoint.set"', "not a JSON object"),
    (b'{"v":1,"id":5,"method":"setpoint.set","params":{"value":0.45}}', "id:"),
    (b'{"v":1,"id":"","method":"setpoint.set","params":{"value":0.45}}', "id:"),
    (b'{"v":1,"method":"setpoint.set","params":{"value":0.45}}', "id:"),
]


@pytest.mark.parametrize(("payload", "reason"), UNREAD, ids=[r for _, r in UNREAD])
async def test_a_refusal_before_the_id_is_read_keeps_correlation_and_response_topic(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    """Failed before: these answers went out with no Correlation Data and to cmd/res."""
    rig, store = await _rig(tmp_path)
    props = SimpleNamespace(CorrelationData=b"corr-42", ResponseTopic="T/cmd/res/ops")
    try:
        out = await rig.send(payload, properties=props)
        assert [(r["id"], r["code"]) for r in out] == [(None, "INVALID_ARGUMENT")]
        assert reason in out[0]["detail"]["reason"]
        req = rig.requests[-1]
        assert req is not None and req.id is None
        assert (req.correlation, req.response_topic) == (b"corr-42", "T/cmd/res/ops")
    finally:
        await store.close()


async def test_an_empty_payload_is_not_a_request_and_gets_no_answer(tmp_path: Path) -> None:
    """Failed before: answered INVALID_ARGUMENT 'payload is not JSON'. An empty retained
    publish is how a platform clears a retained message on cmd/req."""
    rig, store = await _rig(tmp_path)
    try:
        assert await rig.send(b"") == []
        assert await rig.send(b"", retained=True) == []
        assert rig.handler.counters["received"] == 0
        assert (await rig.send(_cmd("next", 0.45)))[0]["code"] == "OK", "still taking requests"
    finally:
        await store.close()


UNKNOWN = [
    (_cmd("u-1", 0.45, extra=1), "unknown member 'extra'"),
    (_cmd("u-2", 0.45, priority="high", ttl=5), "unknown member 'priority', 'ttl'"),
    (_cmd("u-3", 0.45) | {"params": {"value": 0.45, "ramp": 0.1}}, "params: unknown member 'ramp'"),
    (_cmd("u-4", 0.45, issuer={"principal": "ops:x", "role": "admin"}), "issuer: unknown member"),
    (_cmd("u-5", 0.45, issuer={"reason": "no principal"}), "issuer.principal"),
    (_cmd("u-6", 0.45, issued_at="yesterday"), "issued_at: epoch ms"),
    (_cmd("u-7", 0.45, expires_at=None), "expires_at: epoch ms"),
    (_cmd("u-8", 0.45) | {"params": {"value": 0.45, "point": "a b"}}, "params.point"),
    (_cmd("u-9", 0.45) | {"v": True}, "v: expected 1"),
    (_cmd("u-10", 10**400), "params.value"),
]


@pytest.mark.parametrize(("msg", "reason"), UNKNOWN, ids=[m["id"] for m, _ in UNKNOWN])
async def test_what_the_closed_request_schema_forbids_is_refused_by_name(
    tmp_path: Path, msg: dict[str, Any], reason: str
) -> None:
    """Failed before for u-1..u-9 (accepted, OK) and u-10 (INTERNAL): the request schema is
    closed, and a gateway that ignored an unknown member could do other than was meant."""
    rig, store = await _rig(tmp_path)
    try:
        out = await rig.send(msg)
        assert [(r["phase"], r["code"]) for r in out] == [("ack", "INVALID_ARGUMENT")], out
        assert reason in out[0]["detail"]["reason"], out[0]["detail"]
        assert rig.target.applied == []
    finally:
        await store.close()


async def test_what_the_schema_allows_is_taken(tmp_path: Path) -> None:
    rig, store = await _rig(tmp_path)
    now = int(time.time() * 1000)
    full = _cmd("full", 0.45, issued_at=now, expires_at=float(now + 60_000),
                issuer={"principal": "ops:jdoe", "reason": "complaint"})  # fmt: skip
    full["params"]["point"] = "setpoint"
    try:
        assert [r["code"] for r in await rig.send(full)] == ["OK", "OK"]
    finally:
        await store.close()
