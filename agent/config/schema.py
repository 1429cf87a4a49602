"""The pump-room configuration schema (pydantic v2, strict: no silent coercion).

Strict means a quoted ``"1.0"`` is not a number and ``yes`` is not a boolean; an integer IS
accepted where a float is expected. Every mapping rejects unknown keys. Units are in the field
names (``_s`` seconds) or docstrings. Cross-item rules (duplicate names, overlapping registers,
shared serial ports) live in :mod:`agent.config.checks`, after each item passed this schema.
"""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NODE_ID_PATTERN = (
    r"^ns=[0-9]+;(i=[0-9]+|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12}|b=[A-Za-z0-9+/]+={0,2})$"
)
ENDPOINT_PATTERN = r"^opc\.tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]{1,5})?(/.*)?$"
BROKER_PATTERN = r"^mqtts?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]{1,5})?/?$"
HOST_PATTERN = r"^(\[?[0-9A-Fa-f:.]+\]?|[A-Za-z0-9_.-]+)$"
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$"
PORT_RANGE = (1, 65535)
"""TCP ports a host:port may name (RFC 793 16-bit port; 0 is "any free port", not a port to
connect to or to publish a page on)."""

PATTERN_TEXT = {
    NAME_PATTERN: "letters, digits, '_', '.' or '-'",
    ID_PATTERN: "1–64 letters, digits, '_' or '-'",
    NODE_ID_PATTERN: "a node id ns=<index>;i=<number> | s=<string> | g=<guid> | b=<base64>",
    ENDPOINT_PATTERN: "an endpoint opc.tcp://host[:port][/path]",
    BROKER_PATTERN: "a broker URL mqtt://host[:port] or mqtts://host[:port]",
    HOST_PATTERN: "a host name or IP address (no scheme, no port)",
    URI_PATTERN: "a URI such as urn:pumproom-edge:site-1 (scheme ':' then no spaces)",
}
"""Human wording of each pattern, used in error messages."""

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Id = Annotated[str, Field(pattern=ID_PATTERN)]
Seconds = Annotated[float, Field(gt=0)]
TopicPrefix = Annotated[str, Field(min_length=1)]
"""Checked by :func:`check_topic_prefix` (``Uplink.topic_prefix``)."""


def check_port(port: int, what: str) -> None:
    """Raise ValueError naming ``what`` unless ``port`` is in :data:`PORT_RANGE`."""
    lo, hi = PORT_RANGE
    if not lo <= port <= hi:
        raise ValueError(f"{what} must be {lo}..{hi}, got {port}")


def check_topic_prefix(v: str) -> str:
    """An MQTT topic prefix the agent can put ``/{site}/…`` after: topic levels separated by
    single ``/``, no empty level (leading, trailing or doubled ``/``), no wildcard ``+``/``#``
    (MQTT 5.0 §4.7.1: not allowed in a topic name a client publishes to), not starting with
    ``$`` (§4.7.2: reserved for the broker, e.g. ``$SYS``).

    Raises:
        ValueError: what is wrong, with the prefix the user probably meant.
    """
    if any(c in v for c in "+#"):
        return _bad_topic(v, "the MQTT wildcards '+' and '#' cannot be published to")
    if any(c.isspace() for c in v):
        return _bad_topic(v, "a topic prefix has no spaces")
    if v.startswith("$"):
        return _bad_topic(v, "topics starting with '$' are reserved for the broker ($SYS)")
    if "" in v.split("/"):
        where = "'//'"
        if v.startswith("/") or v.endswith("/"):
            where = "a leading '/'" if v.startswith("/") else "a trailing '/'"
        return _bad_topic(v, f"{where} makes an empty topic level (the agent adds '/' itself)")
    return v


