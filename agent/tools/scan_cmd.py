"""``pumproom-agent scan``: which unit ids answer at which line settings, live.

Results go to stdout as each unit answers (with the profiles it fits, :func:`agent.scan.identify`).
Progress goes to stderr: on a terminal one redrawn bar line (setting, units done of the total,
ETA from the time per unit so far); otherwise a line at each setting's start and end and every
:data:`PROGRESS_EVERY_S` in between, so a log or a pipe shows a long scan is alive.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

import click

from agent import scan as scanner
from agent.config import EXIT_CONFIG
from agent.config import profiles as profile_files
from agent.tools import options
from agent.tools.target import MODBUS_PORT
from drivers.specs import ConnectionSpec

PROGRESS_EVERY_S = 5.0
BAR = 24


class Progress:
    """Progress of a whole scan over ``settings`` × ``units`` probes, to stderr."""

    def __init__(self, settings: int, units: int, tty: bool) -> None:
        self.total = settings * units
        self.units = units
        self.done = 0
        self.tty = tty
        self.started = time.monotonic()
        self.last_line = 0.0
        self.label = ""
        self.setting_done = 0

    def eta(self) -> str:
        if not self.done:
            return "?"
        left = (time.monotonic() - self.started) / self.done * (self.total - self.done)
        return f"{int(left // 60)}:{int(left % 60):02d}"

    def start(self, label: str) -> None:
        self.label = label
        self.setting_done = 0
        if not self.tty:
            eta = f", ETA {self.eta()}" if self.done else ""
            self._line(f"scan: {label}: probing {self.units} unit ids ({self.total} in all{eta})")

    def step(self) -> None:
        self.done += 1
        self.setting_done += 1
        now = time.monotonic()
        if self.tty:
            filled = int(BAR * self.done / max(self.total, 1))
            click.echo(
                f"\r[{'#' * filled}{'.' * (BAR - filled)}] {self.label}  unit "
                f"{self.setting_done}/{self.units}  all {self.done}/{self.total}  "
                f"ETA {self.eta()} ",
                nl=False,
                err=True,
            )
        elif now - self.last_line >= PROGRESS_EVERY_S:
            self._line(
                f"scan: {self.label}: {self.setting_done}/{self.units} units, "
                f"all {self.done}/{self.total}, ETA {self.eta()}"
            )

    def clear(self) -> None:
        """Before a result line on a terminal: remove the bar (it is drawn again next step)."""
        if self.tty:
            click.echo("\r\033[K", nl=False, err=True)

    def _line(self, text: str) -> None:
        self.last_line = time.monotonic()
        click.echo(text, err=True)


def run(specs: Sequence[ConnectionSpec], units: Sequence[int], tty: bool) -> int:
    """Scan every setting in turn, printing as it goes; returns how many settings opened."""
    profiles = profile_files.load_all()
    progress = Progress(len(specs), len(units), tty)

    def on_unit(unit: int, hit: scanner.Found | None) -> None:
        if hit is not None:
            progress.clear()
            click.echo(f"    {hit.line()}")
        progress.step()

    async def main() -> int:
        opened = 0
        for spec in specs:
            label = scanner.setting_label(spec)
            progress.start(label)
            found, error = await scanner.scan(spec, units, on_unit=on_unit, profiles=profiles)
            progress.clear()
            if error:
                progress.done += len(units) - progress.setting_done
                click.echo(f"{label}: cannot open: {error}")
                continue
            opened += 1
            click.echo(f"{label}: {len(found)} unit(s) answered")
        return opened

    opened = asyncio.run(main())
    progress.clear()
    click.echo(f"scan: done in {time.monotonic() - progress.started:.0f} s", err=True)
    return opened


@click.command("scan", epilog=options.EPILOG_SCAN)
@click.option("--port", "serial_port", help="Serial device of the RS-485 bus, e.g. /dev/ttyUSB0.")
@click.option("--tcp", "tcp_address", metavar="HOST[:PORT]", help="A Modbus TCP device (502).")
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
    """Find the Modbus devices on a bus: which unit ids answer at which line settings, and
    which device profile fits each."""
    try:
        unit_ids = scanner.parse_units(units)
        if bool(serial_port) == bool(tcp_address):
            raise ValueError("give exactly one of --port or --tcp")
        if tcp_address:
            host, sep, port = tcp_address.rpartition(":")
            if not sep:
                host, port = tcp_address, str(MODBUS_PORT)
            specs: list[ConnectionSpec] = [
                scanner.tcp_setting(host or "127.0.0.1", int(port), timeout_s)
            ]
        else:
            bauds = scanner.BAUD_RATES if baud == "all" else [int(b) for b in baud.split(",")]
            parities = [p.strip().upper() for p in parity.split(",")]
            if not set(parities) <= {"N", "E", "O"}:
                raise ValueError(f"--parity: N, E or O, got {parity!r}")
            assert serial_port is not None
            specs = list(scanner.rtu_settings(serial_port, bauds, parities, timeout_s))
    except ValueError as exc:
        click.echo(f"scan: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    if not run(specs, unit_ids, sys.stderr.isatty()):
        sys.exit(1)  # nothing was scanned at all: a script must not read that as "no devices"
