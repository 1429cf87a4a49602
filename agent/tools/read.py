"""``pumproom-agent read``: one or more configured points, a configured device's points, or a raw
register range from a configured or ad-hoc device (see :mod:`agent.tools.decode`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import click

import drivers
from agent.config import SiteConfig
from agent.core.model import ConnectError, ConnectionLost, Quality, Reading
from agent.statuspage.render import QUALITY
from agent.tools import options
from agent.tools.decode import render_bits, render_registers
from agent.tools.reasons import in_words
from agent.tools.target import (
    ConfiguredPoint,
    TargetError,
    adhoc_connection,
    configured_points,
    device_connection,
    device_points,
    parse_int,
)
from drivers.modbus.codec import encode_registers
from drivers.specs import (
    ConnectionSpec,
    DataType,
    ModbusLimits,
    ModbusPoint,
    ModbusRtuConnection,
    ModbusTcpConnection,
    Table,
)

TABLES = {"holding": Table.HOLDING_REGISTER, "input": Table.INPUT_REGISTER,
          "coil": Table.COIL, "discrete_input": Table.DISCRETE_INPUT}  # fmt: skip


def describe(p: ConfiguredPoint) -> str:
    """Where a point lives: ``vfd1 unit 11 holding 12288 (0x3000) uint16 ×0.01``."""
    s = p.spec
    if not isinstance(s, ModbusPoint):
        return f"{s.device} opcua {s.node_id}"
    where = f"{s.device} unit {s.unit_id} {s.table.value.replace('_register', '')} {s.address}"
    where += f" (0x{s.address:04X}) {s.dtype.value}"
    if s.bit is not None:
        where += f" bit {s.bit}"
    if s.width > 1:
        where += f" {s.word_order.value}-word"
    if s.scale != 1.0 or s.offset:
        where += f" ×{s.scale:g}" + (f" {s.offset:+g}" if s.offset else "")
    return where


def point_line(p: ConfiguredPoint, r: Reading) -> str:
    """``pump1.state = 3 (stopped)  good  vfd1 unit 11 …  raw 0003``."""
    cfg = p.config
    if r.quality is not Quality.GOOD:
        quality = QUALITY.get(r.quality.code, r.quality.code)
        return f"{r.point} = –  {quality}: {in_words(r.reason)}  [{describe(p)}]"
    text = f"{r.value:.6g}" if isinstance(r.value, float) else str(r.value)
    if isinstance(r.value, bool):
        text = "1 (yes)" if r.value else "0 (no)"
    elif cfg.unit:
        text += f" {cfg.unit}"
    if cfg.enum and isinstance(r.value, int) and not isinstance(r.value, bool):
        text += f" ({cfg.enum.get(r.value, 'not in the enum')})"
    raw = ""
    s = p.spec
    if isinstance(s, ModbusPoint) and not s.table.is_bit and s.dtype is not DataType.BOOL:
        try:
            raw = "  raw " + " ".join(f"{w:04X}" for w in encode_registers(s, r.value))
        except ValueError:
            raw = ""
    return f"{r.point} = {text}  good  [{describe(p)}]{raw}"


async def read_points(points: Sequence[ConfiguredPoint]) -> list[Reading]:
    """Read ``points`` through their connections (one driver per connection), in order.

    Raises:
        ConnectError / ConnectionLost: a connection cannot be opened or is lost.
    """
    by_conn: dict[int, tuple[ConnectionSpec, list[ConfiguredPoint]]] = {}
    for p in points:
        by_conn.setdefault(id(p.connection), (p.connection, []))[1].append(p)
    got: dict[str, Reading] = {}
    for spec, members in by_conn.values():
        driver = drivers.create(spec)
        try:
            await driver.connect()
            plan = driver.plan([m.spec for m in members])
            for r in await driver.read(plan):
                got[r.point] = r
        finally:
            await driver.close()
    return [got[p.spec.name] for p in points]


async def read_range(
    spec: ConnectionSpec, unit: int, table: Table, start: int, count: int
) -> tuple[list[int | bool | None], list[str | None]]:
    """``count`` raw registers (uint16) or bits from ``start``; ``None`` where the device
    answered an exception or nothing (reason beside it)."""
    points = [
        ModbusPoint(f"{table.value}.{a}", "read", unit, table, a, DataType.UINT16)
        if not table.is_bit
        else ModbusPoint(f"{table.value}.{a}", "read", unit, table, a, DataType.BOOL)
        for a in range(start, start + count)
    ]
    driver = drivers.create(spec)
    try:
        await driver.connect()
        readings = await driver.read(driver.plan(points))
    finally:
        await driver.close()
    values: list[int | bool | None] = []
    errors: list[str | None] = []
    for r in readings:
        good = r.quality is Quality.GOOD and isinstance(r.value, int | bool)
        values.append(r.value if good else None)  # type: ignore[arg-type]
        errors.append(None if good else r.reason)
    return values, errors


@click.command("read", epilog=options.EPILOG_READ)
@click.argument("points", nargs=-1)
@options.config(required=False)
@options.overrides
@click.option("--device", help="A configured device: all its points, or with --address a range.")
@options.adhoc
@click.option("--table", type=click.Choice(list(TABLES)), default="holding", show_default=True)
@click.option("--address", help="First address (0-based PDU address; 0x3000 or 3000H for hex).")
@click.option("--count", default="1", show_default=True, help="Registers or bits to read.")
def read(
    points: tuple[str, ...],
    config_path: str | None,
    overrides: tuple[str, ...],
    device: str | None,
    tcp: str | None,
    port: str | None,
    baud: int,
    parity: str,
    unit: int | None,
    timeout_s: float,
    table: str,
    address: str | None,
    count: str,
) -> None:
    """Read configured points, or a raw register range with every decoding side by side."""
    try:
        if address is None:
            if not config_path:
                raise TargetError("name points (with -c), or give --address for a raw range")
            site: SiteConfig = options.load_site(config_path, overrides)
            names = list(points) or (device_points(site, device) if device else [])
            if not names:
                raise TargetError("name one or more points, or --device NAME")
            targets = configured_points(site, names)
            try:
                readings = asyncio.run(read_points(targets))
            except (ConnectError, ConnectionLost) as exc:
                click.echo(f"read: {exc}", err=True)
                sys.exit(1)
            for p, r in zip(targets, readings, strict=True):
                click.echo(point_line(p, r))
            sys.exit(0 if all(r.quality is Quality.GOOD for r in readings) else 1)
        start, n = parse_int(address), parse_int(count)
        kind = TABLES[table]
        limit = 2000 if kind.is_bit else 125
        if not 1 <= n <= limit or start + n > 65536:
            raise TargetError(f"--count: 1..{limit} within addresses 0..65535")
        if device:
            site = options.load_site(options.need(config_path, "--device"), overrides)
            spec, dev_unit = device_connection(site, device)
            unit = dev_unit if unit is None else unit
        else:
            unit = 1 if unit is None else unit
            spec = adhoc_connection(tcp, port, baud, parity, unit, timeout_s)
        if unit not in dict(getattr(spec, "limits", ())):
            spec = _with_unit(spec, unit)
        try:
            values, errors = asyncio.run(read_range(spec, unit, kind, start, n))
        except (ConnectError, ConnectionLost) as exc:
            click.echo(f"read: {exc}", err=True)
            sys.exit(1)
    except TargetError as exc:
        click.echo(f"read: {exc}", err=True)
        sys.exit(2)
    if kind.is_bit:
        click.echo(render_bits(table, unit, start, [v if v is None else bool(v) for v in values]))
    else:
        regs = [None if v is None else int(v) for v in values]
        click.echo(render_registers(table, unit, start, regs, errors))
    sys.exit(0 if all(v is not None for v in values) else 1)


def _with_unit(spec: ConnectionSpec, unit: int) -> ConnectionSpec:
    """``spec`` with request limits for ``unit`` too (another unit on a configured bus)."""
    import dataclasses

    assert isinstance(spec, ModbusTcpConnection | ModbusRtuConnection)
    limits = (*spec.limits, (unit, ModbusLimits(125, 2000, 0)))
    return dataclasses.replace(spec, limits=limits)