def check_visible_text(v: str) -> str:
    """Refuse characters a broker rejects or a person cannot see in a topic or client id.

    MQTT 5.0 §1.5.4 (UTF-8 strings): U+0000 MUST NOT appear; control characters U+0001–U+001F
    and U+007F–U+009F and Unicode non-characters (U+FDD0–U+FDEF, U+xxFFFE/U+xxFFFF) SHOULD NOT
    (a broker may close the connection, §1.5.4). Format characters (Unicode category Cf: zero-width
    space U+200B, zero-width joiner, bidi marks, BOM …) are invisible in a config file and make
    a topic that differs from the one the platform subscribes to.

    Raises:
        ValueError: names the first such character and where it is.
    """
    for i, c in enumerate(v):
        cp = ord(c)
        why = None
        if cp == 0:
            why = "NUL (U+0000) is not allowed in an MQTT string"
        elif cp < 0x20 or 0x7F <= cp <= 0x9F:
            why = f"control character U+{cp:04X} is not allowed"
        elif 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE:
            why = f"Unicode non-character U+{cp:04X} is not allowed"
        elif cp == 0x200B or unicodedata.category(c) == "Cf":
            name = unicodedata.name(c, "format character")
            why = f"invisible character U+{cp:04X} ({name.lower()}) is not allowed"
        if why is not None:
            raise ValueError(f"{why} (at character {i + 1} of {v!r})")
    return v


def _bad_topic(v: str, why: str) -> str:
    kept = "".join(c for c in v if c not in "+#" and not c.isspace())
    fixed = "/".join(level for level in kept.split("/") if level)
    hint = f" (write '{fixed.lstrip('$')}')" if fixed.lstrip("$") else ""
    raise ValueError(f"{why}, got '{v}'{hint}")


class Strict(BaseModel):
    """Base of every config mapping: strict types, unknown keys rejected, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Site(Strict):
    """``site:``: who this gateway is. ``id`` appears in MQTT topics, hence the pattern."""

    id: Id
    gateway_id: Id | None = None
    name: str | None = None


class PointCommon(Strict):
    """Keys every point has, whatever the protocol."""

    name: Name
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    poll_interval_s: Seconds | None = None
    writable: bool = False
    valid_min: float | None = None
    valid_max: float | None = None
    description: str | None = None
    deadband: Annotated[float, Field(ge=0)] | None = None
    """Report by exception: a good value within this absolute band of the last reported one is
    not buffered or sent (engineering units)."""
    deadband_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    """As ``deadband``, relative: percent of the last reported value's magnitude."""
    heartbeat_s: Seconds | None = None
    """With a deadband: a value is reported at least this often even when unchanged."""
    trend: bool = False
    """Draw it in the status page's trend charts (pressure MPa, flow m³/h, frequency Hz)."""
    enum: dict[Annotated[int, Field(strict=False)], str] | None = None
    """Words for coded values (``{1: forward running, 3: stopped, 4: fault}``), shown by the
    status page and the CLI instead of the bare number; the value itself is sent unchanged."""
    write_only: bool = False
    """The device cannot read the point back (a drive's command word or frequency reference on
    some drives): it is never polled and only written. Implies ``writable``; whether a write
    took effect shows in the device's status/feedback points (README, "Write-only points")."""

    @model_validator(mode="before")
    @classmethod
    def _write_only_is_writable(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("write_only") is True and "writable" not in data:
            return {**data, "writable": True}
        return data

    @model_validator(mode="after")
    def _write_only_not_read_only(self) -> PointCommon:
        if self.write_only and not self.writable:
            raise ValueError("write_only: true is a point the agent writes; remove writable: false")
        return self

    @field_validator("scale")
    @classmethod
    def _scale_not_zero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("scale must not be 0 (engineering value = raw × scale + offset)")
        return v


RegisterKind = Literal["coil", "discrete_input", "holding", "input"]
TypeName = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
]
OrderName = Literal["big", "little"]


