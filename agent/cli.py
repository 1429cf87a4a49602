"""``pumproom-agent``: the edge agent's command line.

Commands:
    ``pumproom-agent check -c FILE [--set KEY=VALUE ...]``
        Validate the configuration without touching any device. Exit 0 with
        ``ok: N devices, M points, K connections`` on stdout, or exit 2 with one
        ``FILE:LINE:COLUMN: message`` line per problem on stderr.
    ``pumproom-agent scan --port DEV | --tcp HOST:PORT [--baud ..] [--parity ..] [--units ..]``
        Find which Modbus unit ids answer, at which line settings (commissioning).
    ``pumproom-agent buffer -c FILE [--json]``
        Show what the store-and-forward buffer holds (read-only).
    ``pumproom-agent run -c FILE [--set KEY=VALUE ...] [--log-level LEVEL]``
        Load the configuration (same errors, exit 2), then run the agent
        (:func:`agent.app.run`) and exit with its return code.
"""

from __future__ import annotations

import signal
import sqlite3
import sys

import click

from agent.config import EXIT_CONFIG, ConfigError, SiteConfig, load_config
from agent.logs import configure as configure_logging

_config_option = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Pump-room YAML configuration file.",
)
_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a value, e.g. devices.cabinet.port=15021 (repeatable).",
)


def _load(config_path: str, overrides: tuple[str, ...]) -> SiteConfig:
    try:
        return load_config(config_path, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Edge agent for secondary-water-supply booster pump rooms."""


@main.command()
@_config_option
@_set_option
def check(config_path: str, overrides: tuple[str, ...]) -> None:
    """Validate the configuration; touch no device."""
    config = _load(config_path, overrides)
    click.echo(
        f"ok: {len(config.devices)} devices, {config.point_count} points, "
        f"{len(config.connections())} connections"
    )


@main.command()
@click.option("--port", "serial_port", help="Serial device of the RS-485 bus, e.g. /dev/ttyUSB0.")
@click.option("--tcp", "tcp_address", metavar="HOST:PORT", help="A Modbus TCP device or gateway.")
@click.option(
    "--baud", default="9600,19200", show_default=True, help="Baud rates to try, or 'all'."
)
@click.option("--parity", default="N,E", show_default=True, help="Parities to try (N, E, O).")
@click.option("--units", default="1-247", show_default=True, help="Unit ids, e.g. 1-30,100.")
@click.option("--timeout", "timeout_s", default=0.2, show_default=True, help="Per unit, seconds.")
def scan(
    serial_port: str | None,
    tcp_address: str | None,
    baud: str,
    parity: str,
    units: str,
    timeout_s: float,
) -> None:
    """Find the Modbus devices on a bus: which unit ids answer at which line settings.

    Exits 1 when no setting could be opened (no such port, connection refused), 2 on bad
    arguments."""
    from agent import scan as scanner

    try:
        unit_ids = scanner.parse_units(units)
        if bool(serial_port) == bool(tcp_address):
            raise ValueError("give exactly one of --port or --tcp")
        if tcp_address:
            host, _, port = tcp_address.rpartition(":")
            specs: list = [scanner.tcp_setting(host or "127.0.0.1", int(port), timeout_s)]
        else:
            bauds = scanner.BAUD_RATES if baud == "all" else [int(b) for b in baud.split(",")]
            parities = [p.strip().upper() for p in parity.split(",")]
            if not set(parities) <= {"N", "E", "O"}:
                raise ValueError(f"--parity: N, E or O, got {parity!r}")
            assert serial_port is not None
            specs = scanner.rtu_settings(serial_port, bauds, parities, timeout_s)
    except ValueError as exc:
        click.echo(f"scan: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    lines, opened = scanner.run_scan(specs, unit_ids)
    for line in lines:
        click.echo(line)
    if not opened:  # nothing was scanned at all: a script must not read that as "no devices"
        sys.exit(1)


@main.command()
@_config_option
@_set_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def buffer(config_path: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show what the store-and-forward buffer holds (read-only; the agent may be running)."""
    import json

    from agent.buffer_info import render, summary

    config = _load(config_path, overrides)
    try:
        info = summary(config.buffer.path)
    except FileNotFoundError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except (OSError, sqlite3.Error) as exc:
        click.echo(f"{config.buffer.path}: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(info, indent=2) if as_json else render(info))


@main.command()
@_config_option
@_set_option
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
def run(config_path: str, overrides: tuple[str, ...], log_level: str) -> None:
    """Load the configuration and run the agent until stopped."""
    # Until the agent installs its own handler nothing is buffered yet: a SIGTERM that early
    # (systemd stopping a unit that is still starting) is a clean exit, not a kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = _load(config_path, overrides)
    # asyncua at WARNING (it logs every read at INFO), its expected disconnects as DEBUG lines
    configure_logging(log_level)
    from agent.app import run as run_agent  # lazy: `check` needs none of the runtime

    sys.exit(run_agent(config))


if __name__ == "__main__":
    main()
