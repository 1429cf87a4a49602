"""``pumproom-agent buffer export``: samples still in the store-and-forward buffer, as CSV.

Reads the SQLite buffer read-only with sqlite-utils (the agent may be running: WAL readers do
not block it). Only what the platform has not acknowledged is there: during an uplink outage
everything since it began, otherwise the last seconds (acknowledged rows are deleted). Columns:
``seq, time_utc, point, value, quality, reason`` (quality in words, see
:data:`agent.statuspage.render.QUALITY`).
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from agent.core.model import Quality
from agent.tools import options

_QUALITY = {q.value: q.name.lower() for q in Quality}


def parse_time(text: str) -> int:
    """ISO 8601 (``2026-12-05T08:00``, ``…Z``, ``…+08:00``; no zone = UTC) → UTC ms.

    Raises:
        click.BadParameter: not a time.
    """
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


class UnknownPoints(ValueError):
    """``--points`` names a point the buffer has never held (a typo, most often).

    Attributes:
        names: the unknown names; ``known``: the point names the buffer holds.
    """

    def __init__(self, names: Sequence[str], known: set[str]) -> None:
        hints = []
        for name in names:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        super().__init__(f"no point {', '.join(hints)} in the buffer")
        self.names, self.known = list(names), known


def export(
    buffer: str | Path, out: Path, t_from: int | None, t_to: int | None, points: Sequence[str]
) -> int:
    """Write the matching samples to ``out`` (CSV, oldest seq first); returns how many.

    Raises:
        FileNotFoundError: no buffer file.
        sqlite3.DatabaseError: not a buffer.
        UnknownPoints: a name in ``points`` that the buffer has never held (nothing written).
        OSError: ``out`` cannot be written.
    """
    path = Path(buffer)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no buffer file")
    where: list[str] = []
    params: list[int | str] = []
    if t_from is not None:
        where.append("s.ts >= ?")
        params.append(t_from)
    if t_to is not None:
        where.append("s.ts < ?")
        params.append(t_to)
    if points:
        where.append(f"p.name IN ({', '.join('?' for _ in points)})")
        params += list(points)
    sql = (
        "SELECT s.seq, s.ts, p.name, s.value, s.quality, s.reason FROM samples s"
        " JOIN points p ON p.id = s.point"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY s.seq"
    )
    import sqlite_utils  # lazy: ~0.1 s of every pumproom-agent command's start-up otherwise

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    n = 0
    try:
        db = sqlite_utils.Database(conn)
        known = {row["name"] for row in db.query("SELECT name FROM points")}
        unknown = [p for p in points if p not in known]
        if unknown:
            raise UnknownPoints(unknown, known)
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["seq", "time_utc", "point", "value", "quality", "reason"])
            for row in db.query(sql, params):
                when = dt.datetime.fromtimestamp(row["ts"] / 1000, dt.UTC)
                w.writerow([
                    row["seq"], when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    row["name"], "" if row["value"] is None else row["value"],
                    _QUALITY.get(row["quality"], row["quality"]), row["reason"] or "",
                ])  # fmt: skip
                n += 1
    finally:
        conn.close()
    return n


@click.command("export", epilog=options.EPILOG_EXPORT)
@options.config()
@options.overrides
@click.option("--from", "t_from", help="First sample time (UTC, ISO 8601), inclusive.")
@click.option("--to", "t_to", help="End time (UTC, ISO 8601), exclusive.")
@click.option("--points", help="Comma-separated point names (default: all).")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="Output.")
def export_cmd(
    config_path: str,
    overrides: tuple[str, ...],
    t_from: str | None,
    t_to: str | None,
    points: str | None,
    csv_path: str,
) -> None:
    """Export samples still in the buffer (not yet acknowledged by the platform) to CSV."""
    site = options.load_site(config_path, overrides)
    start = parse_time(t_from) if t_from else None
    end = parse_time(t_to) if t_to else None
    names = [p.strip() for p in points.split(",") if p.strip()] if points else []
    try:
        n = export(site.buffer.path, Path(csv_path), start, end, names)
    except UnknownPoints as exc:
        click.echo(f"buffer export: --points: {exc}", err=True)
        sys.exit(options.EXIT_CONFIG)
    except (OSError, sqlite3.Error) as exc:
        click.echo(f"buffer export: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{n} samples written to {csv_path}")
