"""``hil-sim report`` and ``hil-sim record-uplink`` (added to the ``hil-sim`` group in
:mod:`hil_sim.cli`).

A run in three commands (the capture must run while the agent does: the report comes after)::

    hil-sim record-uplink --broker 127.0.0.1:1883 --site demo-site --out uplink.jsonl &
    hil-sim run --truth truth.jsonl --scenario normal-day.yaml     # and the agent, elsewhere
    hil-sim report --truth truth.jsonl --uplink uplink.jsonl --scenario normal-day.yaml --out rep/

``hil-sim run --capture-uplink FILE --broker HOST:PORT --site SITE`` does the first two in one.
"""

from __future__ import annotations

import signal
import sys
import threading

import click

from hil_sim.report import Report
from hil_sim.report.uplink import UplinkCapture


def parse_broker(value: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port). Raises click.BadParameter."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--broker")
    return host, int(port)


@click.command("record-uplink")
@click.option("--broker", required=True, help="HOST:PORT of the broker the agent publishes to.")
@click.option("--site", required=True, help="Site id (the agent's site.id).")
@click.option("--prefix", default="pumproom/v1", show_default=True, help="uplink.topic_prefix")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="JSONL file.")
@click.option("--seconds", type=float, default=None, help="Stop after this long (default: Ctrl-C).")
def record_uplink(broker: str, site: str, prefix: str, out: str, seconds: float | None) -> None:
    """Capture every message of SITE on the broker to a JSON-lines file, for the report."""
    host, port = parse_broker(broker)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cap = UplinkCapture(host, port, site, out, prefix=prefix).start()
    except (OSError, TimeoutError) as exc:
        raise click.ClickException(f"broker {broker}: {exc}") from exc
    click.echo(f"recording {cap.topic} from {broker} to {out}")
    sys.stdout.flush()
    stop.wait(seconds)
    cap.stop()
    click.echo(f"recorded {cap.count} messages ({cap.dropped} dropped over the size bound)")


@click.command("report")
@click.option("--truth", "truth_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--uplink",
    "uplink_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Capture of record-uplink / run --capture-uplink.",
)
@click.option("--broker", default=None, help="HOST:PORT: capture now, for --listen seconds.")
@click.option("--site", default=None, help="Site id (with --broker).")
@click.option("--listen", "listen_s", type=float, default=10.0, show_default=True)
@click.option("--scenario", "scenario_path", help="Scenario file or shipped name (normal-day …).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--band-mpa", type=float, default=None, help="Time-in-band band, MPa.")
@click.option("--skip", "skip_s", type=float, default=None, help="Window starts this many s in.")
@click.option("--until", "until_s", type=float, default=None, help="Window ends this many s in.")
@click.option("--no-plots", is_flag=True, help="HTML and JSON only (no matplotlib needed).")
def report(
    truth_path: str,
    uplink_path: str | None,
    broker: str | None,
    site: str | None,
    listen_s: float,
    scenario_path: str | None,
    out_dir: str,
    band_mpa: float | None,
    skip_s: float | None,
    until_s: float | None,
    no_plots: bool,
) -> None:
    """Compare the truth with what the agent uplinked: OUT/report.html, PNGs, report.json.
    Exit 1 when an expectation of the scenario fails."""
    from pathlib import Path

    from hil_sim.report import make_report

    if uplink_path is None:
        if broker is None or site is None:
            raise click.UsageError("give --uplink FILE, or --broker HOST:PORT and --site SITE")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        uplink_path = str(Path(out_dir) / "uplink.jsonl")
        host, port = parse_broker(broker)
        try:
            cap = UplinkCapture(host, port, site, uplink_path).start()
        except (OSError, TimeoutError) as exc:
            raise click.ClickException(f"broker {broker}: {exc}") from exc
        threading.Event().wait(listen_s)
        cap.stop()
    try:
        rep = make_report(
            truth_path,
            uplink_path,
            out_dir,
            scenario_path,
            band_mpa,
            skip_s,
            until_s,
            plots=not no_plots,
        )
    except (OSError, ValueError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    _print(rep)
    sys.exit(0 if rep.passed else 1)


@click.command("check")
@click.option("--scenario", "scenario_path", help="Scenario file or shipped name (normal-day …).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--seconds", type=float, default=None, help="Wall seconds (default: duration_s).")
@click.option("--speed", type=click.FloatRange(0.01, 1000.0), default=None)
@click.option(
    "--start-time",
    default=None,
    help="Plant time of day, HH:MM (default: the scenario's start_time, else 10:00).",
)
@click.option(
    "--agent-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Agent config (default: config/example.yaml of this checkout).",
)
@click.option("--no-agent", is_flag=True, help="Start no agent: the gateway under test is yours.")
@click.option("--site", default=None, help="Site id (default: a fresh one).")
@click.option("--no-plots", is_flag=True, help="HTML and JSON only (no matplotlib needed).")
def check(
    scenario_path: str | None,
    out_dir: str,
    seconds: float | None,
    speed: float | None,
    start_time: str | None,
    agent_config: str | None,
    no_agent: bool,
    site: str | None,
    no_plots: bool,
) -> None:
    """Broker, simulator, capture and agent for one scenario, then the report in OUT.
    Exit 1 when an expectation fails. SIGTERM stops everything it started, as Ctrl-C does."""
    import importlib.util
    import signal
    from pathlib import Path

    from hil_sim.report.check import EXAMPLE, run_check

    if not no_plots and importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(
            "the report's plots need matplotlib: pip install 'pumproom-edge[plots]' "
            "(into .venv: .venv/bin/pip install matplotlib), or give --no-plots"
        )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run_check's finally cleans up
    config = None if no_agent else Path(agent_config) if agent_config else EXAMPLE
    try:
        rep = run_check(
            Path(scenario_path) if scenario_path else None,
            Path(out_dir),
            seconds,
            speed,
            start_time,
            config,
            site,
            say=click.echo,
            plots=not no_plots,
        )
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    _print(rep)
    sys.exit(0 if rep.passed else 1)


def _print(rep: Report) -> None:
    if rep.figures.undecoded:
        click.echo(
            f"warning: {rep.figures.undecoded} captured messages were not JSON (CBOR "
            "telemetry?) and are left out of the figures"
        )
    for o in rep.outcomes:
        click.echo(f"{'PASS' if o.passed else 'FAIL'} expect[{o.index}] {o.item}: {o.measured}")
    click.echo(f"{'PASS' if rep.passed else 'FAIL'}: report in {rep.html}")
