"""``pumproom-agent``: the edge agent's command line.

Commands:
    ``pumproom-agent check -c FILE [--set KEY=VALUE ...]``
        Validate the configuration without touching any device. Exit 0 with
        ``ok: N devices, M points, K connections`` on stdout (and a
        ``FILE:LINE:COLUMN: warning: message`` line on stderr per warning), or exit 2 with one
        ``FILE:LINE:COLUMN: message`` line per problem on stderr.
    ``pumproom-agent scan | read | write | status | buffer export``
        The technician's tools, one module each in :mod:`agent.tools`.
    ``pumproom-agent buffer -c FILE [--json]``
        Show what the store-and-forward buffer holds (read-only).
    ``pumproom-agent profiles``
        List the shipped device profiles.
    ``pumproom-agent run -c FILE [--set KEY=VALUE ...] [--log-level LEVEL]``
        Load the configuration (same errors, exit 2), then run the agent
        (:func:`agent.app.run`) and exit with its return code.
"""

from __future__ import annotations

import signal
import sqlite3
import sys

import click

from agent import __version__
from agent.config import EXIT_CONFIG, ConfigError, Problem, SiteConfig, load_config
from agent.logs import configure as configure_logging
from agent.tools import options


def _load(config_path: str, overrides: tuple[str, ...]) -> SiteConfig:
    """Load the config; print problems (exit 2) or else warnings, one per line on stderr."""
    warnings: list[Problem] = []
    try:
        config = load_config(config_path, overrides, warnings)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_CONFIG)
    for warning in warnings:
        click.echo(str(warning), err=True)
    return config


_BUFFER_EPILOG = """\b
Examples:
  pumproom-agent buffer -c site.yaml            # samples and events waiting, oldest, newest
  pumproom-agent buffer -c site.yaml --json
  pumproom-agent buffer export -c site.yaml --csv waiting.csv"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Commissioning, in order:
  pumproom-agent scan --port /dev/ttyUSB0          # which units answer, which profile fits
  pumproom-agent read --port /dev/ttyUSB0 --unit 11 --address 0x3000 --count 8
  pumproom-agent check -c site.yaml                # the config, with FILE:LINE:COL errors
  pumproom-agent read -c site.yaml --device vfd1   # every configured point, decoded
  pumproom-agent run -c site.yaml                  # (systemd runs this)
  pumproom-agent status -c site.yaml               # the running agent's live state
Each command has -h with examples.""",
)
@click.version_option(__version__, "--version", prog_name="pumproom-agent")
def main() -> None:
    """Edge agent for secondary-water-supply booster pump rooms."""


@main.command(
    epilog="""\b
Example:
  pumproom-agent check -c /etc/pumproom-edge/site.yaml --set devices.cabinet.port=15021"""
)
@options.config()
@options.overrides
def check(config_path: str, overrides: tuple[str, ...]) -> None:
    """Validate the configuration; touch no device (exit 0, or 2 with FILE:LINE:COL lines)."""
    config = _load(config_path, overrides)
    click.echo(
        f"ok: {len(config.devices)} devices, {config.point_count} points, "
        f"{len(config.connections())} connections"
    )


@main.group(invoke_without_command=True, epilog=_BUFFER_EPILOG)
@click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Pump-room YAML file."
)
@options.overrides
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def buffer(
    ctx: click.Context, config_path: str | None, overrides: tuple[str, ...], as_json: bool
) -> None:
    """Show what the store-and-forward buffer holds (read-only; the agent may be running)."""
    import json

    from agent.buffer_info import render, summary

    if ctx.invoked_subcommand is not None:
        return
    if config_path is None:
        click.echo("buffer: -c/--config FILE is needed", err=True)
        sys.exit(EXIT_CONFIG)
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


@main.command(
    epilog="""\b
Example:
  pumproom-agent run -c /etc/pumproom-edge/site.yaml --log-level debug"""
)
@options.config()
@options.overrides
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
    # A reload (SIGHUP) that early finds nothing to reload yet: not a kill (the agent handles
    # SIGHUP from its start on: agent.app.run).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = _load(config_path, overrides)
    # asyncua at WARNING (it logs every read at INFO), its expected disconnects as DEBUG lines
    configure_logging(log_level)
    from agent.app import run as run_agent  # lazy: `check` needs none of the runtime

    sys.exit(run_agent(config, lambda: load_config(config_path, overrides)))


@main.command(
    epilog="""\b
Example:
  pumproom-agent profiles            # name, device family, points, manual sections"""
)
@click.option("-v", "--verbose", is_flag=True, help="Also list each profile's sources.")
def profiles(verbose: bool) -> None:
    """List the shipped device profiles (use one with `profile: NAME` in a device)."""
    from agent.config import profiles as profile_files

    for prof in profile_files.load_all():
        click.echo(profile_files.describe(prof))
        if verbose:
            for source in prof.sources:
                click.echo(f"    {source}")


def _register_tools() -> None:
    """The technician's commands, one module each under :mod:`agent.tools`."""
    from agent.tools.export import export_cmd
    from agent.tools.read import read
    from agent.tools.scan_cmd import scan
    from agent.tools.status_cmd import status
    from agent.tools.write import write

    for command in (read, write, status, scan):
        main.add_command(command)
    buffer.add_command(export_cmd)


_register_tools()

if __name__ == "__main__":
    main()
