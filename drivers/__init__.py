"""Protocol drivers: Modbus TCP, Modbus RTU and OPC UA behind one interface (:mod:`drivers.base`).

Use :func:`create` to get the driver for a connection spec.

Field hardening (what real RS-485 buses, Modbus devices and OPC UA servers do) lives in
:mod:`drivers.modbus.rtu_port` (echo, fragments, CRC, noise, late replies, t3.5, unplug),
:mod:`drivers.modbus.tcp_port` (transaction ids, lenient gateways, one socket per device),
:mod:`drivers.modbus.health` (offline units on a shared bus, per-device counters, log once),
:mod:`drivers.modbus.client` (per-poll and per-request sockets), :mod:`drivers.modbus.reader`
and :mod:`drivers.modbus.learned` (exception splitting, learning and re-probing, gateway
exceptions) and
:mod:`drivers.opcua_session` (security, identity, keep-alive, subscriptions). Every fault has a
simulator counterpart in :mod:`hil_sim.modbus.faults` / :mod:`hil_sim.devices.opcua_server` and a
test in ``tests/faults_field``.
"""

from __future__ import annotations

from drivers.base import Driver, ReadPlan
from drivers.specs import ConnectionSpec, ModbusRtuConnection, ModbusTcpConnection, OpcUaConnection

__all__ = ["Driver", "ReadPlan", "create"]


def create(spec: ConnectionSpec) -> Driver:
    """Return a new, unconnected driver for ``spec``.

    Raises:
        TypeError: ``spec`` is not a known connection spec.
    """
    if isinstance(spec, ModbusTcpConnection | ModbusRtuConnection):
        from drivers.modbus.client import ModbusDriver

        return ModbusDriver(spec)
    if isinstance(spec, OpcUaConnection):
        from drivers.opcua import OpcUaDriver

        return OpcUaDriver(spec)
    raise TypeError(f"unknown connection spec: {spec!r}")
