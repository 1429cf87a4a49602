"""Options and helpers the technician's commands share (click), and their help examples."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from agent.config import EXIT_CONFIG, ConfigError, SiteConfig, load_config

F = TypeVar("F", bound=Callable[..., Any])


def load_site(config_path: str, overrides: tuple[str, ...] = (), hint: str = "") -> SiteConfig:
    """The validated config, or exit 2 with one ``FILE:LINE:COL: message`` line per problem
    (and ``hint``, if given, as a last line: what the user can do without this config)."""
    try:
        return load_config(config_path, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        if hint:
            click.echo(hint, err=True)
        sys.exit(EXIT_CONFIG)


def need(config_path: str | None, what: str) -> str:
    """``config_path``, or exit 2 saying ``what`` needs ``-c``."""
    if not config_path:
        click.echo(f"{what} needs -c/--config FILE", err=True)
        sys.exit(EXIT_CONFIG)
    return config_path


def config(required: bool = True) -> Callable[[F], F]:
    """``-c/--config FILE``."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        required=required,
        type=click.Path(dir_okay=False),
        help="Pump-room YAML configuration file.",
    )


overrides = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. devices.cabinet.port=15021 (repeatable).",
)


def adhoc(f: F) -> F:
    """``--tcp HOST[:PORT] | --port DEV --baud N --parity P``, ``--unit``, ``--timeout``."""
    for opt in reversed(
        [
            click.option("--tcp", metavar="HOST[:PORT]", help="Modbus TCP device (port 502)."),
            click.option("--port", help="Serial port of the RS-485 bus, e.g. /dev/ttyUSB0."),
            click.option("--baud", default=9600, show_default=True, help="Serial baud rate."),
            click.option(
                "--parity",
                default="N",
                show_default=True,
                help="N, E or O (8 data bits, 1 stop bit).",
            ),
            click.option("--unit", type=click.IntRange(0, 247), help="Unit id (slave address)."),
            click.option(
                "--timeout", "timeout_s", default=1.0, show_default=True, help="Per request, s."
            ),
        ]
    ):
        f = opt(f)
    return f


EPILOG_READ = """\b
Examples:
  pumproom-agent read -c site.yaml pump1.freq p_out      # configured points, decoded
  pumproom-agent read -c site.yaml --device vfd1         # all of a device's points
  pumproom-agent read --tcp 192.0.2.10 --unit 2 --table input --address 0x1010 --count 4
  pumproom-agent read --port /dev/ttyUSB0 --baud 19200 --parity E --unit 11 --address 3000H \\
      --count 8
  pumproom-agent read -c site.yaml --device flowmeter --table input --address 0x1010 --count 4

A raw range prints each register in hex, uint16 and int16, then every 32- and 64-bit window as
float, int and uint in the orders ABCD, CDAB, BADC and DCBA: find the plausible value, and the
row and column name the type and word_order/byte_order to put in the config. Addresses are
0-based PDU addresses (what goes on the wire). Exit 0: all read; 1: something unreadable or no
connection; 2: bad arguments or config."""

EPILOG_WRITE = """\b
Examples:
  pumproom-agent write -c site.yaml setpoint 0.42            # shows what it would do
  pumproom-agent write -c site.yaml setpoint 0.42 --yes      # writes, then reads back
  pumproom-agent write -c site.yaml pump1.cmd stop --yes     # an enumerated value by its word

Only a point the configuration marks writable, within its valid_min..valid_max (and, with an
enum, one of its values; the control loop's setpoint point also within control.remote and below
control.interlocks.outlet_max_mpa unless --force), and only with --yes. The device is read back
after the write. Exit 0:
written and read back equal; 1: the device refused, or read back something else; 2: refused
here (not writable, out of bounds, no --yes) or bad arguments."""

EPILOG_STATUS = """\b
Examples:
  pumproom-agent status -c /etc/pumproom-edge/site.yaml      # the running agent, as a table
  pumproom-agent status --url http://127.0.0.1:8080 --json   # the raw snapshot

Reads the running agent's status endpoint (status.listen in the config; its token from
status.token_env/token_file, or --token). Exit 1 when the agent cannot be reached."""

EPILOG_EXPORT = """\b
Examples:
  pumproom-agent buffer export -c site.yaml --csv out.csv
  pumproom-agent buffer export -c site.yaml --from 2026-12-05T08:00 --to 2026-12-05T09:00 \\
      --points p_out,flow --csv morning.csv

The buffer holds what the platform has not acknowledged yet (during an uplink outage: everything
since it began; otherwise the last seconds). Times are UTC (ISO 8601), --to exclusive. Columns:
seq, time (UTC), point, value, quality, reason."""

EPILOG_SCAN = """\b
Examples:
  pumproom-agent scan --port /dev/ttyUSB0                          # 9600,19200 x N,E, units 1-247
  pumproom-agent scan --port /dev/ttyUSB0 --baud all --units 1-30
  pumproom-agent scan --tcp 192.0.2.10 --units 1-10                # port 502

Prints each unit as it answers, with the device profiles that fit it; a progress bar (setting,
units done, ETA) on a terminal, progress lines otherwise. Exit 1 when no setting could be
opened."""
