"""Ground truth: what really happened in the simulated pump room, as JSON lines.

:class:`TruthRecorder` is fed by the simulator once per plant step (on the event loop; cheap:
it only builds dicts) and hands lines to a writer thread through a bounded queue, so a slow
disk never blocks the loop. :func:`load_truth` reads the file back for the report.

File format, one JSON object per line, ``kind`` first:

* ``{"kind": "state", "t": wall_ms, "plant_s": s, "tod_s": s, "values": {point: value}}`` —
  every value of ``Simulator.truth()`` (every served point by the example config's name, plus
  ``plant.p_index``: the top-floor tap pressure, MPa gauge), every ``every_s`` wall seconds
  (default 1 s) and at the first step;
* ``{"kind": "change", "t", "plant_s", "tod_s", "values": {point: value}}`` — the non-float
  points (bits, integers, codes) that changed since the previous step, at the step they changed
  (so a pump start or a fault code is timed to one step, 50 ms by default, not to 1 s);
* ``{"kind": "event", "t": wall_ms, "plant_s": s, "name": str, "description": {...}}`` — one
  per entry of ``sim.event_log`` (scenario events, injected faults, control-port commands;
  a fault's end is ``name + ":end"``);
* ``{"kind": "end", "t", "plant_s", "lines": n, "dropped": n, "truncated": bool}`` — written on
  close: how many lines were written and how many were dropped (queue full or size bound).

``t`` is wall-clock UTC ms (the clock the agent stamps its samples with), ``plant_s`` plant
seconds since start, ``tod_s`` the plant's time of day (s since midnight). Bounds: the queue
holds ``queue_lines`` lines (default 10 000 ≈ 2.8 h of 1 s states); past ``max_bytes`` (default
256 MiB) only events and the end line are still written.
"""

from __future__ import annotations

import bisect
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

Number = bool | int | float


class TruthSource(Protocol):
    """What the recorder reads of the simulator (:class:`hil_sim.sim.Simulator`)."""

    event_log: list[tuple[int, float, str, dict[str, Any]]]

    def truth(self) -> dict[str, Number]: ...


class TruthRecorder:
    """Records states, changes and events of one run to ``path`` (appends).

    Args:
        path: the JSON-lines file.
        every_s: wall seconds between full states (> 0).
        max_bytes: size bound of what this recorder writes; past it, states and changes are
            dropped (counted in the end line).
        queue_lines: bound of lines waiting for the writer thread; a full queue drops (counted).

    Raises:
        ValueError: ``every_s`` or a bound not positive.
        OSError: the file cannot be opened (from :meth:`start`).
    """

    def __init__(
        self,
        path: str | Path,
        every_s: float = 1.0,
        max_bytes: int = 256 * 1024 * 1024,
        queue_lines: int = 10_000,
    ) -> None:
        if every_s <= 0 or max_bytes <= 0 or queue_lines <= 0:
            raise ValueError(f"truth {path}: every_s, max_bytes and queue_lines must be > 0")
        self.path = Path(path)
        self.every_ms = int(every_s * 1000)
        self.max_bytes = max_bytes
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_lines)
        self._thread: threading.Thread | None = None
        self._file: IO[str] | None = None
        self._next_state_ms = 0
        self._last: dict[str, Number] = {}
        self._events_seen = 0
        self.dropped = 0
        self.written = 0
        self.truncated = False
        self._last_t = (0, 0.0)

    def start(self) -> None:
        """Open the file and start the writer thread. Raises OSError."""
        self._file = open(self.path, "a", encoding="utf-8")  # closed by the writer thread
        self._thread = threading.Thread(target=self._write_loop, name="hil-sim-truth", daemon=True)
        self._thread.start()

    def record(self, sim: TruthSource, wall_ms: int, plant_s: float, tod_s: float) -> None:
        """Queue what this step has to say: new events, changed non-floats, a due state.
        Never blocks; a full queue drops the line and counts it."""
        if self._thread is None:
            return
        self._last_t = (wall_ms, plant_s)
        stamp = {"t": wall_ms, "plant_s": round(plant_s, 3), "tod_s": round(tod_s, 3)}
        log = sim.event_log
        for w_ms, p_s, name, desc in log[self._events_seen :]:
            self._put(
                {
                    "kind": "event",
                    "t": w_ms,
                    "plant_s": round(p_s, 3),
                    "name": name,
                    "description": desc,
                }
            )
        self._events_seen = len(log)
        values = sim.truth()
        if wall_ms >= self._next_state_ms:
            behind = wall_ms - self._next_state_ms >= self.every_ms  # first, or a stall
            self._next_state_ms = (wall_ms if behind else self._next_state_ms) + self.every_ms
            self._put({"kind": "state", **stamp, "values": values})
        else:
            changed = {
                k: v
                for k, v in values.items()
                if not isinstance(v, float) and (k not in self._last or self._last[k] != v)
            }
            if changed:
                self._put({"kind": "change", **stamp, "values": changed})
        self._last = values

    def _put(self, line: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout_s: float = 10.0) -> None:
        """Write the end line, stop the writer thread (bounded wait) and close the file."""
        if self._thread is None:
            return
        wall_ms, plant_s = self._last_t
        end = {"kind": "end", "t": wall_ms, "plant_s": round(plant_s, 3)}
        while True:  # the end line and the sentinel must get in: make room if need be
            try:
                self._queue.put({"end": end}, timeout=timeout_s)
                self._queue.put(None, timeout=timeout_s)
                break
            except queue.Full:
                self.dropped += 1
                self._queue.get_nowait()
        self._thread.join(timeout_s)
        self._thread = None

    def _write_loop(self) -> None:
        assert self._file is not None
        f, size = self._file, 0
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                while item is not None and not self._queue.empty():
                    item = self._queue.get_nowait()
                    batch.append(item)
                for line in batch:
                    if line is None:
                        return
                    if "end" in line:
                        line = {
                            **line["end"],
                            "lines": self.written + 1,
                            "dropped": self.dropped,
                            "truncated": self.truncated,
                        }
                    elif size > self.max_bytes and line["kind"] != "event":
                        self.truncated = True
                        self.dropped += 1
                        continue
                    text = json.dumps(line, separators=(",", ":")) + "\n"
                    f.write(text)
                    size += len(text)
                    self.written += 1
                f.flush()
        finally:
            f.close()
            self._file = None


