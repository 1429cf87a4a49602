"""Plain, frozen descriptions of connections and points that drivers consume.

The agent's config layer (``agent/config``) validates the YAML and builds these; drivers never see
the YAML or the config models. Units and conventions:

* Modbus addresses here are always 0-based PDU addresses (what goes on the wire). The config
  converts 1-based register numbers and 4xxxx/3xxxx reference notation before building these.
* ``scale`` and ``offset`` map the raw decoded number to engineering units:
  ``value = raw * scale + offset``.
* Word order ``big`` means the most significant 16-bit word comes first (ABCD); ``little`` means
  the least significant word first (CDAB, "float inverse" in many Chinese meter manuals, see
  shared/reference/domain.md §4.0). Byte order ``big`` is the Modbus standard (high byte first)
  within each register; ``little`` swaps the two bytes of each register (BADC / DCBA).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Table(enum.StrEnum):
    """The four Modbus data tables (Modbus Application Protocol V1.1b3 §4.3)."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING_REGISTER = "holding_register"
    INPUT_REGISTER = "input_register"

    @property
    def is_bit(self) -> bool:
        """True for coils and discrete inputs (one bit per address)."""
        return self in (Table.COIL, Table.DISCRETE_INPUT)


class DataType(enum.StrEnum):
    """Data types of Modbus points. ``bool`` is a coil/discrete input, or one bit of a register
    when :attr:`ModbusPoint.bit` is set."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def registers(self) -> int:
        """Number of 16-bit registers the type occupies (1 for bool)."""
        return _REGISTERS[self]


_REGISTERS = {
    DataType.BOOL: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT64: 4,
}


class Order(enum.StrEnum):
    """Word or byte order."""

    BIG = "big"
    LITTLE = "little"


@dataclass(frozen=True, slots=True)
class ModbusPoint:
    """One Modbus point.

    Attributes:
        name: unique point name within the site.
        device: name of the device it belongs to.
        unit_id: Modbus unit id (slave address), 0–247.
        table: which data table.
        address: 0-based PDU address of the first register or bit.
        dtype: data type.
        word_order: order of 16-bit words for 32/64-bit types.
        byte_order: order of the two bytes within each register.
        bit: for ``bool`` in a register: bit index 0 (LSB) … 15; ``None`` otherwise.
        scale: engineering value = raw × scale + offset.
        offset: see ``scale``.
        writable: whether the agent may write it.
        valid_min: lowest valid engineering value (else quality BAD_VALUE, reason ``range``).
        valid_max: highest valid engineering value.
        write_only: the device cannot read it back (a drive's command word or frequency
            reference on some drives): never polled (left out of every read plan), written
            only; implies ``writable``. A register bit cannot be write-only (its write is a
            read-modify-write).
    """

    name: str
    device: str
    unit_id: int
    table: Table
    address: int
    dtype: DataType
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    writable: bool = False
    valid_min: float | None = None
    valid_max: float | None = None
    write_only: bool = False

    @property
    def width(self) -> int:
        """Number of addresses (registers or bits) the point spans."""
        return 1 if self.table.is_bit else self.dtype.registers


@dataclass(frozen=True, slots=True)
class OpcUaPoint:
    """One OPC UA variable.

    Attributes:
        name: unique point name within the site.
        device: device name.
        node_id: node id string, e.g. ``"ns=2;s=Analyser.Turbidity"``.
        namespace_uri: when set, the namespace index in ``node_id`` is resolved from this URI at
            connect time (indices may change when a server restarts).
        scale: engineering value = raw × scale + offset.
        offset: see ``scale``.
        writable: whether the agent may write it.
        valid_min: lowest valid engineering value.
        valid_max: highest valid engineering value.
        mode: ``"poll"`` (read with the Read service on every poll) or ``"subscribe"``
            (monitored item of a data-change subscription; each poll reports the latest value
            the server published).
        write_only: never read (left out of every read plan), written only; implies
            ``writable`` (a variable whose AccessLevel has CurrentWrite but not CurrentRead).
    """

    name: str
    device: str
    node_id: str
    namespace_uri: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    writable: bool = False
    valid_min: float | None = None
    valid_max: float | None = None
    mode: str = "poll"
    write_only: bool = False


PointSpec = ModbusPoint | OpcUaPoint


@dataclass(frozen=True, slots=True)
class ModbusLimits:
    """Per-device request limits for read planning.

    Attributes:
        max_registers: most registers in one read (Modbus spec: 125 for FC 03/04; less where the
            device manual says, e.g. INVT Goodrive: 16 words per 03H, domain.md §4.0).
        max_bits: most coils/discrete inputs in one read (Modbus spec: 2000 for FC 01/02).
        max_gap: most unused addresses bridged to merge two reads into one.
    """

    max_registers: int = 125
    max_bits: int = 2000
    max_gap: int = 10


@dataclass(frozen=True, slots=True)
class ModbusTcpConnection:
    """A Modbus TCP connection to one host:port.

    Attributes:
        name: connection name (the device name).
        host: IP address or host name.
        port: TCP port (Modbus standard 502).
        timeout_s: per-request response timeout, seconds.
        connect_timeout_s: TCP connect timeout, seconds.
        limits: request limits per unit id, keyed by unit id.
        connection_mode: ``"persistent"`` keeps the socket open between polls; ``"per-poll"``
            opens it for each poll (or write) and closes it after, for devices that accept only
            one TCP client, so a technician's laptop can connect between polls;
            ``"per-request"`` opens one socket per request, for devices that answer only once
            per connection.
        lenient_tid: accept a response whose transaction id does not match (gateways that never
            echo it), if its unit id, function code and byte count answer the request.
    """

    name: str
    host: str
    port: int = 502
    timeout_s: float = 1.0
    connect_timeout_s: float = 3.0
    limits: tuple[tuple[int, ModbusLimits], ...] = ()
    connection_mode: str = "persistent"
    lenient_tid: bool = False


@dataclass(frozen=True, slots=True)
class ModbusRtuConnection:
    """One RS-485 serial port shared by one or more unit ids (one request at a time).

    Attributes:
        name: connection name (e.g. ``"rtu:/dev/ttyUSB0"``).
        port: serial device path.
        baudrate: bits per second.
        parity: ``"N"``, ``"E"`` or ``"O"``.
        stopbits: 1 or 2.
        bytesize: 7 or 8.
        timeout_s: per-request response timeout, seconds.
        limits: request limits per unit id, keyed by unit id.
        local_echo: the RS-485 adapter echoes every transmitted frame back (2-wire adapters
            without echo suppression); the master then verifies and discards the echo.
        guard_s: after a timeout or a bad frame, the master waits this long and flushes the
            line before the next request, so a late reply is never taken for the next answer.
    """

    name: str
    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    timeout_s: float = 1.0
    limits: tuple[tuple[int, ModbusLimits], ...] = ()
    local_echo: bool = False
    guard_s: float = 0.1


@dataclass(frozen=True, slots=True)
class OpcUaConnection:
    """An OPC UA client session to one endpoint.

    Attributes:
        name: connection name (the device name).
        endpoint: ``opc.tcp://host:port/path``.
        timeout_s: per-request timeout, seconds.
        connect_timeout_s: connect and session-activation timeout, seconds.
        session_timeout_s: session timeout requested; the server may revise it and the driver
            keeps the session alive well within the revised value.
        publish_interval_s: publishing interval of the data-change subscription, seconds.
        security_policy: ``"None"`` or ``"Basic256Sha256"`` (OPC UA Part 7 security policies).
        security_mode: ``"None"``, ``"Sign"`` or ``"SignAndEncrypt"`` (Part 4 §7.20).
        certificate, private_key: client application instance certificate and key (PEM/DER
            paths), required with a security policy other than None.
        server_certificate: the server's certificate (path), trusted for the secure channel.
        username, password: user name identity token; ``user_certificate`` and
            ``user_private_key``: X.509 identity token instead.
        application_uri: the client's ApplicationUri (OPC UA Part 4 §7.2, sent in
            CreateSession); servers check that the client certificate's SubjectAltName URI
            equals it (BadCertificateUriInvalid otherwise). The agent's config gives it a
            project default; ``None`` leaves asyncua's own.
    """

    name: str
    endpoint: str
    timeout_s: float = 2.0
    connect_timeout_s: float = 5.0
    session_timeout_s: float = 60.0
    publish_interval_s: float = 1.0
    security_policy: str = "None"
    security_mode: str = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    username: str | None = None
    password: str | None = None
    user_certificate: str | None = None
    user_private_key: str | None = None
    application_uri: str | None = None


ConnectionSpec = ModbusTcpConnection | ModbusRtuConnection | OpcUaConnection
