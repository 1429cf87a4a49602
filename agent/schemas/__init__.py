"""The uplink contract, written down: JSON Schemas (2020-12) per message type and the AsyncAPI 3
document that ties them to topics (``asyncapi.yaml`` beside this file).

Message types (``v1/<type>.schema.json``) and the topic each one travels on, below
``{prefix}/{site}/{gw}`` (``prefix`` defaults to ``pumproom/v1``)::

    status             status                 up, retained: birth, last will, clean shutdown
    meta               meta                   up, retained: point catalogue, command bounds
    meta               meta/{i}               up, retained: part i of a meta split to fit the
                                              broker's Maximum Packet Size
    telemetry          telemetry              up: live batches (hist false)
    telemetry          telemetry/backfill     up: buffered batches (hist true)
    telemetry-cbor     telemetry, …/backfill  the same batches in the compact CBOR encoding
                                              ``cbor-c1`` (``uplink.telemetry_format``)
    event              event                  up: alarm, audit, data_loss, info
    command-request    cmd/req                down, never retained
    command-response   cmd/res                up: ack, then result (or cmd/res/..., the request's
                                              MQTT 5 Response Topic)
    ingest             ingest                 down, retained: platform watermark

Use :func:`validate` in tests (and, if wanted, in a debug mode of the agent)::

    from agent import schemas
    schemas.validate("pumproom/v1/site-a/gw-1/telemetry/backfill", body)  # or "telemetry"

``jsonschema`` (with ``referencing``) is imported lazily, so importing this package costs the
agent nothing when validation is not used; it is a test dependency of the project.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

VERSION = 1
"""Schema version: the ``v`` field of every message and the ``v1`` of the topic prefix."""

MESSAGE_TYPES = (
    "status",
    "meta",
    "telemetry",
    "telemetry-cbor",
    "event",
    "command-request",
    "command-response",
    "ingest",
)
"""Every message type with a schema (``common`` holds shared definitions only).
``telemetry-cbor`` is the telemetry batch in the compact encoding ``cbor-c1``
(:mod:`agent.wire_cbor`), on the telemetry topics; :func:`iter_errors` picks it for a message
with ``enc``."""

ENCODINGS = {"telemetry": ("telemetry", "telemetry-cbor")}
"""Message type → the schemas its messages may have on the wire (the JSON one first)."""

DOWN_TYPES = frozenset({"command-request", "ingest"})
"""Message types the platform sends to the gateway; all others are sent by the gateway."""

TOPIC_SUFFIXES = {
    "status": "status",
    "meta": "meta",
    "telemetry": "telemetry",
    "telemetry/backfill": "telemetry",
    "event": "event",
    "cmd/req": "command-request",
    "cmd/res": "command-response",
    "ingest": "ingest",
}
"""Topic suffix below ``{prefix}/{site}/{gw}/`` → message type."""

_DIR = f"v{VERSION}"


def schema_names() -> list[str]:
    """Names of every schema file of this version (message types and ``common``)."""
    return [*MESSAGE_TYPES, "common"]


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one message type (or ``common``), as a fresh dict.

    Args:
        name: a message type (``"telemetry"``), optionally with ``.schema.json``.

    Raises:
        KeyError: no schema of that name.
    """
    name = name.removesuffix(".schema.json")
    if name not in schema_names():
        raise KeyError(f"no schema {name!r}; known: {', '.join(schema_names())}")
    path = resources.files(__package__).joinpath(_DIR, f"{name}.schema.json")
    return dict(json.loads(path.read_text(encoding="utf-8")))


def load_asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document (``asyncapi.yaml``) as a dict."""
    import yaml

    text = resources.files(__package__).joinpath("asyncapi.yaml").read_text(encoding="utf-8")
    return dict(yaml.safe_load(text))


def message_type(topic_or_type: str) -> str:
    """The message type of a topic (full topic or suffix) or a type name.

    ``".../telemetry/backfill"`` and ``".../telemetry"`` are both ``telemetry``; a topic below
    ``.../cmd/res/`` (a request's MQTT 5 Response Topic) is ``command-response``.

    Raises:
        KeyError: neither a known type nor a topic that ends in a known suffix.
    """
    if topic_or_type in MESSAGE_TYPES:
        return topic_or_type
    if "/cmd/res/" in topic_or_type:
        return "command-response"
    parts = topic_or_type.split("/")
    if len(parts) >= 2 and parts[-2] == "meta" and parts[-1].isdigit():
        return "meta"  # meta/{i}: part i of a split meta
    for n in (2, 1):  # "telemetry/backfill" and "cmd/req" before "telemetry"
        suffix = "/".join(parts[-n:])
        if len(parts) >= n and suffix in TOPIC_SUFFIXES:
            return TOPIC_SUFFIXES[suffix]
    raise KeyError(f"{topic_or_type!r} is neither a message type nor a contract topic")


@functools.cache
def _registry() -> Any:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    return Registry().with_resources(
        (f"{n}.schema.json", Resource.from_contents(load_schema(n), DRAFT202012))
        for n in schema_names()
    )


@functools.cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A (cached) Draft 2020-12 validator of one message type; sibling ``$ref`` s resolve
    to the packaged files."""
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def iter_errors(topic_or_type: str, message: Any) -> list[jsonschema.ValidationError]:
    """Every way ``message`` breaks the contract of ``topic_or_type`` (empty when it holds).

    Beyond the schema, a topic fixes ``hist``: ``true`` on ``telemetry/backfill``, ``false`` on
    live ``telemetry``. A telemetry message with ``enc`` (the CBOR map of a ``cbor-c1`` payload,
    :func:`agent.wire_decode.load`) is checked against ``telemetry-cbor``.
    """
    from jsonschema import ValidationError

    kind = message_type(topic_or_type)
    if kind == "telemetry" and isinstance(message, dict) and "enc" in message:
        kind = "telemetry-cbor"
    errors = list(validator(kind).iter_errors(message))
    if kind in ENCODINGS["telemetry"] and topic_or_type != kind and isinstance(message, dict):
        backfill = topic_or_type.endswith("telemetry/backfill")
        if "hist" in message and message["hist"] is not backfill:
            where = "telemetry/backfill" if backfill else "live telemetry"
            errors.append(
                ValidationError(
                    f"hist must be {str(backfill).lower()} on {where}",
                    path=["hist"],
                    instance=message["hist"],
                    validator="const",
                    validator_value=backfill,
                )
            )
    return errors


def validate(topic_or_type: str, message: Any) -> None:
    """Check one decoded message against the contract.

    Args:
        topic_or_type: the MQTT topic it travelled on (or its suffix), or a message type.
        message: the decoded JSON payload.

    Raises:
        jsonschema.ValidationError: the first (most relevant) violation.
        KeyError: unknown topic or type.
    """
    from jsonschema.exceptions import best_match

    error = best_match(iter_errors(topic_or_type, message))
    if error is not None:
        raise error
