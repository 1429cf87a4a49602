"""Modbus slave data model: the :class:`Slave` protocol and a ready :class:`RegisterBank`.

A *slave* is one unit id on a Modbus network. The protocol servers (:mod:`hil_sim.modbus.tcp`,
:mod:`hil_sim.modbus.rtu`) decode requests with :mod:`hil_sim.modbus.pdu` and call the slave; the
plant model keeps the slave's values current with :meth:`RegisterBank.set` and learns about master
writes through :attr:`RegisterBank.on_write`.

Tables and their names follow the Modbus Application Protocol Specification V1.1b3 §4.3:
``"coil"`` and ``"discrete_input"`` hold bits, ``"holding_register"`` and ``"input_register"`` hold
16-bit words (here: unsigned ints 0..65535). Addresses are 0-based PDU addresses.

Exception codes (V1.1b3 §7): 1 illegal function, 2 illegal data address, 3 illegal data value,
4 server device failure, 6 server device busy; 0x0B gateway target device failed to respond.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

COIL = "coil"
DISCRETE_INPUT = "discrete_input"
HOLDING_REGISTER = "holding_register"
INPUT_REGISTER = "input_register"
BIT_TABLES = frozenset({COIL, DISCRETE_INPUT})
REGISTER_TABLES = frozenset({HOLDING_REGISTER, INPUT_REGISTER})
TABLES = BIT_TABLES | REGISTER_TABLES

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04
SERVER_DEVICE_BUSY = 0x06
GATEWAY_TARGET_FAILED = 0x0B


class ModbusError(Exception):
    """Raise from a :class:`Slave` to answer the request with a Modbus exception response.

    Args:
        code: exception code, 1..255 (V1.1b3 §7; see the module constants).

    Raises:
        ValueError: the code is outside 1..255.
    """

    def __init__(self, code: int) -> None:
        if not 1 <= code <= 0xFF:
            raise ValueError(f"Modbus exception code must be 1..255, got {code}")
        super().__init__(f"Modbus exception {code:#04x}")
        self.code = code


@runtime_checkable
class Slave(Protocol):
    """One unit id behind a server. Methods raise :class:`ModbusError` to answer an exception.

    ``read_bits`` serves ``"coil"`` / ``"discrete_input"``; ``read_registers`` serves
    ``"holding_register"`` / ``"input_register"`` and returns uint16 values; ``write_bits``
    writes coils; ``write_registers`` writes holding registers. A write either applies every
    value or none (raise before changing anything).
    """

    unit_id: int

    def read_bits(self, table: str, address: int, count: int) -> list[bool]: ...

    def read_registers(self, table: str, address: int, count: int) -> list[int]: ...

    def write_bits(self, address: int, values: list[bool]) -> None: ...

    def write_registers(self, address: int, values: list[int]) -> None: ...


def _check_value(table: str, value: object) -> int | bool:
    if table in BIT_TABLES:
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise ValueError(f"{table} values must be bool, got {value!r}")
        return bool(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise ValueError(f"{table} values must be int 0..65535, got {value!r}")
    return value


class RegisterBank:
    """A ready :class:`Slave` backed by one sparse dict per table.

    Reading or writing any address that was not :meth:`define`-d answers exception 2 (illegal data
    address), as does a master write to a defined but read-only coil/holding register (many field
    devices, e.g. ABB ACS580 EFB, answer 2 for read-only parameters). Writes are all-or-nothing.

    Attributes:
        unit_id: the Modbus unit (slave) id, 0..247 for RTU, 0..255 for TCP.
        on_write: ``callback(table, address, values)`` called after every successful master
            write (``table`` is ``"coil"`` or ``"holding_register"``). It may raise
            :class:`ModbusError` to make the master see an exception (the values stay written).
    """

    def __init__(self, unit_id: int) -> None:
        if not 0 <= unit_id <= 0xFF:
            raise ValueError(f"unit id must be 0..255, got {unit_id}")
        self.unit_id = unit_id
        self.on_write: Callable[[str, int, list], None] | None = None
        self._values: dict[str, dict[int, int | bool]] = {t: {} for t in TABLES}
        self._writable: dict[str, set[int]] = {COIL: set(), HOLDING_REGISTER: set()}
        self._write_only: dict[str, set[int]] = {COIL: set(), HOLDING_REGISTER: set()}

    def define(
        self,
        table: str,
        address: int,
        values: Sequence[int] | Sequence[bool],
        writable: bool = False,
        write_only: bool = False,
    ) -> None:
        """Map ``len(values)`` consecutive addresses starting at ``address`` with initial values.
        ``write_only`` addresses (implies ``writable``) answer a master's read with exception 2,
        as a drive's command word does on drives that cannot read it back; the plant side
        still sees them (:meth:`get`).

        Raises:
            ValueError: unknown table, address range outside 0..65535, a value of the wrong kind,
                ``writable`` on a read-only table (discrete inputs, input registers), or an
                address already defined.
        """
        self._check_range(table, address, len(values))
        writable = writable or write_only
        if writable and table not in self._writable:
            raise ValueError(f"{table} is read-only by definition; cannot be writable")
        checked = [_check_value(table, v) for v in values]
        taken = [a for a in range(address, address + len(checked)) if a in self._values[table]]
        if taken:
            raise ValueError(f"{table} address {taken[0]} defined twice on unit {self.unit_id}")
        for offset, value in enumerate(checked):
            self._values[table][address + offset] = value
            if writable:
                self._writable[table].add(address + offset)
            if write_only:
                self._write_only[table].add(address + offset)

    def set(self, table: str, address: int, values: Sequence[int | bool] | int | bool) -> None:
        """Plant side: overwrite defined values (no writability check). A scalar sets one address.

        Raises:
            KeyError: an address in the range is not defined.
            ValueError: unknown table or a value of the wrong kind.
        """
        seq = [values] if isinstance(values, bool | int) else list(values)
        self._check_range(table, address, len(seq))
        checked = [_check_value(table, v) for v in seq]
        data = self._values[table]
        for a in range(address, address + len(checked)):
            if a not in data:
                raise KeyError(f"{table} address {a} is not defined on unit {self.unit_id}")
        for offset, value in enumerate(checked):
            data[address + offset] = value

    def get(self, table: str, address: int, count: int) -> list:
        """Plant side: ``count`` values from ``address`` (bools for bit tables, ints otherwise).

        Raises:
            KeyError: an address in the range is not defined.
            ValueError: unknown table or a bad range.
        """
        self._check_range(table, address, count)
        data = self._values[table]
        try:
            return [data[a] for a in range(address, address + count)]
        except KeyError as exc:
            raise KeyError(f"{table} address {exc} is not defined on unit {self.unit_id}") from None

    # --- Slave protocol -------------------------------------------------------------------

    def read_bits(self, table: str, address: int, count: int) -> list[bool]:
        """Serve FC01/FC02. Raises :class:`ModbusError` (2) on any unmapped address."""
        if table not in BIT_TABLES:
            raise ModbusError(ILLEGAL_FUNCTION)
        return [bool(v) for v in self._read(table, address, count)]

    def read_registers(self, table: str, address: int, count: int) -> list[int]:
        """Serve FC03/FC04. Raises :class:`ModbusError` (2) on any unmapped address."""
        if table not in REGISTER_TABLES:
            raise ModbusError(ILLEGAL_FUNCTION)
        return [int(v) for v in self._read(table, address, count)]

    def write_bits(self, address: int, values: list[bool]) -> None:
        """Serve FC05/FC15 (coils). Raises :class:`ModbusError` (2) on an unmapped or read-only
        address, before changing anything."""
        self._write(COIL, address, [bool(v) for v in values])

    def write_registers(self, address: int, values: list[int]) -> None:
        """Serve FC06/FC16 (holding registers). Raises :class:`ModbusError` (2) on an unmapped or
        read-only address, (3) on a value outside 0..65535; before changing anything."""
        if any(not 0 <= v <= 0xFFFF for v in values):
            raise ModbusError(ILLEGAL_DATA_VALUE)
        self._write(HOLDING_REGISTER, address, [int(v) for v in values])

    # --- internals ------------------------------------------------------------------------

    def _read(self, table: str, address: int, count: int) -> list[int | bool]:
        data = self._values[table]
        hidden = self._write_only.get(table, ())
        out = []
        for a in range(address, address + count):
            if a not in data or a in hidden:
                raise ModbusError(ILLEGAL_DATA_ADDRESS)
            out.append(data[a])
        return out

    def _write(self, table: str, address: int, values: list) -> None:
        writable = self._writable[table]
        if any(a not in writable for a in range(address, address + len(values))):
            raise ModbusError(ILLEGAL_DATA_ADDRESS)
        data = self._values[table]
        for offset, value in enumerate(values):
            data[address + offset] = value
        if self.on_write is not None:
            self.on_write(table, address, list(values))

    @staticmethod
    def _check_range(table: str, address: int, count: int) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; expected one of {sorted(TABLES)}")
        if count < 1 or address < 0 or address + count > 0x10000:
            raise ValueError(f"bad range: address {address}, count {count}")
