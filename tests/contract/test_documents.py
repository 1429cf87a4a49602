"""The written contract itself: every JSON Schema is a valid 2020-12 schema whose examples hold,
the AsyncAPI document validates against the official AsyncAPI 3.0.0 JSON Schema, its references
resolve, its examples hold, and it names the topics ``agent.contract`` really uses."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator

from agent import contract, schemas

SPECS_VERSION = "6.11.1"
"""The npm package @asyncapi/specs that ships the official AsyncAPI JSON Schemas."""


def _asyncapi_spec() -> Path | None:
    """Where the official ``3.0.0.json`` is: ``$ASYNCAPI_SPECS_DIR`` or a global npm install."""
    roots = []
    if os.environ.get("ASYNCAPI_SPECS_DIR"):
        roots.append(Path(os.environ["ASYNCAPI_SPECS_DIR"]))
    npm = shutil.which("npm")
    if npm:
        try:
            out = subprocess.run(
                [npm, "root", "-g"], capture_output=True, text=True, timeout=20, check=False
            )
            roots.append(Path(out.stdout.strip()) / "@asyncapi" / "specs")
        except subprocess.TimeoutExpired:
            pass
    roots += [
        Path(p) / "@asyncapi" / "specs"
        for p in ("/usr/lib/node_modules", "/usr/local/lib/node_modules")
    ]
    for root in roots:
        path = root / "schemas" / "3.0.0.json"
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="module")
def asyncapi_validator() -> jsonschema.protocols.Validator:
    path = _asyncapi_spec()
    if path is None:
        why = (
            "the official AsyncAPI 3.0.0 JSON Schema is not installed: "
            f"npm install -g @asyncapi/specs@{SPECS_VERSION} (or set ASYNCAPI_SPECS_DIR)"
        )
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    spec = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(spec)
    cls.check_schema(spec)
    return cls(spec)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return schemas.load_asyncapi()


# ---- JSON Schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", schemas.schema_names())
def test_each_schema_is_a_valid_2020_12_schema(name: str) -> None:
    schema = schemas.load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", schemas.MESSAGE_TYPES)
def test_each_message_schema_has_examples_and_they_validate(name: str) -> None:
    examples = schemas.load_schema(name).get("examples")
    assert examples, f"{name}.schema.json has no examples"
    for example in examples:
        schemas.validate(name, example)


def test_the_schema_files_are_exactly_the_message_types() -> None:
    folder = Path(schemas.__file__).parent / "v1"
    on_disk = {p.name.removesuffix(".schema.json") for p in folder.glob("*.schema.json")}
    assert on_disk == set(schemas.schema_names())


# ---- AsyncAPI -----------------------------------------------------------------------------------


def test_asyncapi_document_validates_against_the_official_3_0_0_schema(
    doc: dict[str, Any], asyncapi_validator: jsonschema.protocols.Validator
) -> None:
    assert doc["asyncapi"] == "3.0.0"
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}" for e in asyncapi_validator.iter_errors(doc)
    ]
    assert not errors, errors[:5]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("operations", "sendTelemetry", "action"), "publish"),  # the AsyncAPI 2 verb
        (("info", "version"), None),
        (("channels", "status", "address"), 17),
        (("operations", "sendStatus", "bindings", "mqtt", "qos"), 3),
    ],
)
def test_the_official_schema_catches_a_broken_document(
    doc: dict[str, Any],
    asyncapi_validator: jsonschema.protocols.Validator,
    path: tuple[str, ...],
    value: Any,
) -> None:
    broken = copy.deepcopy(doc)
    node = broken
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    assert list(asyncapi_validator.iter_errors(broken)), f"{path} = {value!r} went unnoticed"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        name = Path(ref).name
        assert ref == f"./v1/{name}", ref
        return schemas.load_schema(name)
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_in_the_asyncapi_document_resolves(doc: dict[str, Any]) -> None:
    refs = _refs(doc)
    assert len(refs) > 40
    for ref in refs:
        _resolve(doc, ref)  # KeyError or a missing file fails the test


def _payload_type(message: dict[str, Any]) -> str:
    ref = message["payload"]["schema"]["$ref"]
    assert message["payload"]["schemaFormat"] == "application/schema+json;version=2020-12"
    return Path(ref).name.removesuffix(".schema.json")


def test_channels_match_the_topics_the_agent_uses(doc: dict[str, Any]) -> None:
    topics = contract.Topics.for_gateway("pumproom/v1", "{site}", "{gw}")
    used = {
        topics.status,
        topics.meta,
        topics.meta_part("{part}"),  # type: ignore[arg-type]
        topics.telemetry,
        topics.backfill,
        topics.event,
        topics.cmd_req,
        topics.cmd_res,
        topics.ingest,
    }
    documented = {c["address"] for c in doc["channels"].values()}
    assert documented == used
    for channel in doc["channels"].values():
        extra = {"part"} if channel["address"] == topics.meta_part("{part}") else set()  # type: ignore[arg-type]
        assert set(channel["parameters"]) == {"site", "gw"} | extra
        address = channel["address"].replace("{part}", "1")
        for message in channel["messages"].values():
            kind = schemas.message_type(address)
            assert _payload_type(_resolve(doc, message["$ref"])) in schemas.ENCODINGS.get(
                kind, (kind,)
            )


def test_operations_direction_qos_and_retain(doc: dict[str, Any]) -> None:
    down = {"commandRequest", "ingest"}
    retained = {"status", "meta", "metaPart", "ingest"}
    seen = set()
    for name, op in doc["operations"].items():
        channel = op["channel"]["$ref"].removeprefix("#/channels/")
        seen.add(channel)
        assert op["action"] == ("receive" if channel in down else "send"), name
        mqtt = op["bindings"]["mqtt"]
        assert mqtt["qos"] == 1, name
        assert mqtt.get("retain", False) == (channel in retained), name
        for m in op["messages"]:
            assert m["$ref"].startswith(f"#/channels/{channel}/messages/"), name
    assert seen == set(doc["channels"])
    reply = doc["operations"]["receiveCommand"]["reply"]
    assert reply["channel"]["$ref"] == "#/channels/commandResponse"


def test_every_asyncapi_message_example_validates_on_its_topic(doc: dict[str, Any]) -> None:
    count = 0
    for channel in doc["channels"].values():
        topic = channel["address"].format(site="demo-site", gw="gw-demo-01", part=1)
        for message in channel["messages"].values():
            for example in _resolve(doc, message["$ref"]).get("examples", []):
                schemas.validate(topic, example["payload"])
                count += 1
    assert count >= 10


def test_the_documented_result_codes_are_the_agents() -> None:
    from agent.commands import CODES

    common = schemas.load_schema("common")
    assert tuple(common["$defs"]["resultCode"]["enum"]) == CODES
    assert schemas.load_schema("common")["$defs"]["version"]["const"] == contract.SCHEMA_VERSION
