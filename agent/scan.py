"""``pumproom-agent scan``: find the Modbus devices on an RS-485 bus or behind a TCP gateway.

For commissioning: for each line setting (baud rate × parity) it asks every unit id in a range for
one holding register (function code 03). A unit that answers, with data or with a Modbus exception
(exception 2 "illegal data address" still proves a device is there), is *present*; silence
within the timeout means nothing answers at that id and setting. CRC errors and garbled replies
are reported separately: they usually mean a wrong baud rate or parity, or two devices with one id.

Each unit that answers is then matched against the device profiles (``identify:`` in each
profile: a few registers whose values fit that family, e.g. the INVT status word 2100H in 1..5,
the transmitter's slave-address register holding its own unit id) to suggest one.

It uses the agent's own drivers (the same code path as polling) and never writes. The command
(progress, printing) is :mod:`agent.tools.scan_cmd`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import drivers
from agent.config.profiles import Profile
from agent.core.model import ConnectError, ConnectionLost, Quality
from drivers.base import Driver
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
        profiles: the device profiles it fits (:func:`identify`), best guesses, not proof.
    """

    def line(self) -> str:
        """``unit  11: register 0 = 0  → profile invt-gd200a``."""
        if not self.profiles:
            return f"unit {self.unit_id:>3}: {self.answer}  → fits none of the profiles"
        best, *also = self.profiles
        more = f" (also fits {', '.join(also)})" if also else ""
        return f"unit {self.unit_id:>3}: {self.answer}  → profile {best}{more}"

    setting: str
    unit_id: int
    answer: str
    profiles: tuple[str, ...] = ()


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
    spec: ConnectionSpec,
    units: Sequence[int],
    register: int = 0,
    on_unit: Callable[[int, Found | None], None] | None = None,
    profiles: Sequence[Profile] = (),
) -> tuple[list[Found], str | None]:
    """Probe ``units`` over one connection; returns what answered and a connection error, if any.

    Args:
        on_unit: called after each unit id with what answered there (``None``: nothing), in
            order, so a caller can print results and progress as they come.
        profiles: device profiles to match each answering unit against (:func:`identify`).
    """
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
            hit = None
            if reading.quality is Quality.GOOD:
                hit = Found(setting, point.unit_id, f"register {register} = {reading.value}")
            elif reading.reason and reading.reason.startswith("modbus:exception:"):
                code = int(reading.reason.rsplit(":", 1)[1])
                if code not in GATEWAY_NO_TARGET:
                    hit = Found(setting, point.unit_id, f"exception {code}")
            if hit is not None and profiles:
                names = await identify(driver, point.unit_id, profiles)
                hit = Found(hit.setting, hit.unit_id, hit.answer, tuple(names))
            if hit is not None:
                found.append(hit)
            if on_unit is not None:
                on_unit(point.unit_id, hit)
        return found, None
    except (ConnectError, ConnectionLost) as exc:
        return [], str(exc)
    finally:
        await driver.close()


async def identify(driver: Driver, unit: int, profiles: Sequence[Profile]) -> list[str]:
    """Names of the ``profiles`` whose every ``identify`` rule this unit satisfies, the most
    specific (most rules) first; each rule is one FC03/FC04 read of one register, a register read
    once serves every profile asking for it."""
    cache: dict[tuple[str, int], int | None] = {}
    fits: list[tuple[int, str]] = []
    for prof in profiles:
        ok = bool(prof.identify)
        for rule in prof.identify:
            key = (rule.register, rule.address)
            if key not in cache:
                table = Table.INPUT_REGISTER if rule.register == "input" else Table.HOLDING_REGISTER
                name = f"id{unit}.{rule.register}.{rule.address}"
                p = ModbusPoint(name, "scan", unit, table, rule.address, DataType.UINT16)
                r = (await driver.read(driver.plan([p])))[0]
                good = r.quality is Quality.GOOD and isinstance(r.value, int)
                cache[key] = int(r.value) if good else None  # type: ignore[arg-type]
            raw = cache[key]
            if raw is None or not rule.accepts(raw, unit):
                ok = False
                break
        if ok:
            fits.append((len(prof.identify), prof.name))
    return [name for _, name in sorted(fits, key=lambda f: -f[0])]


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


def setting_label(spec: ConnectionSpec) -> str:
    """``"19200 8N1"`` for a serial setting, ``"tcp host:port"`` for a TCP one."""
    if isinstance(spec, ModbusTcpConnection):
        return f"tcp {spec.host}:{spec.port}"
    return _setting(spec)


def _setting(spec: ConnectionSpec) -> str:
    if isinstance(spec, ModbusRtuConnection):
        return f"{spec.baudrate} 8{spec.parity}{spec.stopbits}"
    return "tcp"