with warnings.catch_warnings():
    # "register" is the field's term; it only shadows ABCMeta.register on the class object.
    warnings.filterwarnings("ignore", message='Field name "register"')

    class ModbusPointConfig(PointCommon):
        """One Modbus point. ``address`` is as written (see the device's ``addressing``);
        ``word_order`` is ``None`` when not given (it then means big, ABCD). ``type`` may be
        left out for coils and discrete inputs (always bool); registers need it (checked in
        :mod:`agent.config.checks`)."""

        register: RegisterKind
        address: Annotated[int, Field(ge=0)]
        type: TypeName | None = None
        word_order: OrderName | None = None
        byte_order: OrderName = "big"
        bit: Annotated[int, Field(ge=0, le=15)] | None = None

        @property
        def dtype(self) -> str:
            """The data type name: ``type``, or ``bool`` when left out."""
            return self.type or "bool"


class OpcUaPointConfig(PointCommon):
    """One OPC UA variable, by node id (``ns=2;s=Analyser.Turbidity``)."""

    node_id: Annotated[str, Field(pattern=NODE_ID_PATTERN)]
    namespace_uri: str | None = None
    # poll: Read service each poll; subscribe: monitored item, each poll reports the latest value
    mode: Literal["poll", "subscribe"] = "poll"


BROADCAST_MESSAGE = (
    "0 is the Modbus broadcast address: no device answers a broadcast read (Modbus over "
    "Serial Line V1.02 §2.2); a polled device needs its own unit id 1..247"
)
"""Why a polled RTU device (or a unit behind a TCP gateway) cannot have unit id 0."""


class _DeviceCommon(Strict):
    name: Name
    description: str | None = None
    profile: str | None = None
    """The device profile its points came from (``config/profiles/<name>.yaml``), if any;
    expanded by :mod:`agent.config.profiles` before validation."""
    timeout_s: Seconds = 1.0
    poll_interval_s: Seconds = 1.0


class _ModbusDevice(_DeviceCommon):
    """Limits: Modbus Application Protocol V1.1b3 §6.1–6.4 (2000 bits for FC 01/02, 125
    registers for FC 03/04); unit ids 1–247 plus broadcast 0 (Modbus over Serial Line V1.02
    §2.2). A polled device never has 0: refused for RTU devices here, and for a TCP device
    that shares its host:port with other units (a serial gateway) in
    :mod:`agent.config.checks`; a lone TCP device may use 0 (the MBAP unit id identifies a
    device behind a gateway, Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3; a
    device on its own endpoint is addressed by its IP address)."""

    unit_id: Annotated[int, Field(ge=0, le=247)]
    max_read_registers: Annotated[int, Field(ge=1, le=125)] = 125
    max_read_bits: Annotated[int, Field(ge=1, le=2000)] = 2000
    max_gap: Annotated[int, Field(ge=0, le=125)] = 10
    addressing: Literal["pdu", "register-number"] = "pdu"
    points: Annotated[list[ModbusPointConfig], Field(min_length=1)]


class ModbusTcpDevice(_ModbusDevice):
    """``transport: modbus-tcp``. Port 502 is the registered Modbus TCP port (Modbus Messaging
    on TCP/IP Implementation Guide V1.0b §4.1)."""

    transport: Literal["modbus-tcp"]
    host: Annotated[str, Field(pattern=HOST_PATTERN)]
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    connect_timeout_s: Seconds = 3.0
    # per-poll: hold the socket only for each poll, for devices that accept one TCP client;
    # per-request: one connection per request, for devices that answer once per connection
    connection_mode: Literal["persistent", "per-poll", "per-request"] = "persistent"
    # accept replies with any transaction id (gateways that never echo it), checked by unit id,
    # function code and byte count
    lenient_tid: bool = False


