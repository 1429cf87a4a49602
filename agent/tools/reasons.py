"""A bad reading's reason in words, for the technician at the terminal.

The codes are the Modbus exception codes of the Modbus Application Protocol Specification
V1.1b3, §7 "MODBUS Exception Responses"; the hints are what each most often means in a pump room.
"""

from __future__ import annotations

import re

MODBUS_EXCEPTIONS: dict[int, str] = {
    1: "illegal function: the device does not support this function code for this table",
    2: "illegal data address: no such register at this unit (check the address and its base)",
    3: "illegal data value: the request's count or value is not accepted (too many registers?)",
    4: "server device failure: the device failed while serving the request",
    5: "acknowledge: the device accepted a long command and is still working",
    6: "server device busy: try again later",
    8: "memory parity error: the device found a fault in its own memory",
    10: "gateway path unavailable: the gateway has no route to this unit id",
    11: "gateway target device failed to respond: nothing answered behind the gateway at this"
    " unit id (serial device off, wrong unit id, baud rate or wiring)",
}
"""Exception code → words (Modbus Application Protocol V1.1b3 §7)."""

_EXC = re.compile(r"modbus:exception:(\d+)$")


def in_words(reason: str | None) -> str:
    """``modbus:exception:11`` → ``modbus:exception:11 (gateway target device failed ...)``;
    any other reason as it is (``None`` → ``no value``)."""
    if not reason:
        return "no value"
    m = _EXC.match(reason)
    words = MODBUS_EXCEPTIONS.get(int(m.group(1))) if m else None
    return f"{reason} ({words})" if words else reason
