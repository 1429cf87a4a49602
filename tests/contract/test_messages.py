"""What the agent's own code builds keeps the contract: the encoders of ``agent.contract``, the
data-loss event of the pipeline, the meta of the app and every answer of the command handler
(also under a fuzzed stream of requests). And the schemas can fail: broken messages are caught."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import catalogue, contract, schemas
from agent.commands import CommandHandler
from agent.config import load_config
from agent.config.control import Remote
from agent.control.remote import RemoteSetpoint
from agent.core.cache import Cache
from agent.core.model import Quality, Sample, clock
from agent.pipeline import Ingest
from agent.store import Evicted, Store
from tests.procs import EXAMPLE

IDENT = contract.Identity("demo-site", "gw-demo-01", 3)
TOPICS = contract.Topics.for_gateway("pumproom/v1", IDENT.site, IDENT.gateway)


def _decode(payload: bytes) -> dict[str, Any]:
    return dict(json.loads(payload))


def _sample(
    seq: int, value: Any, q: Quality = Quality.GOOD, reason: str | None = None, synced: bool = True
) -> Sample:
    return Sample(
        seq, "p_out" if seq % 2 else "vfd1.run", 1_732_870_815_000 + seq, value, q, reason, synced
    )


# ---- encoders ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "samples",
    [
        [_sample(1, 0.401), _sample(2, True), _sample(3, 7)],
        [
            _sample(5, None, Quality.COMM_FAIL, "timeout"),
            _sample(6, None, Quality.BAD_VALUE, "modbus:exception:2"),
        ],
        [_sample(7, None, Quality.STALE, "stale", synced=False), _sample(8, False, synced=False)],
        [_sample(9, 0.4, synced=False), _sample(10, 0.41)],
    ],
    ids=["good", "not-good", "all-unsynced", "some-unsynced"],
)
def test_telemetry_encoder_output_validates_live_and_backfill(samples: list[Sample]) -> None:
    units = {"p_out": "MPa", "vfd1.run": None}
    live = _decode(contract.telemetry(IDENT, samples, units, hist=False, sent_ms=clock.now_ms()))
    hist = _decode(contract.telemetry(IDENT, samples, units, hist=True, sent_ms=clock.now_ms()))
    schemas.validate(TOPICS.telemetry, live)
    schemas.validate(TOPICS.backfill, hist)
    with pytest.raises(jsonschema.ValidationError, match="hist"):
        schemas.validate(TOPICS.backfill, live)
    with pytest.raises(jsonschema.ValidationError, match="hist"):
        schemas.validate(TOPICS.telemetry, hist)


def test_the_quality_codes_are_the_models() -> None:
    enum = schemas.load_schema("common")["$defs"]["qualityCode"]["enum"]
    assert sorted(enum) == sorted(q.code for q in Quality if q is not Quality.GOOD)


def test_status_encoder_output_validates() -> None:
    now = clock.now_ms()
    birth = contract.status(
        IDENT, "online", ts_ms=now, sw="0.1.0", clock={"synced": clock.synced()}
    )
    schemas.validate(TOPICS.status, _decode(birth))
    for reason in ("lwt", "shutdown"):
        schemas.validate(
            TOPICS.status, _decode(contract.status(IDENT, "offline", ts_ms=now, reason=reason))
        )
    with pytest.raises(jsonschema.ValidationError):
        schemas.validate(TOPICS.status, _decode(contract.status(IDENT, "offline", ts_ms=now)))


def test_meta_of_the_example_config_validates() -> None:
    cfg = load_config(EXAMPLE)
    points = [catalogue.point_meta(p) for p in cfg.catalogue()]
    commands = catalogue.command_meta(SimpleNamespace(control=SimpleNamespace(remote=Remote())))  # type: ignore[arg-type]
    assert commands
    msg = _decode(contract.meta(IDENT, points, ts_ms=clock.now_ms(), sw="0.1.0", commands=commands))
    schemas.validate(TOPICS.meta, msg)
    assert len(msg["points"]) == cfg.point_count
    no_control = _decode(
        contract.meta(IDENT, points, ts_ms=1, commands=catalogue.command_meta(cfg))
    )
    schemas.validate(TOPICS.meta, no_control)


class _Wakeable:
    """The one uplink call the pipeline's data-loss path makes."""

    def wake(self) -> None:
        pass


