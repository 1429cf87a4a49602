"""From validated devices to what drivers consume: connections, point specs and the catalogue.

Pure functions, no I/O. Modbus addresses become 0-based PDU addresses here (drivers/specs.py).
Reference notation (e.g. 40001 = holding register at PDU address 0, 400001 the 6-digit form)
follows Modicon convention as used by device manuals: ABB 400001 → address 0, Danfoss register
50000 sent as 49999 (shared/reference/domain.md §4.0, from ABB 3AXD50000016097 and Danfoss
MG11BC22).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.config.schema import (
    ModbusPointConfig,
    ModbusRtuDevice,
    ModbusTcpDevice,
    OpcUaDevice,
    PointCommon,
)
from drivers.specs import (
    ConnectionSpec,
    DataType,
    ModbusLimits,
    ModbusPoint,
    ModbusRtuConnection,
    ModbusTcpConnection,
    OpcUaConnection,
    OpcUaPoint,
    Order,
    PointSpec,
    Table,
)

DeviceConfig = ModbusTcpDevice | ModbusRtuDevice | OpcUaDevice

TABLES = {
    "coil": Table.COIL,
    "discrete_input": Table.DISCRETE_INPUT,
    "holding": Table.HOLDING_REGISTER,
    "input": Table.INPUT_REGISTER,
}
"""Config ``register`` value → :class:`Table`."""

_PREFIX = {"0": "coil", "1": "discrete_input", "3": "input", "4": "holding"}
"""Leading digit of Modicon reference notation → register kind."""


def pdu_address(register: str, address: int, addressing: str) -> int:
    """The 0-based PDU address of ``address`` as written in the config.

    Args:
        register: ``coil``, ``discrete_input``, ``holding`` or ``input``.
        address: the number written in the config.
        addressing: ``pdu`` (already 0-based) or ``register-number`` (1-based register number,
            or Modicon reference notation: 0xxxx coils, 1xxxx discrete inputs, 3xxxx input and
            4xxxx holding registers, 5 digits (…9999) or 6 digits (…65536)).

    Raises:
        ValueError: out of range, or a reference prefix that disagrees with ``register``.
    """
    if addressing == "pdu":
        if address > 65535:
            raise ValueError(f"address {address} is beyond 65535, the last PDU address")
        return address
    if address == 0:
        raise ValueError(
            "register numbers start at 1 with addressing: register-number "
            "(write 1, or use addressing: pdu for 0-based addresses)"
        )
    if address <= 9999:
        return address - 1
    digits = str(address)
    if len(digits) in (5, 6) and digits[0] in _PREFIX:
        kind, number = _PREFIX[digits[0]], int(digits[1:])
        if kind != register:
            raise ValueError(
                f"reference {address} is in the {kind.replace('_', ' ')} table "
                f"({digits[0]}xxxx), but register is {register}; for a plain register number "
                "above 9999 use addressing: pdu"
            )
        if number == 0 or number > 65536:
            raise ValueError(f"reference {address} is out of range ({digits[0]}0001 and up)")
        return number - 1
    if address <= 65536:
        return address - 1
    raise ValueError(f"register number {address} is beyond 65536, the last register number")


def modbus_point(
    device: ModbusTcpDevice | ModbusRtuDevice, point: ModbusPointConfig
) -> ModbusPoint:
    """The driver spec of one validated Modbus point (raises ValueError like pdu_address)."""
    return ModbusPoint(
        name=point.name,
        device=device.name,
        unit_id=device.unit_id,
        table=TABLES[point.register],
        address=pdu_address(point.register, point.address, device.addressing),
        dtype=DataType(point.dtype),
        word_order=Order(point.word_order or "big"),
        byte_order=Order(point.byte_order),
        bit=point.bit,
        scale=point.scale,
        offset=point.offset,
        writable=point.writable,
        valid_min=point.valid_min,
        valid_max=point.valid_max,
        write_only=point.write_only,
    )


def point_specs(device: DeviceConfig) -> list[tuple[float, PointSpec]]:
    """``(poll interval s, spec)`` for each point of ``device``, in config order."""
    out: list[tuple[float, PointSpec]] = []
    if isinstance(device, OpcUaDevice):
        for p in device.points:
            spec: PointSpec = OpcUaPoint(
                name=p.name,
                device=device.name,
                node_id=p.node_id,
                namespace_uri=p.namespace_uri,
                scale=p.scale,
                offset=p.offset,
                writable=p.writable,
                valid_min=p.valid_min,
                valid_max=p.valid_max,
                mode=p.mode,
                write_only=p.write_only,
            )
            out.append((p.poll_interval_s or device.poll_interval_s, spec))
    else:
        for mp in device.points:
            out.append((mp.poll_interval_s or device.poll_interval_s, modbus_point(device, mp)))
    return out


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """One driver's worth of work.

    Attributes:
        spec: the connection (one TCP host:port, one serial port, or one OPC UA endpoint).
        groups: poll interval in seconds → the points polled at that interval, in config order;
            keys ascending.
    """

    spec: ConnectionSpec
    groups: dict[float, list[PointSpec]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PointInfo:
    """What the platform and the control loop need to know about a point.

    Attributes:
        name: site-unique point name.
        device: device name.
        unit: engineering unit (``MPa``, ``m³/h``, ``Hz``…) or ``None``.
        writable: whether the agent may write it.
        write_only: never polled, only written (the device cannot read it back).
        valid_min: lowest valid engineering value or ``None``.
        valid_max: highest valid engineering value or ``None``.
        description: free text or ``None``.
        deadband / deadband_pct / heartbeat_s: report-by-exception settings (see
            :mod:`agent.exception`), ``None`` when not set.
        source: where it is read, e.g. ``"modbus-tcp 127.0.0.1:15020 unit 1 holding 0"`` (PDU
            address; `` bit 3`` appended for register bits) or ``"opcua ns=2;s=Pump1.Speed"``.
    """

    name: str
    device: str
    unit: str | None
    writable: bool
    valid_min: float | None
    valid_max: float | None
    description: str | None
    source: str
    deadband: float | None = None
    deadband_pct: float | None = None
    heartbeat_s: float | None = None
    write_only: bool = False


def connections(
    devices: Sequence[DeviceConfig], *, application_uri: str = "urn:pumproom-edge"
) -> list[ConnectionPlan]:
    """Group devices into connections, in order of first appearance.

    ``application_uri`` is the OPC UA ApplicationUri of devices that do not set their own
    (:data:`agent.config.site.DEFAULT_APPLICATION_URI`).

    Modbus RTU devices on one serial port form ONE connection named ``rtu:<port>``; Modbus TCP
    devices on one host:port (a gateway with several unit ids) form one connection, named after
    the device when alone, else ``tcp:<host>:<port>``. Each OPC UA device is its own connection.
    A shared connection takes the longest ``timeout_s`` (and ``connect_timeout_s``) of its
    devices. Request limits are kept per unit id.
    """
    members: dict[tuple[str, ...], list[DeviceConfig]] = {}
    for d in devices:
        if isinstance(d, ModbusTcpDevice):
            key: tuple[str, ...] = ("tcp", d.host.lower(), str(d.port))
        elif isinstance(d, ModbusRtuDevice):
            key = ("rtu", d.port)
        else:
            key = ("opcua", d.name)
        members.setdefault(key, []).append(d)
    plans = []
    for group in members.values():
        groups: dict[float, list[PointSpec]] = {}
        for d in group:
            for interval, spec in point_specs(d):
                groups.setdefault(interval, []).append(spec)
        ordered = {k: groups[k] for k in sorted(groups)}
        plans.append(ConnectionPlan(spec=_spec(group, application_uri), groups=ordered))
    return plans


def _spec(group: list[DeviceConfig], application_uri: str) -> ConnectionSpec:
    first = group[0]
    timeout = max(d.timeout_s for d in group)
    if isinstance(first, OpcUaDevice):
        return OpcUaConnection(
            name=first.name,
            endpoint=first.endpoint,
            timeout_s=first.timeout_s,
            connect_timeout_s=first.connect_timeout_s,
            session_timeout_s=first.session_timeout_s,
            publish_interval_s=first.publish_interval_s,
            security_policy=first.security_policy,
            security_mode=first.security_mode,
            certificate=first.certificate,
            private_key=first.private_key,
            server_certificate=first.server_certificate,
            username=first.username,
            password=first.password,
            user_certificate=first.user_certificate,
            user_private_key=first.user_private_key,
            application_uri=first.application_uri or application_uri,
        )
    limits: dict[int, ModbusLimits] = {}
    for d in group:
        assert isinstance(d, ModbusTcpDevice | ModbusRtuDevice)
        limits.setdefault(d.unit_id, ModbusLimits(d.max_read_registers, d.max_read_bits, d.max_gap))
    if isinstance(first, ModbusRtuDevice):
        return ModbusRtuConnection(
            name=f"rtu:{first.port}",
            port=first.port,
            baudrate=first.baudrate,
            parity=first.parity,
            stopbits=first.stopbits,
            bytesize=first.bytesize,
            timeout_s=timeout,
            limits=tuple(limits.items()),
            local_echo=any(d.local_echo for d in group if isinstance(d, ModbusRtuDevice)),
            guard_s=max(d.guard_s for d in group if isinstance(d, ModbusRtuDevice)),
        )
    assert isinstance(first, ModbusTcpDevice)
    tcp = [d for d in group if isinstance(d, ModbusTcpDevice)]
    return ModbusTcpConnection(
        name=first.name if len(group) == 1 else f"tcp:{first.host}:{first.port}",
        host=first.host,
        port=first.port,
        timeout_s=timeout,
        connect_timeout_s=max(d.connect_timeout_s for d in tcp),
        limits=tuple(limits.items()),
        connection_mode=_tcp_mode(tcp),
        lenient_tid=any(d.lenient_tid for d in tcp),
    )


def _tcp_mode(tcp: list[ModbusTcpDevice]) -> str:
    """The connection mode of devices sharing one host:port: the most cautious one asked for
    (per-request, then per-poll, then persistent)."""
    modes = {d.connection_mode for d in tcp}
    for mode in ("per-request", "per-poll"):
        if mode in modes:
            return mode
    return "persistent"


def catalogue(devices: Sequence[DeviceConfig]) -> list[PointInfo]:
    """A :class:`PointInfo` per point, in config order."""
    out = []
    for d in devices:
        if isinstance(d, OpcUaDevice):
            for o in d.points:
                out.append(_info(o, d.name, f"opcua {o.node_id}"))
            continue
        where = f"{d.host}:{d.port}" if isinstance(d, ModbusTcpDevice) else d.port
        for p in d.points:
            address = pdu_address(p.register, p.address, d.addressing)
            source = f"{d.transport} {where} unit {d.unit_id} {p.register} {address}"
            if p.bit is not None:
                source += f" bit {p.bit}"
            out.append(_info(p, d.name, source))
    return out


def _info(p: PointCommon, device: str, source: str) -> PointInfo:
    return PointInfo(
        name=p.name,
        device=device,
        unit=p.unit,
        writable=p.writable,
        valid_min=p.valid_min,
        valid_max=p.valid_max,
        description=p.description,
        source=source,
        deadband=p.deadband,
        deadband_pct=p.deadband_pct,
        heartbeat_s=p.heartbeat_s,
        write_only=p.write_only,
    )