class ModbusRtuDevice(_ModbusDevice):
    """``transport: modbus-rtu``: one unit on an RS-485 bus. Devices sharing ``port`` share the
    bus and must agree on baudrate, parity, stopbits and bytesize."""

    transport: Literal["modbus-rtu"]
    port: Annotated[str, Field(min_length=1)]
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    # the RS-485 adapter echoes what it sends (port-wide: true if any device on the port says so)
    local_echo: bool = False
    # wait after a timeout before flushing the line, so a late reply is never taken (port-wide:
    # the longest of the port's devices)
    guard_s: Seconds = 0.1

    @field_validator("unit_id")
    @classmethod
    def _not_broadcast(cls, v: int) -> int:
        if v == 0:
            raise ValueError(BROADCAST_MESSAGE)
        return v


class OpcUaDevice(_DeviceCommon):
    """``transport: opcua``: one OPC UA server endpoint."""

    transport: Literal["opcua"]
    endpoint: Annotated[str, Field(pattern=ENDPOINT_PATTERN)]
    connect_timeout_s: Seconds = 5.0
    session_timeout_s: Seconds = 60.0
    publish_interval_s: Seconds = 1.0
    # OPC UA Part 7 security policy and Part 4 §7.20 message security mode
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    # the client's ApplicationUri; must equal the certificate's SubjectAltName URI (default:
    # DEFAULT_APPLICATION_URI, see agent/config/site.py)
    application_uri: Annotated[str, Field(pattern=URI_PATTERN)] | None = None
    # identity: anonymous, user name + password, or an X.509 user certificate + key
    username: str | None = None
    password: str | None = None
    user_certificate: str | None = None
    user_private_key: str | None = None
    points: Annotated[list[OpcUaPointConfig], Field(min_length=1)]

    @field_validator("endpoint")
    @classmethod
    def _endpoint_port(cls, v: str) -> str:
        m = re.fullmatch(ENDPOINT_PATTERN, v)
        if m is not None and m.group(2):
            check_port(int(m.group(2)[1:]), "endpoint port")
        return v

    @model_validator(mode="after")
    def _security_consistent(self) -> OpcUaDevice:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError("security_policy and security_mode must both be None or both set")
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError("a security policy needs certificate and private_key")
        if self.username is not None and self.user_certificate is not None:
            raise ValueError("give either username/password or user_certificate, not both")
        if (self.user_certificate is None) != (self.user_private_key is None):
            raise ValueError("user_certificate and user_private_key go together")
        return self


Device = Annotated[
    ModbusTcpDevice | ModbusRtuDevice | OpcUaDevice, Field(discriminator="transport")
]


class Tls(Strict):
    """``uplink.tls``: PEM file paths."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


class Credentials(Strict):
    """``uplink.credentials``: where to find the broker user name and password at start-up
    (an environment variable or a file, e.g. a systemd credential), never the secret itself."""

    username_env: str | None = None
    username_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None


class Uplink(Strict):
    """``uplink:``: the MQTT session to the central platform. ``keepalive_s`` bounds follow
    common broker limits (MQTT 5.0 §3.1.2.10 allows 0–65535 s)."""

    broker: Annotated[str, Field(pattern=BROKER_PATTERN)]
    topic_prefix: TopicPrefix = "pumproom/v1"
    client_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=1200)] = 30
    protocol: Literal["5", "3.1.1"] = "5"
    tls: Tls | None = None
    credentials: Credentials | None = None
    batch_max_samples: Annotated[int, Field(ge=1, le=10000)] = 500
    batch_interval_s: Seconds = 0.05
    backlog_rate_per_s: Annotated[float, Field(gt=0)] = 100_000
    inflight_window: Annotated[int, Field(ge=1, le=100)] = 10
    compression: Literal["none", "zlib"] = "none"
    """Telemetry payload compression (RFC 1950 zlib); announced per message by the MQTT 5
    content type ``application/json+zlib`` (``application/cbor+zlib``) and in ``meta``."""
    telemetry_format: Literal["json", "cbor-c1"] = "json"
    """Telemetry encoding on the wire: ``json`` (v1 JSON, the default) or ``cbor-c1``, the
    compact CBOR encoding of :mod:`agent.wire_cbor` (about 7 bytes a value instead of 70),
    announced in ``meta`` (``encoding.telemetry_format``); only for a platform that decodes it."""
    reconnect_spread_s: Annotated[float, Field(ge=0, le=600)] = 1.2
    """Full-jitter window of a reconnect once the broker answers again, s (agent.reconnect):
    a fleet of N gateways reconnects at about N / this per second after a broker restart."""

    @field_validator("broker")
    @classmethod
    def _broker_port(cls, v: str) -> str:
        check_port(_split_broker(v)[1], "broker port")
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, v: str) -> str:
        return check_topic_prefix(check_visible_text(v))

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, v: str | None) -> str | None:
        return v if v is None else check_visible_text(v)

    @property
    def broker_tls(self) -> bool:
        """True for ``mqtts://``."""
        return self.broker.startswith("mqtts://")

    @property
    def broker_host(self) -> str:
        """Host part of ``broker`` (IPv6 brackets removed)."""
        return _split_broker(self.broker)[0]

    @property
    def broker_port(self) -> int:
        """Port of ``broker``; default 1883, or 8883 for ``mqtts://`` (IANA registrations)."""
        return _split_broker(self.broker)[1]


