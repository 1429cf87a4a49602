"""Self-written Modbus slave stack for the HIL simulator: TCP and RTU (pty) servers that count
every request and inject the faults field devices produce.

Public API: :class:`RegisterBank`, :class:`Slave`, :class:`ModbusError` (``slave``);
:class:`Faults`, :class:`UnitFaults` (``faults``); :class:`RequestCounters` (``counters``);
:class:`ModbusTcpServer` (``tcp``); :class:`ModbusRtuServer` (``rtu``); pure PDU handling in
``pdu`` and RTU framing/CRC in ``rtu_framing``.
"""

from hil_sim.modbus.counters import RequestCounters
from hil_sim.modbus.faults import Faults, UnitFaults
from hil_sim.modbus.rtu import ModbusRtuServer
from hil_sim.modbus.slave import ModbusError, RegisterBank, Slave
from hil_sim.modbus.tcp import ModbusTcpServer

__all__ = [
    "Faults",
    "ModbusError",
    "ModbusRtuServer",
    "ModbusTcpServer",
    "RegisterBank",
    "RequestCounters",
    "Slave",
    "UnitFaults",
]