@dataclass
class Truth:
    """A truth file read back. Lists are in file order (time order)."""

    states: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    _state_ts: list[int] = field(default_factory=list, repr=False)
    _tods: list[float] = field(default_factory=list, repr=False)

    @property
    def start_ms(self) -> int:
        """Wall ms of the first state. Raises ValueError when there is none."""
        if not self.states:
            raise ValueError("truth: no state line")
        return int(self.states[0]["t"])

    @property
    def stop_ms(self) -> int:
        """Wall ms of the last line recorded (state, change or end)."""
        last = [int(x["t"]) for x in (self.states[-1:] + self.changes[-1:])]
        if self.end:
            last.append(int(self.end["t"]))
        return max(last) if last else self.start_ms

    def series(self, key: str) -> list[tuple[int, Number]]:
        """(wall ms, value) of ``key`` from states and changes, in time order."""
        out = [(int(x["t"]), x["values"][key]) for x in self.states if key in x["values"]]
        out += [(int(x["t"]), x["values"][key]) for x in self.changes if key in x["values"]]
        return sorted(out, key=lambda p: p[0])

    def keys(self) -> set[str]:
        """Every point named in the states."""
        return {k for s in self.states for k in s["values"]}

    def event_ms(self, name: str) -> int:
        """Wall ms of the first event called ``name``. Raises KeyError naming what exists."""
        for e in self.events:
            if e["name"] == name:
                return int(e["t"])
        have = sorted({e["name"] for e in self.events})
        raise KeyError(f"no event {name!r} in the truth (events: {have or 'none'})")

    def speed(self) -> float:
        """Plant seconds per wall second over the run (1.0 when it cannot tell)."""
        if len(self.states) < 2:
            return 1.0
        a, b = self.states[0], self.states[-1]
        dt = (b["t"] - a["t"]) / 1000.0
        return (b["plant_s"] - a["plant_s"]) / dt if dt > 0 else 1.0

    def tod_at(self, wall_ms: float) -> float:
        """The plant's time of day (s since midnight, not wrapped) at wall time ``wall_ms``,
        linear between the two states around it (a compressed day, ``demand.day_speed``, moves
        the clock faster than plant time), extrapolated at the nearest segment's rate."""
        if not self.states:
            raise ValueError("truth: no state line")
        if len(self._state_ts) != len(self.states):  # cached: the plots ask once a sample
            self._state_ts = [s["t"] for s in self.states]
            self._tods = _unwrapped([float(s["tod_s"]) for s in self.states])
        ts, tods = self._state_ts, self._tods
        if len(ts) == 1:
            return tods[0] + (wall_ms - ts[0]) / 1000.0
        i = min(max(bisect.bisect_right(ts, wall_ms) - 1, 0), len(ts) - 2)
        dt = ts[i + 1] - ts[i]
        rate = (tods[i + 1] - tods[i]) / dt if dt > 0 else 0.0
        return tods[i] + (wall_ms - ts[i]) * rate


def _unwrapped(tods: list[float]) -> list[float]:
    """Times of day made monotonic across midnight (add 86 400 s at each wrap)."""
    out: list[float] = []
    offset = 0.0
    for i, t in enumerate(tods):
        if i and t + offset < out[-1] - 43_200:
            offset += 86_400.0
        out.append(t + offset)
    return out


def load_truth(path: str | Path) -> Truth:
    """Read a truth file written by :class:`TruthRecorder`.

    Raises:
        OSError: unreadable file.
        ValueError: a line that is not JSON or has no known ``kind``: names file and line.
    """
    truth = Truth()
    for n, line in _lines(Path(path)):
        try:
            obj = json.loads(line)
            kind = obj["kind"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a truth line ({exc})") from None
        if kind == "state":
            truth.states.append(obj)
        elif kind == "change":
            truth.changes.append(obj)
        elif kind == "event":
            truth.events.append(obj)
        elif kind == "end":
            truth.end = obj
        else:
            raise ValueError(f"{path}:{n}: unknown kind {kind!r}")
    return truth


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, line