async def test_the_pipelines_data_loss_event_validates(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "buffer.sqlite", 1 << 20)
    try:
        ingest = Ingest(store, Cache(), _Wakeable(), clock)  # type: ignore[arg-type]
        await ingest._data_loss(Evicted(101, 250, 150))
        items = await store.begin_events(10)
    finally:
        await store.close()
    assert items
    msg = _decode(contract.events(IDENT, [(e.seq, e.body) for e in items], sent_ms=clock.now_ms()))
    schemas.validate(TOPICS.event, msg)
    assert msg["events"][0]["type"] == "data_loss"


# ---- command responses ------------------------------------------------------------------------


class _Loop:
    """Carries out setpoint.set with the real bound checks of the control loop's
    :class:`RemoteSetpoint`; reached at once."""

    def __init__(self) -> None:
        self.remote = RemoteSetpoint(Remote(min_interval_s=30.0), 0.40)

    async def request_setpoint(self, value_mpa: float, *, cmd_id: str, by: str) -> Any:
        return self.remote.request(value_mpa, time.monotonic(), self.remote.target, cmd_id)

    async def wait_result(self, cmd_id: str, timeout_s: float) -> str:
        return "reached"


class _Answers:
    """A command handler over a real buffer; every reply encoded as the uplink encodes it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.bodies: list[dict[str, Any]] = []
        self.handler = CommandHandler(
            clock, store.command_answer, store.remember_command, _Loop(), self.reply
        )

    async def reply(self, body: dict[str, Any], req: Any) -> None:
        seq = await self.store.next_seq("cmd")
        self.bodies.append(_decode(contract.command_response(IDENT, seq, body)))


def _req(**fields: Any) -> bytes:
    msg: dict[str, Any] = {"v": 1, "id": "c-1", "method": "setpoint.set", "params": {"value": 0.45}}
    msg.update(fields)
    schemas.validate("command-request", msg)  # the platform side keeps the contract too
    return json.dumps(msg).encode()


async def test_every_command_answer_validates(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "buffer.sqlite", 1 << 20)
    answers = _Answers(store)
    handle = answers.handler.handle
    try:
        await handle(
            _req(id="ok-1", issuer={"principal": "ops:jdoe"}, params={"value": 0.45, "unit": "MPa"})
        )
        await handle(_req(id="ok-1"))  # duplicate
        await handle(_req(id="far", params={"value": 0.9}))  # out of range
        await handle(_req(id="step", params={"value": 0.2}))  # step too large from 0.45
        await handle(_req(id="soon", params={"value": 0.5}))  # rate limited
        await handle(_req(id="old", expires_at=clock.now_ms() - 60_000))
        await handle(b"not json")
        await handle(b'{"v":1,"method":"setpoint.set"}')
        await handle(json.dumps({"v": 1, "id": "x", "method": "reboot", "params": {}}).encode())
        await handle(_req(id="ret"), None, True)  # retained
        for _ in range(100):
            if any(b["phase"] == "result" for b in answers.bodies):
                break
            await asyncio.sleep(0.01)
    finally:
        await answers.handler.close()
        await store.close()
    codes = {b["code"] for b in answers.bodies}
    assert {"OK", "DUPLICATE", "OUT_OF_RANGE", "RATE_LIMITED", "INVALID_ARGUMENT"} <= codes
    assert any(b["phase"] == "result" for b in answers.bodies)
    for body in answers.bodies:
        schemas.validate(TOPICS.cmd_res, body)
    seqs = [b["seq"] for b in answers.bodies]
    assert seqs == list(range(1, len(seqs) + 1))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 2, "1", None]),
        "id": st.text(max_size=140) | st.integers(),
        "method": st.sampled_from(["setpoint.set", "reboot", ""]) | st.text(max_size=12),
        "expires_at": st.integers(min_value=-(2**40), max_value=2**45) | st.booleans(),
        "issuer": json_values,
        "params": st.fixed_dictionaries({}, optional={"value": json_values, "unit": json_values})
        | json_values,
    },
)
payloads = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    requests.map(lambda v: json.dumps(v).encode()),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(payloads, min_size=1, max_size=5))
def test_fuzzed_requests_get_answers_that_keep_the_contract(
    tmp_path: Path, batch: list[bytes]
) -> None:
    async def run() -> list[dict[str, Any]]:
        store = await Store.open(tmp_path / f"fuzz-{time.monotonic_ns()}.sqlite", 1 << 20)
        answers = _Answers(store)
        try:
            for payload in batch:
                await answers.handler.handle(payload)
        finally:
            await answers.handler.close()
            await store.close()
        return answers.bodies

    bodies = asyncio.run(run())
    assert len(bodies) >= sum(1 for p in batch if p)  # every request (not b"") is answered
    for body in bodies:
        schemas.validate(TOPICS.cmd_res, body)


# not 10**400 as params.value: a JSON number but no double; the agent refuses it INVALID_ARGUMENT
# (tests/agent/test_commands.py), the schema cannot say so
schema_edges = st.sampled_from([None, True, 1.0, -1, 2**53, "x", "", [], {}, 0.45])
_NOW = clock.now_ms()
valid_requests = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1.0]),
        "id": st.sampled_from(["o-1", "x" * 128]),
        "method": st.just("setpoint.set"),
        "params": st.fixed_dictionaries(
            {"value": st.floats(0.35, 0.45) | st.just(0)},
            optional={"unit": st.just("MPa"), "point": st.sampled_from(["setpoint", "p.o-1_x"])},
        ),
    },
    optional={
        "issued_at": st.sampled_from([0, _NOW, float(_NOW), 2**53 - 1]),
        "expires_at": st.sampled_from([_NOW + 600_000, float(_NOW + 600_000)]),
        "issuer": st.fixed_dictionaries(
            {"principal": st.just("ops:a")}, optional={"reason": st.text(max_size=5)}
        ),
    },
)
# each: (path, value); KeyError deletes; most break the schema, some keep it
mutations = st.tuples(
    st.sampled_from(
        [
            "v",
            "id",
            "method",
            "issued_at",
            "expires_at",
            "issuer",
            "issuer.principal",
            "issuer.reason",
            "issuer.role",
            "params",
            "params.value",
            "params.unit",
            "params.point",
            "params.ramp",
            "extra",
            "ttl",
        ]
    ),
    schema_edges
    | st.sampled_from([KeyError, 2, True, "bar", "a b", "reboot", "x" * 129, -5, 2**54, 1.5]),
)


def _mutated(msg: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    msg = copy.deepcopy(msg)
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = msg
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if value is KeyError:
            node.pop(last, None)
        else:  # a copy: the same drawn dict set at "params" and "params.value" is a cycle
            node[last] = copy.deepcopy(value)
    return msg


shaped = st.builds(_mutated, valid_requests, st.lists(mutations, max_size=2))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(msg=shaped)
def test_the_agent_refuses_a_request_invalid_argument_exactly_when_the_schema_does(
    tmp_path: Path, msg: dict[str, Any]
) -> None:
    """The command-request schema is what the gateway takes: a request that breaks it is refused
    INVALID_ARGUMENT, one that keeps it never is (it may still be out of range, limited…)."""
    from jsonschema import ValidationError

    try:
        schemas.validate("command-request", msg)
        keeps = True
    except ValidationError:
        keeps = False

    async def run() -> list[dict[str, Any]]:
        store = await Store.open(tmp_path / f"o-{time.monotonic_ns()}.sqlite", 1 << 20)
        answers = _Answers(store)
        try:
            await answers.handler.handle(json.dumps(msg).encode())
        finally:
            await answers.handler.close()
            await store.close()
        return answers.bodies

    acks = [b for b in asyncio.run(run()) if b["phase"] == "ack"]
    assert len(acks) == 1
    assert (acks[0]["code"] != "INVALID_ARGUMENT") == keeps, (acks[0], keeps)


def test_a_response_topic_is_used_only_below_cmd_res() -> None:
    """Failed before (the uplink took anything under the gateway's base): a request could make
    the gateway publish its answer on its own status or cmd/req topic."""
    base = TOPICS.base
    for own in (TOPICS.cmd_res, f"{base}/cmd/res/ops-7", f"{base}/cmd/res/a/b"):
        assert TOPICS.response_topic(own) == own
    for other in (
        None, "", f"{base}/status", f"{base}/cmd/req", f"{base}/meta", f"{base}/myreplies",
        f"{base}/cmd/resx", f"{base}/cmd/res/", f"{base}/cmd/res/#", f"{base}/cmd/res/+",
        "pumproom/v1/other-site/gw/cmd/res", "elsewhere",
    ):  # fmt: skip
        assert TOPICS.response_topic(other) == TOPICS.cmd_res, other


# ---- the schemas can fail ---------------------------------------------------------------------


def _example(name: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy(schemas.load_schema(name)["examples"][index])


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(msg: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = msg
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is KeyError:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


BROKEN = [
    ("status", "no session", _set("session", KeyError)),
    ("status", "state unknown", _set("state", "sleeping")),
    ("status", "online with a reason", _set("reason", "lwt")),
    ("status", "v 2", _set("v", 2)),
    ("status", "site with a slash", _set("site", "a/b")),
    ("meta", "point without unit key", _set("points.0.unit", KeyError)),
    ("meta", "writable as string", _set("points.0.writable", "yes")),
    ("meta", "range of three", _set("points.0.range", [0, 1, 2])),
    ("telemetry", "no series", _set("series", KeyError)),
    ("telemetry", "empty series", _set("series", {})),
    ("telemetry", "quality code g", _set("series.p_out.s.1.3", "g")),
    ("telemetry", "quality code x", _set("series.p_out.s.1.3", "x")),
    ("telemetry", "bad sample with a value", _set("series.p_out.s.1.2", 0.4)),
    ("telemetry", "good sample with null", _set("series.p_out.s.0.2", None)),
    ("telemetry", "seq zero", _set("series.p_out.s.0.0", 0)),
    ("telemetry", "time as string", _set("series.p_out.s.0.1", "2024-11-29T10:00:00Z")),
    ("telemetry", "four-element sample", _set("series.p_out.s.0", [1, 2, 3.0, "c"])),
    ("telemetry", "unknown top-level field", _set("extra", 1)),
    ("telemetry", "unknown series field", _set("series.p_out.q", "c")),
    ("telemetry", "synced true", _set("synced", True)),
    ("telemetry", "hist missing", _set("hist", KeyError)),
    ("event", "event type unknown", _set("events.0.type", "control.mode")),
    ("event", "alarm state unknown", _set("events.0.state", "shelved")),
    ("event", "audit without cmd_id", _set("events.1.cmd_id", KeyError)),
    ("event", "data_loss reason unknown", _set("events.2.reason", "storage_budget")),
    ("event", "data_loss without range", _set("events.2.seq_range", KeyError)),
    ("event", "no events", _set("events", [])),
    ("command-request", "no id", _set("id", KeyError)),
    ("command-request", "method unknown", _set("method", "reboot")),
    ("command-request", "value as string", _set("params.value", "0.45")),
    ("command-request", "unit bar", _set("params.unit", "bar")),
    ("command-request", "unknown field", _set("ttl", 5)),
    ("command-response", "code unknown", _set("code", "PRECONDITION_FAILED")),
    ("command-response", "accepted but not OK", _set("code", "TIMEOUT")),
    ("command-response", "ack completed", _set("status", "completed")),
    ("command-response", "no seq", _set("seq", KeyError)),
    ("command-response", "stream event", _set("stream", "event")),
    ("ingest", "no telemetry", _set("telemetry", KeyError)),
    ("ingest", "negative", _set("telemetry", -1)),
    ("ingest", "unknown field", _set("cmd", 3)),
]


@pytest.mark.parametrize(
    ("kind", "what", "breaks"), BROKEN, ids=[f"{k}: {w}" for k, w, _ in BROKEN]
)
def test_a_broken_message_fails_validation(
    kind: str, what: str, breaks: Callable[[dict[str, Any]], None]
) -> None:
    msg = _example(kind)
    schemas.validate(kind, msg)
    breaks(msg)
    with pytest.raises(jsonschema.ValidationError):
        schemas.validate(kind, msg)


def test_unknown_topics_and_types_are_refused() -> None:
    with pytest.raises(KeyError):
        schemas.validate("pumproom/v1/s/g/debug", {})
    with pytest.raises(KeyError):
        schemas.load_schema("debug")
    assert schemas.message_type("pumproom/v1/s/g/telemetry/backfill") == "telemetry"
    assert schemas.message_type("pumproom/v1/s/g/cmd/res") == "command-response"
    assert schemas.message_type("pumproom/v1/s/g/cmd/res/ops-7") == "command-response"
