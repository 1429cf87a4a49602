"""Protocol drivers: Modbus TCP, Modbus RTU and OPC UA behind one interface (:mod:`drivers.base`).

Use :func:`create` to get the driver for a connection spec.
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
