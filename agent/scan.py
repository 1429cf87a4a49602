"""``pumproom-agent scan``: find the Modbus devices on an RS-485 bus or behind a TCP gateway.

For commissioning: for each line setting (baud rate × parity) it asks every unit id in a range for
one holding register (function code 03). A unit that answers, with data or with a Modbus exception
(exception 2 "illegal data address" still proves a device is there), is *present*; silence
within the timeout means nothing answers at that id and setting. CRC errors and garbled replies
are reported separately: they usually mean a wrong baud rate or parity, or two devices with one id.

It uses the agent's own drivers (the same code path as polling) and never writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import drivers
from agent.core.model import ConnectError, ConnectionLost, Quality
from drivers.specs import (
    ConnectionSpec,
    DataType,
    ModbusPoint,
    ModbusRtuConnection,
    ModbusTcpConnection,
    Table,
)

GATEWAY_NO_TARGET = (0x0A, 0x0B)
"""Exceptions 10 (gateway path unavailable) and 11 (gateway target device failed to respond),
Modbus Application Protocol V1.1b3 §7: a TCP gateway saying nothing is at that unit id."""

BAUD_RATES = (9600, 19200, 4800, 38400, 115200, 2400, 57600, 1200)
"""Tried in this order when none are given: the common field defaults first."""


@dataclass(frozen=True, slots=True)
class Found:
    """A unit that answered.

    Attributes:
        setting: line setting, e.g. ``"19200 8N1"`` (or ``"tcp"``).
        unit_id: the Modbus unit id.
        answer: ``"register 0 = 4"`` or ``"exception 2"`` (present, but no register 0).
    """

    setting: str
    unit_id: int
    answer: str


def parse_units(text: str) -> list[int]:
    """``"1-30,100"`` → ``[1, …, 30, 100]``.

    Raises:
        ValueError: not a list of unit ids 0–247 or ranges of them.
    """
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        a, b = int(lo), int(hi or lo)
        if not 0 <= a <= b <= 247:
            raise ValueError(f"unit ids are 0–247, got {part.strip()!r}")
        out.extend(range(a, b + 1))
    return out


async def scan(
    spec: ConnectionSpec, units: Sequence[int], register: int = 0
) -> tuple[list[Found], str | None]:
    """Probe ``units`` over one connection; returns what answered and a connection error, if any."""
    points = [
        ModbusPoint(f"unit{u}", "scan", u, Table.HOLDING_REGISTER, register, DataType.UINT16)
        for u in units
    ]
    driver = drivers.create(spec)
    setting = _setting(spec)
    try:
        await driver.connect()
        found = []
        for point in points:  # one at a time: a plan per unit, so no unit's silence hides another
            reading = (await driver.read(driver.plan([point])))[0]
            if reading.quality is Quality.GOOD:
                found.append(
                    Found(setting, point.unit_id, f"register {register} = {reading.value}")
                )
            elif reading.reason and reading.reason.startswith("modbus:exception:"):
                code = int(reading.reason.rsplit(":", 1)[1])
                if code not in GATEWAY_NO_TARGET:
                    found.append(Found(setting, point.unit_id, f"exception {code}"))
        return found, None
    except (ConnectError, ConnectionLost) as exc:
        return [], str(exc)
    finally:
        await driver.close()


def rtu_settings(
    port: str, bauds: Iterable[int], parities: Iterable[str], timeout_s: float
) -> list[ModbusRtuConnection]:
    """One RTU connection spec per baud rate × parity (8 data bits, 1 stop bit: what most pump-room
    devices ship with, though the Modbus serial line spec V1.02 §2.5.1 asks for 2 stop bits
    without parity; devices set to 8N2 still read 8N1 frames)."""
    return [
        ModbusRtuConnection(
            name=f"scan:{port}",
            port=port,
            baudrate=b,
            parity=p,
            stopbits=1,
            timeout_s=timeout_s,
            guard_s=0.02,
        )
        for b in bauds
        for p in parities
    ]


def tcp_setting(host: str, port: int, timeout_s: float) -> ModbusTcpConnection:
    """The TCP connection spec for scanning a gateway's unit ids."""
    return ModbusTcpConnection(
        name=f"scan:{host}:{port}", host=host, port=port, timeout_s=timeout_s
    )


def _setting(spec: ConnectionSpec) -> str:
    if isinstance(spec, ModbusRtuConnection):
        return f"{spec.baudrate} 8{spec.parity}{spec.stopbits}"
    return "tcp"


def run_scan(specs: Sequence[ConnectionSpec], units: Sequence[int]) -> tuple[list[str], int]:
    """Scan every setting in turn; returns the report lines and how many settings could be
    opened (0: the port or the address itself is the problem)."""

    async def main() -> tuple[list[str], int]:
        lines = []
        opened = 0
        for spec in specs:
            found, error = await scan(spec, units)
            label = _setting(spec)
            if error:
                lines.append(f"{label}: cannot open: {error}")
                continue
            opened += 1
            lines.append(f"{label}: {len(found)} unit(s) answered")
            lines += [f"    unit {f.unit_id:>3}: {f.answer}" for f in found]
        return lines, opened

    return asyncio.run(main())
