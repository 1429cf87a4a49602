"""Self-written Modbus slave stack for the HIL simulator: TCP and RTU (pty) servers that count
every request and inject the faults field devices produce.

Public API: :class:`RegisterBank`, :class:`Slave`, :class:`ModbusError` (``slave``);
:class:`Faults`, :class:`UnitFaults` (``faults``); :class:`RequestCounters` (``counters``);
:class:`ModbusTcpServer` (``tcp``); :class:`ModbusRtuServer` (``rtu``); pure PDU handling in
``pdu`` and RTU framing/CRC in ``rtu_framing``.

Usage (inside a running event loop)::

    bank = RegisterBank(1)
    bank.define("holding_register", 0, [0] * 10, writable=True)   # setpoints
    bank.define("input_register", 100, [0, 0])                    # PVs, updated by the plant
    bank.on_write = lambda table, address, values: ...            # plant sees master writes
    faults, counters = Faults(), RequestCounters()
    tcp = ModbusTcpServer("127.0.0.1", 0, {1: bank}, faults, counters)
    rtu = ModbusRtuServer("/tmp/ttyPUMP", {1: bank}, faults, counters, baudrate=19200)
    await tcp.start(); await rtu.start()          # tcp.port is the port picked
    bank.set("input_register", 100, [412, 0])     # plant step
    faults.unit(1).silent = True                  # device off the bus
    await rtu.stop(); await tcp.stop()

Linux ptys refuse parity (PARENB): a master opening the pty link must use parity "N"; the
server's ``parity`` only drives the wire-time pacing.
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
