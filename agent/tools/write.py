"""``pumproom-agent write``: one configured point, guarded, then read back.

Refused here, before any connection, unless the point is ``writable`` in the configuration, the
value is within ``valid_min``..``valid_max`` (and one of the ``enum`` values when the point has
an enum; a word of the enum is accepted for its number), and ``--yes`` is given. The write goes
through the agent's driver (which checks the bounds again), then the point is read back: the
write is believed only once the device reports it (DESIGN.md), within one count of the point's
scale.
"""

from __future__ import annotations

import asyncio
import math
import sys

import click

import drivers
from agent.config import SiteConfig
from agent.core.model import ConnectError, ConnectionLost, Quality, Reading, WriteError
from agent.tools import options
from agent.tools.read import describe, point_line
from agent.tools.target import ConfiguredPoint, TargetError, configured_points
from drivers.specs import DataType, ModbusPoint

READ_BACK_S = 2.0
"""How long the read-back may take to show the written value (a drive applies a command within
its next scan; most devices at once), s."""


def parse_value(p: ConfiguredPoint, text: str) -> int | float | bool:
    """The engineering value ``text`` means for ``p``: a number, ``1``/``0``, ``yes``/``no``
    (as ``read`` shows a bit), ``true``/``false`` or ``on``/``off`` for a bit, or a word of the
    point's enum.

    Raises:
        TargetError: not a value of this point, or outside its bounds.
    """
    cfg = p.config
    spec = p.spec
    is_bit = isinstance(spec, ModbusPoint) and (spec.table.is_bit or spec.dtype is DataType.BOOL)
    t = text.strip()
    if is_bit:
        words = {"1": True, "true": True, "on": True, "yes": True,
                 "0": False, "false": False, "off": False, "no": False}  # fmt: skip
        if t.lower() not in words:
            raise TargetError(f"{cfg.name} is a bit: write 1/0, yes/no, true/false or on/off")
        return words[t.lower()]
    if cfg.enum:
        by_word = {w.lower(): k for k, w in cfg.enum.items()}
        by_word |= {w.split(" (")[0].lower(): k for k, w in cfg.enum.items() if " (" in w}
        if t.lower() in by_word:
            return by_word[t.lower()]
    try:
        value: int | float = int(t, 0)
    except ValueError:
        try:
            value = float(t)
        except ValueError:
            known = f" (or one of: {', '.join(cfg.enum.values())})" if cfg.enum else ""
            raise TargetError(f"{cfg.name}: not a number: {text!r}{known}") from None
    if not math.isfinite(value):
        raise TargetError(f"{cfg.name}: not a finite number")
    if cfg.enum and value not in cfg.enum:
        choices = ", ".join(f"{k} {w}" for k, w in cfg.enum.items())
        raise TargetError(f"{cfg.name}: {value} is none of its values ({choices})")
    lo, hi = cfg.valid_min, cfg.valid_max
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        unit = f" {cfg.unit}" if cfg.unit else ""
        raise TargetError(
            f"{cfg.name}: {value}{unit} is outside its bounds "
            f"{'-inf' if lo is None else lo}..{'inf' if hi is None else hi}{unit}"
        )
    return value


def confirmed(p: ConfiguredPoint, wanted: int | float | bool, r: Reading) -> bool:
    """Whether the read-back ``r`` shows ``wanted`` (within half a count of the scale)."""
    if r.quality is not Quality.GOOD or r.value is None:
        return False
    if isinstance(wanted, bool) or isinstance(r.value, bool):
        return bool(r.value) == bool(wanted)
    spec = p.spec
    scale = abs(getattr(spec, "scale", 1.0))
    if isinstance(spec, ModbusPoint) and spec.dtype in (DataType.FLOAT32, DataType.FLOAT64):
        return math.isclose(float(r.value), float(wanted), rel_tol=1e-6, abs_tol=1e-9)
    return abs(float(r.value) - float(wanted)) <= scale / 2 + 1e-12


async def write_and_read_back(
    p: ConfiguredPoint, value: int | float | bool
) -> tuple[Reading, bool]:
    """Write, then read back until it shows ``value`` or :data:`READ_BACK_S` passed.

    Raises:
        WriteError, ConnectError, ConnectionLost: from the driver.
    """
    driver = drivers.create(p.connection)
    try:
        await driver.connect()
        await driver.write(p.spec, value)
        plan = driver.plan([p.spec])
        deadline = asyncio.get_running_loop().time() + READ_BACK_S
        while True:
            (r,) = await driver.read(plan)
            ok = confirmed(p, value, r)
            if ok or asyncio.get_running_loop().time() > deadline:
                return r, ok
            await asyncio.sleep(0.2)
    finally:
        await driver.close()


def site_bounds(site: SiteConfig, point: str) -> tuple[float, float, str] | None:
    """The site's own bounds for writing ``point`` by hand, tighter than the device's: for the
    control loop's setpoint point, ``control.remote`` min..max (what the platform may ask)
    capped below ``control.interlocks.outlet_max_mpa`` (a setpoint at the interlock trips the
    pumps). ``(lo, hi, where they come from)``, or ``None`` when the site sets none."""
    ctl = site.control
    if ctl is None or ctl.points.setpoint != point:
        return None
    cap = ctl.interlocks.outlet_max_mpa
    hi = ctl.remote.max_mpa if cap is None else min(ctl.remote.max_mpa, cap)
    where = "control.remote min_mpa/max_mpa and control.interlocks.outlet_max_mpa"
    return ctl.remote.min_mpa, hi, where


@click.command("write", epilog=options.EPILOG_WRITE)
@click.argument("point")
@click.argument("value")
@options.config()
@options.overrides
@click.option("--yes", is_flag=True, help="Really write (without it: say what would be written).")
@click.option(
    "--force", is_flag=True, help="Also outside the site's control bounds (not the device's)."
)
def write(
    point: str, value: str, config_path: str, overrides: tuple[str, ...], yes: bool, force: bool
) -> None:
    """Write one configured, writable point within its bounds, then read it back."""
    site = options.load_site(config_path, overrides)
    try:
        (target,) = configured_points(site, [point])
        if not target.config.writable:
            raise TargetError(
                f"{point} is not writable: the configuration must say writable: true for it"
            )
        wanted = parse_value(target, value)
        bounds = site_bounds(site, point)
        if bounds and not force and not bounds[0] <= float(wanted) <= bounds[1]:
            raise TargetError(
                f"{point}: {wanted} is outside this site's {bounds[0]}..{bounds[1]}"
                f" ({bounds[2]}); --force writes it anyway"
            )
    except TargetError as exc:
        click.echo(f"write: refused: {exc}", err=True)
        sys.exit(2)
    unit = f" {target.config.unit}" if target.config.unit else ""
    plan = f"{point} := {wanted}{unit}  [{describe(target)}]"
    if not yes:
        click.echo(f"would write {plan}\nnothing written: add --yes to write", err=True)
        sys.exit(2)
    click.echo(f"writing {plan}")
    try:
        reading, ok = asyncio.run(write_and_read_back(target, wanted))
    except WriteError as exc:
        click.echo(f"write: the device refused: {exc}", err=True)
        sys.exit(1)
    except (ConnectError, ConnectionLost) as exc:
        click.echo(f"write: {exc}", err=True)
        sys.exit(1)
    click.echo("read back: " + point_line(target, reading))
    if not ok:
        click.echo(f"write: the device reads back something else than {wanted}", err=True)
        sys.exit(1)
    click.echo("confirmed")
