"""Command line: ``hil-sim run`` plays the pump room behind real Modbus/OPC UA servers.

The click group :func:`main` is the console script ``hil-sim``; other subcommands (``demo``,
``fleet``: :mod:`hil_sim.fleet`) are added to the same group.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time

import click

from hil_sim.scenario import ScenarioError, load_scenario
from hil_sim.sim import SimOptions, Simulator


def _time_of_day(text: str) -> float:
    """``--start-time HH:MM`` → seconds after midnight. Raises click.BadParameter."""
    try:
        hh, mm = text.split(":")
        return int(hh) * 3600.0 + int(mm) * 60.0
    except ValueError:
        raise click.BadParameter("expected HH:MM", param_hint="--start-time") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
@click.option(
    "--truth-every",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600.0),
    help="Wall seconds between full states in the --truth file (hil_sim/truth.py).",
)
@click.option("--capture-uplink", type=click.Path(dir_okay=False), help="Record the broker too.")
@click.option("--broker", default=None, help="HOST:PORT for --capture-uplink.")
@click.option("--site", default=None, help="Site id for --capture-uplink.")
@click.option("--control-port", default=15080, show_default=True, type=int)
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False), help="JSON-lines file.")
@click.option(
    "--scenario",
    "scenario_path",
    help="Scenario file, or the name of a shipped one (hil_sim/scenarios/NAME.yaml); its "
    "speed, seed and start_time apply unless given here.",
)
@click.option(
    "--test-types",
    is_flag=True,
    help="Also serve the raw-value test bench (Modbus TCP unit 99, OPC UA Types.*); tests only.",
)
@click.option("--seed", default=None, type=int, help="[default: scenario's, else 0]")
@click.option(
    "--speed",
    default=None,
    type=click.FloatRange(0.01, 1000.0),
    help="[default: scenario's, else 1]",
)
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
    seed: int | None,
    speed: float | None,
    step_s: float,
    start_time: str | None,
    log_level: str,
    truth_every: float,
    capture_uplink: str | None,
    broker: str | None,
    site: str | None,
) -> None:
    """Run the simulated pump room until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        scenario = load_scenario(scenario_path) if scenario_path else None
    except (OSError, ScenarioError) as exc:
        raise click.ClickException(f"scenario: {exc}") from exc
    if start_time is None and scenario is not None and scenario.start_time_s is not None:
        start_tod = scenario.start_time_s
    elif start_time is None:
        now = time.localtime()
        start_tod = now.tm_hour * 3600.0 + now.tm_min * 60.0 + now.tm_sec
    else:
        start_tod = _time_of_day(start_time)
    options = SimOptions(
        host=host,
        modbus_tcp_port=modbus_tcp_port,
        opcua_port=opcua_port,
        rtu_link=rtu_link or None,
        rtu_parity=rtu_parity,
        control_port=control_port,
        truth_path=truth_path,
        scenario=scenario,
        seed=seed if seed is not None else (scenario and scenario.seed) or 0,
        speed=speed if speed is not None else (scenario and scenario.speed) or 1.0,
        step_s=step_s,
        start_time_of_day_s=start_tod,
        test_types=test_types,
        truth_every_s=truth_every,
    )
    capture = None
    if capture_uplink:
        from hil_sim.report.cli import parse_broker
        from hil_sim.report.uplink import UplinkCapture

        if not broker or not site:
            raise click.UsageError("--capture-uplink needs --broker HOST:PORT and --site SITE")
        try:
            capture = UplinkCapture(*parse_broker(broker), site, capture_uplink).start()
        except (OSError, TimeoutError) as exc:
            raise click.ClickException(f"--capture-uplink: broker {broker}: {exc}") from exc
    try:
        asyncio.run(_run(options))
    except ScenarioError as exc:
        raise click.ClickException(f"scenario: {exc}") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc
    finally:
        if capture is not None:
            capture.stop()


def _say(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@main.command()
@click.option("--seconds", type=float, default=None, help="Stop after this long (default: Ctrl-C).")
def demo(seconds: float | None) -> None:
    """Run broker, simulator and agent together and show what the platform receives."""
    from hil_sim.demo import run_demo

    sys.exit(run_demo(seconds))


@main.command()
@click.option("--rooms", required=True, type=click.IntRange(1, 5000), help="Number of rooms.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the rooms' draws.")
@click.option(
    "--out",
    default="hil-fleet",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for room-NNN/agent.yaml and fleet.json.",
)
@click.option(
    "--base-port",
    default=16000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Room i's Modbus TCP port is P+i-1 (OPC UA: P+1000+i-1); 0: free ports.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--rtu", is_flag=True, help="RS-485 units on a pty per room, not behind the gateway.")
@click.option("--opcua", is_flag=True, help="One OPC UA server per room (heavy).")
@click.option("--site-prefix", default="fleet", show_default=True, help="Sites PREFIX-001...")
@click.option("--broker", default="mqtt://127.0.0.1:1883", show_default=True, help="For configs.")
@click.option(
    "--status-base-port",
    default=18080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Agent i's status page port is S+i-1; 0: status pages off.",
)
@click.option("--start-time", default="10:00", show_default=True, help="Plant time of day, HH:MM.")
def fleet(
    rooms: int,
    seed: int,
    out: str,
    base_port: int,
    host: str,
    rtu: bool,
    opcua: bool,
    site_prefix: str,
    broker: str,
    status_base_port: int,
    start_time: str,
) -> None:
    """Run N pump rooms (plants and device servers) and write one agent config per room."""
    from pathlib import Path

    from hil_sim.fleet import FleetOptions, serve

    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start_tod = _time_of_day(start_time)
    options = FleetOptions(
        rooms=rooms,
        seed=seed,
        base_port=base_port,
        host=host,
        rtu_dir=Path(out).resolve() if rtu else None,
        opcua=opcua,
        out=Path(out),
        site_prefix=site_prefix,
        broker=broker,
        status_base_port=status_base_port or None,
        start_time_of_day_s=start_tod,
    )
    try:
        asyncio.run(serve(options, _say))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"fleet: {exc}") from exc


def _add_report_commands() -> None:
    from hil_sim.report.cli import check, record_uplink, report

    main.add_command(report)
    main.add_command(record_uplink)
    main.add_command(check)


_add_report_commands()


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