def _split_broker(url: str) -> tuple[str, int]:
    m = re.fullmatch(BROKER_PATTERN, url)
    assert m is not None
    host = m.group(1).strip("[]")
    port = int(m.group(2)[1:]) if m.group(2) else (8883 if url.startswith("mqtts") else 1883)
    return host, port


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
"""Hosts the status page may listen on without an access token (plus all of 127.0.0.0/8)."""


class StatusPage(Strict):
    """``status:``: the local status page for technicians (``GET /``, ``/events`` and
    ``/status.json``; read-only)."""

    listen: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]+:[0-9]{1,5}$")] = "127.0.0.1:8080"
    """``host:port`` to listen on; loopback by default (reach it through SSH or a local screen).
    The port must be 1..65535 (:data:`PORT_RANGE`). Any other address needs a token."""
    enabled: bool = True
    token_env: str | None = None
    """Environment variable holding the page's access token (never the token in the YAML)."""
    token_file: str | None = None
    """File holding the access token (relative: systemd's ``$CREDENTIALS_DIRECTORY``)."""

    @field_validator("listen")
    @classmethod
    def _listen_port(cls, v: str) -> str:
        check_port(int(v.rsplit(":", 1)[1]), "port in host:port")
        return v

    @model_validator(mode="after")
    def _token_off_loopback(self) -> StatusPage:
        host = self.host
        loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
        if self.enabled and not loopback and not (self.token_env or self.token_file):
            raise ValueError(
                f"listen {self.listen} opens the status page to the network: set token_file or "
                "token_env (an access token), or listen on 127.0.0.1 and use an SSH tunnel"
            )
        return self

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def token(self) -> str | None:
        """The access token from ``token_env`` or ``token_file``, or ``None`` (no token).

        Raises:
            OSError: the file cannot be read, or the variable is not set (ENOENT).
        """
        if self.token_env:
            value = os.environ.get(self.token_env)
            if not value:
                raise FileNotFoundError(f"status.token_env: {self.token_env} is not set")
            return value.strip()
        if self.token_file:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            path = self.token_file
            if directory and not os.path.isabs(path):
                path = os.path.join(directory, path)
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        return None


class Buffer(Strict):
    """``buffer:``: the SQLite store-and-forward file. ``synchronous`` is SQLite's PRAGMA
    synchronous (https://sqlite.org/pragma.html#pragma_synchronous)."""

    path: Annotated[str, Field(min_length=1)]
    max_bytes: Annotated[int, Field(ge=1 << 20)] = 268435456
    synchronous: Literal["full", "normal"] = "full"
