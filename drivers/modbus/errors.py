"""Failures of one Modbus transaction, internal to ``drivers/`` (the driver turns them into
readings of bad quality or :class:`~agent.core.model.WriteError`)."""

from __future__ import annotations


class ModbusTimeout(Exception):
    """No answer within the connection's ``timeout_s``."""


class ModbusExceptionResponse(Exception):
    """The device answered with a Modbus exception response.

    Attributes:
        code: exception code (Modbus Application Protocol V1.1b3 §7: 1 illegal function,
            2 illegal data address, 3 illegal data value, 4 server device failure, …).
    """

    def __init__(self, code: int) -> None:
        super().__init__(f"modbus exception {code}")
        self.code = code


class ModbusGarbled(Exception):
    """An answer arrived but did not match the request (late reply, wrong unit id, function code,
    byte count or length, bad local echo)."""


class ModbusCrcError(ModbusGarbled):
    """An RTU frame of the expected shape arrived with a wrong CRC (line noise)."""
