"""A bench of raw values for round-trip tests: NOT a pump-room device.

Served only with ``hil-sim run --test-types``, beside (never inside) the realistic devices:

* Modbus TCP unit :data:`UNIT_ID` on the simulator's TCP server: holding and input registers
  0 … :data:`REGISTERS` − 1, coils and discrete inputs 0 … :data:`BITS` − 1, all read-only to
  the master and 0 at start. They hold exactly the raw words (or bits) set through the control
  port (``{"cmd": "raw", ...}``, :mod:`hil_sim.commands`) and nothing else: no plant, no
  encoding, so a test decides every bit a driver decodes (any data type, word and byte order,
  NaN payloads, the all-ones uint64 sentinel).
* OPC UA variables ``ns=2;s=Types.<name>`` (namespace :data:`~hil_sim.devices.opcua_server.
  NAMESPACE_URI`) of the types in :data:`UA_TYPES`, served by
  :class:`~hil_sim.devices.opcua_server.OpcUaFacade` when it is given ``test_types``; set
  through ``{"cmd": "raw_ua", "values": {"UInt64": 18446744073709551615, ...}}``.
"""

from __future__ import annotations

from asyncua import ua

from hil_sim.devices.registers import RegisterMap
from hil_sim.modbus.slave import BIT_TABLES, TABLES, RegisterBank

UNIT_ID = 99
"""Modbus unit id of the bench (the pump room uses 1–2 on TCP, 11–22 on RTU)."""
REGISTERS = 64
BITS = 16

UA_TYPES: dict[str, ua.VariantType] = {
    "Boolean": ua.VariantType.Boolean,
    "Int64": ua.VariantType.Int64,
    "UInt64": ua.VariantType.UInt64,
    "Float": ua.VariantType.Float,
    "Double": ua.VariantType.Double,
    "Gen": ua.VariantType.UInt32,
}
"""Bench variable name (node ``Types.<name>``) → its OPC UA built-in type (Part 6 §5.1.2).
``Gen`` is a free counter a test sets last, to know which values a read carries."""

UA_INITIAL: dict[str, bool | int | float] = {
    "Boolean": False, "Int64": 0, "UInt64": 0, "Float": 0.0, "Double": 0.0, "Gen": 0,
}  # fmt: skip


class TypesBench:
    """The Modbus side of the bench (see the module docstring); ``update`` serves nothing new:
    the values are only what :meth:`set_raw` put there."""

    name = "types"
    transport = "modbus-tcp"
    unit_id = UNIT_ID
    max_read_registers = 125

    def __init__(self) -> None:
        self.bank = RegisterBank(UNIT_ID)
        blocks = [(t, 0, (BITS if t in BIT_TABLES else REGISTERS) - 1) for t in sorted(TABLES)]
        self.map = RegisterMap(self.bank, [], blocks=blocks)

    def update(self) -> None:
        """Nothing to do: the bench's values change only by :meth:`set_raw`."""

    def set_raw(self, table: str, address: int, values: list[int] | list[bool]) -> None:
        """Serve ``values`` (16-bit words, or bools for bit tables) from ``address`` of ``table``.

        Raises:
            KeyError: an address outside the bench.
            ValueError: unknown table, or a value of the wrong kind (a word outside 0…65535).
        """
        self.bank.set(table, address, values)
