"""Command line: ``hil-sim run`` plays the pump room behind real Modbus/OPC UA servers.

The click group :func:`main` is the console script ``hil-sim``; other subcommands (``demo``) are
added to the same group.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time

import click

from hil_sim.scenario import load_scenario
from hil_sim.sim import SimOptions, Simulator


@click.group()
def main() -> None:
    """pumproom-edge hardware-in-the-loop simulator."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--modbus-tcp-port", default=15020, show_default=True, type=int)
@click.option("--opcua-port", default=14840, show_default=True, type=int)
@click.option(
    "--rtu-link",
    default="/tmp/pumproom-hil/ttyRTU0",
    show_default=True,
    help="Path where the pty's agent end appears (empty string: no RTU bus).",
)
@click.option(
    "--rtu-parity",
    default="N",
    show_default=True,
    type=click.Choice(["N", "E", "O"]),
    help=(
        "Parity the RTU bus is paced for. N by default: Linux refuses even/odd parity on a "
        "pseudo-terminal (tcsetattr EINVAL), so a client of the pty must open it 8N1."
    ),
)
@click.option("--control-port", default=15080, show_default=True, type=int)
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False), help="JSON-lines file.")
@click.option("--scenario", "scenario_path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--test-types",
    is_flag=True,
    help="Also serve the raw-value test bench (Modbus TCP unit 99, OPC UA Types.*); tests only.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--speed", default=1.0, show_default=True, type=click.FloatRange(0.01, 1000.0))
@click.option(
    "--step", "step_s", default=0.05, show_default=True, type=click.FloatRange(0.005, 1.0)
)
@click.option(
    "--start-time",
    default=None,
    help="Plant time of day at start, HH:MM (default: the local time now).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def run(
    host: str,
    modbus_tcp_port: int,
    opcua_port: int,
    rtu_link: str,
    rtu_parity: str,
    control_port: int,
    truth_path: str | None,
    scenario_path: str | None,
    test_types: bool,
    seed: int,
    speed: float,
    step_s: float,
    start_time: str | None,
    log_level: str,
) -> None:
    """Run the simulated pump room until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        scenario = load_scenario(scenario_path) if scenario_path else []
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"scenario: {exc}") from exc
    if start_time is None:
        now = time.localtime()
        start_tod = now.tm_hour * 3600.0 + now.tm_min * 60.0 + now.tm_sec
    else:
        try:
            hh, mm = start_time.split(":")
            start_tod = int(hh) * 3600.0 + int(mm) * 60.0
        except ValueError:
            raise click.BadParameter("expected HH:MM", param_hint="--start-time") from None
    options = SimOptions(
        host=host,
        modbus_tcp_port=modbus_tcp_port,
        opcua_port=opcua_port,
        rtu_link=rtu_link or None,
        rtu_parity=rtu_parity,
        control_port=control_port,
        truth_path=truth_path,
        scenario=scenario,
        seed=seed,
        speed=speed,
        step_s=step_s,
        start_time_of_day_s=start_tod,
        test_types=test_types,
    )
    try:
        asyncio.run(_run(options))
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc


def _say(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@main.command()
@click.option("--seconds", type=float, default=None, help="Stop after this long (default: Ctrl-C).")
def demo(seconds: float | None) -> None:
    """Run broker, simulator and agent together and show what the platform receives."""
    from hil_sim.demo import run_demo

    sys.exit(run_demo(seconds))


async def _run(options: SimOptions) -> None:
    sim = Simulator(options, announce=_say)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sim.request_stop)
    try:
        await sim.start()
        _say(sim.plant.summary())
        await sim.run()
    finally:
        await sim.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        _say("hil-sim stopped")


if __name__ == "__main__":
    main()
