"""Where a technician's command talks to: a configured point or device, or an ad-hoc bus.

``read`` and ``write`` reach devices through the agent's own drivers (:mod:`drivers`), the same
code that polls them, so what they show is what the agent will see. A configured point or
device brings its connection (host, port, serial settings, unit id, request limits); an ad-hoc
target is ``--tcp HOST[:PORT]`` (Modbus TCP, port 502 by default: Modbus Messaging on TCP/IP
Implementation Guide V1.0b §4.1) or ``--port DEV --baud N --parity N|E|O`` (RTU, 8 data bits,
1 stop bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import SiteConfig
from agent.config.schema import ModbusRtuDevice, ModbusTcpDevice, PointCommon
from drivers.specs import (
    ConnectionSpec,
    ModbusLimits,
    ModbusRtuConnection,
    ModbusTcpConnection,
    PointSpec,
)

MODBUS_PORT = 502
"""Registered Modbus TCP port (Modbus Messaging on TCP/IP Implementation Guide V1.0b §4.1)."""


class TargetError(ValueError):
    """The command line does not name something that can be reached (exit 2)."""


@dataclass(frozen=True, slots=True)
class ConfiguredPoint:
    """A point of the site config with the connection that reaches it.

    Attributes:
        spec: the driver's point spec (0-based PDU address, scaling, word order…).
        config: the validated point (unit, bounds, enum, writable).
        connection: the connection spec of its device (one unit's limits included).
    """

    spec: PointSpec
    config: PointCommon
    connection: ConnectionSpec


def configured_points(config: SiteConfig, names: Sequence[str]) -> list[ConfiguredPoint]:
    """The named points, in the order given.

    Raises:
        TargetError: a name that is not a configured point (with the closest one).
    """
    from agent.config.messages import suggest

    by_name: dict[str, ConfiguredPoint] = {}
    cfg_points = {p.name: p for d in config.devices for p in d.points}
    for cp in config.connections():
        for group in cp.groups.values():
            for spec in group:
                by_name[spec.name] = ConfiguredPoint(spec, cfg_points[spec.name], cp.spec)
    out = []
    for name in names:
        if name not in by_name:
            raise TargetError(f"no point '{name}' in the configuration{suggest(name, by_name)}")
        out.append(by_name[name])
    return out


def device_points(config: SiteConfig, device: str) -> list[str]:
    """Names of ``device``'s points, in config order.

    Raises:
        TargetError: no such device.
    """
    for d in config.devices:
        if d.name == device:
            return [p.name for p in d.points]
    names = ", ".join(d.name for d in config.devices)
    raise TargetError(f"no device '{device}' in the configuration (devices: {names})")


def device_connection(config: SiteConfig, device: str) -> tuple[ConnectionSpec, int]:
    """The connection spec and unit id of configured Modbus ``device``.

    Raises:
        TargetError: no such device, or not a Modbus device.
    """
    device_points(config, device)
    dev = next(d for d in config.devices if d.name == device)
    if not isinstance(dev, ModbusTcpDevice | ModbusRtuDevice):
        raise TargetError(f"device '{device}' is OPC UA: raw register reads are Modbus only")
    for cp in config.connections():
        if any(s.device == device for group in cp.groups.values() for s in group):
            return cp.spec, dev.unit_id
    raise TargetError(f"device '{device}' has no connection")  # pragma: no cover


def adhoc_connection(
    tcp: str | None,
    port: str | None,
    baud: int,
    parity: str,
    unit: int,
    timeout_s: float,
) -> ConnectionSpec:
    """The connection for ``--tcp HOST[:PORT]`` or ``--port DEV`` (exactly one), with limits
    that let one request read up to 125 registers / 2000 bits at ``unit`` (Modbus Application
    Protocol V1.1b3 §6.1–6.4).

    Raises:
        TargetError: neither or both given, a bad port number or parity.
    """
    limits = ((unit, ModbusLimits(125, 2000, 0)),)
    if bool(tcp) == bool(port):
        raise TargetError("give exactly one of -c/--device, --tcp HOST[:PORT] or --port DEV")
    if tcp:
        host, sep, number = tcp.rpartition(":")
        if not sep or "]" in number:
            host, number = tcp, str(MODBUS_PORT)
        try:
            tcp_port = int(number)
        except ValueError:
            raise TargetError(f"--tcp: bad port in {tcp!r}") from None
        return ModbusTcpConnection(
            name=f"tcp:{host}:{tcp_port}",
            host=host.strip("[]") or "127.0.0.1",
            port=tcp_port,
            timeout_s=timeout_s,
            limits=limits,
        )
    assert port is not None
    if parity.upper() not in ("N", "E", "O"):
        raise TargetError(f"--parity: N, E or O, got {parity!r}")
    return ModbusRtuConnection(
        name=f"rtu:{port}",
        port=port,
        baudrate=baud,
        parity=parity.upper(),
        timeout_s=timeout_s,
        limits=limits,
    )


def parse_int(text: str) -> int:
    """``"12288"``, ``"0x3000"``, ``"3000H"`` (as INVT manuals print it) → int.

    Raises:
        TargetError: not a number.
    """
    t = text.strip()
    try:
        if t.lower().endswith("h") and t[:-1]:
            return int(t[:-1], 16)
        return int(t, 0)
    except ValueError:
        raise TargetError(f"not an address or count: {text!r}") from None
