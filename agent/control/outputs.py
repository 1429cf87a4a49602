"""Control outputs as desired state, confirmed by read-back: a write is believed only once the
device's polled value says so.

Every control output of the loop (the cabinet's mode register, its setpoint and run enable,
each drive's run command and frequency reference) is an :class:`Output`: the loop says what it
*wants* (:meth:`OutputSet.want`) each tick, and :meth:`OutputSet.sync` compares it with what
the poller last *observed* in the latest-value cache:

* the first write goes out at once (through the connection's :class:`~agent.control.io.Writer`);
* an output whose observed value does not match is rewritten every ``retry_s`` — a device that
  was silent, refused or lost the write gets it again — and counted;
* after ``max_tries × retry_s`` without a confirming poll the output is ``failed``: the loop
  raises an ``output_failed`` event (alarm, severity high) and applies its fallback; it keeps
  retrying every ``retry_s × max_tries`` and raises ``output_confirmed`` when the device reads
  back what was wanted.

A value matches when a good poll reads the wanted value, or one of the values wanted within the
last ``window_s`` (a frequency reference changes every tick; its poll lags), to within the
larger of the output's tolerance and half the register's resolution (``spec.scale``).
Same-value rewrites every ``refresh_s`` keep a drive's communication watchdog fed (Danfoss 8-03
control timeout [S29], domain.md §2).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.control.io import Writer
from agent.core.cache import Cache
from agent.core.model import Quality
from drivers.base import Driver
from drivers.specs import PointSpec

OutputMap = Mapping[str, tuple[Driver, PointSpec]]
"""Point name → (the driver its poller uses, its spec)."""


class OutputState(enum.StrEnum):
    """Where an output stands: written but not yet read back, read back, or given up on."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Confirm:
    """Retry policy of the outputs.

    Attributes:
        retry_s: rewrite an unconfirmed output this often, s; must exceed the written point's
            poll interval plus its write timeout (checked by ``check``).
        max_tries: rewrites without a confirming poll before the output is ``failed``.
        window_s: how long a wanted value still counts as confirmed by a later poll, s.
    """

    retry_s: float = 2.0
    max_tries: int = 3
    window_s: float = 5.0


@dataclass(slots=True)
class Output:
    """One output's desired and observed state (see the module docstring).

    Attributes:
        name: point name; spec, writer: where it is written.
        desired: the value wanted now (``None`` = nothing wanted yet).
        tolerance: a new wanted value within this of the last one is not rewritten (units of
            the point).
        refresh_s: rewrite the same value this often (``None`` = never, e.g. a mode switch).
        history: ``(time s, value)`` of the values wanted within ``window_s``.
        last_write_s: time of the last write, s (monotonic).
        tries: rewrites since the last confirmation.
        pending_since: since when the output has not been confirmed, s (monotonic).
        state: :class:`OutputState`.
        observed: the last good polled value, or ``None``.
    """

    name: str
    spec: PointSpec
    writer: Writer
    desired: float | None = None
    tolerance: float = 0.0
    refresh_s: float | None = None
    history: deque[tuple[float, float]] = field(default_factory=deque)
    last_write_s: float = -math.inf
    tries: int = 0
    pending_since: float = 0.0
    state: OutputState = OutputState.PENDING
    observed: float | None = None

    def matches(self, value: float) -> bool:
        """Whether a polled ``value`` confirms what was wanted."""
        resolution = abs(self.spec.scale) / 2.0 if _scaled(self.spec) else 0.0
        tol = max(self.tolerance, resolution)
        return any(abs(value - v) <= tol + 1e-9 for _t, v in self.history)


def _scaled(spec: PointSpec) -> bool:
    return spec.scale != 1.0


@dataclass(frozen=True, slots=True)
class Transition:
    """An output that changed between ``confirmed`` and ``failed`` this tick."""

    name: str
    state: OutputState
    desired: float | None
    observed: float | None
    tries: int


class OutputSet:
    """The loop's outputs (see the module docstring).

    Args:
        outputs: point name → (driver, spec) for writes.
        writers: driver id → its :class:`Writer`.
        cache: the latest-value cache the read-backs come from.
        confirm: retry policy.
    """

    def __init__(
        self, outputs: OutputMap, writers: Mapping[int, Writer], cache: Cache, confirm: Confirm
    ) -> None:
        self.outputs = outputs
        self.writers = writers
        self.cache = cache
        self.confirm = confirm
        self.items: dict[str, Output] = {}

    def want(
        self,
        name: str | None,
        value: float,
        now: float,
        *,
        tolerance: float = 0.0,
        refresh_s: float | None = None,
        force: bool = False,
    ) -> None:
        """Want ``value`` on point ``name`` from now on (a no-op for an unknown point).

        Written at once when it differs from the last wanted value by more than ``tolerance``
        (or ``force``), or ``refresh_s`` after the last write."""
        if name is None or name not in self.outputs:
            return
        out = self.items.get(name)
        if out is None:
            driver, spec = self.outputs[name]
            out = self.items[name] = Output(name, spec, self.writers[id(driver)])
            out.pending_since = now
        out.tolerance, out.refresh_s = tolerance, refresh_s
        changed = out.desired is None or abs(value - out.desired) > tolerance + 1e-12
        if changed or force:
            out.desired = value
            out.history.append((now, value))
            if changed and out.state is OutputState.CONFIRMED:
                out.state, out.pending_since = OutputState.PENDING, now
            self._write(out, now)
        elif refresh_s is not None and now - out.last_write_s >= refresh_s:
            self._write(out, now)

    def confirmed(self, name: str | None) -> bool:
        """Whether ``name``'s wanted value has been read back (False if nothing is wanted)."""
        out = self.items.get(name or "")
        return out is not None and out.state is OutputState.CONFIRMED

    def failed(self, name: str | None) -> bool:
        """Whether ``name`` could not be confirmed within ``max_tries`` rewrites."""
        out = self.items.get(name or "")
        return out is not None and out.state is OutputState.FAILED

    def forget(self, name: str | None) -> None:
        """Stop wanting anything on ``name`` (e.g. a pump that no longer runs)."""
        self.items.pop(name or "", None)

    def sync(self, now: float) -> list[Transition]:
        """Compare every wanted value with its latest poll; rewrite what is unconfirmed and due.

        A confirmed output stays confirmed until a good poll reads something else (a poll that
        failed is no evidence either way) or a new value is wanted. Returns the outputs that
        became ``failed`` or, after a failure, ``confirmed``."""
        c = self.confirm
        changes: list[Transition] = []
        for out in self.items.values():
            while len(out.history) > 1 and now - out.history[0][0] > c.window_s:
                out.history.popleft()
            latest = self.cache.get(out.name)
            if (
                latest is not None
                and latest.quality is Quality.GOOD
                and isinstance(latest.value, int | float)
            ):
                out.observed = float(latest.value)
                if out.matches(out.observed) and latest.mono >= out.history[0][0]:
                    if out.state is OutputState.FAILED:
                        changes.append(self._transition(out, OutputState.CONFIRMED))
                    out.state, out.tries = OutputState.CONFIRMED, 0
                    continue
                if out.state is OutputState.CONFIRMED and not out.matches(out.observed):
                    out.state, out.pending_since = OutputState.PENDING, now
            if out.state is OutputState.CONFIRMED:
                continue
            failed = out.state is OutputState.FAILED
            if now - out.last_write_s >= c.retry_s * (c.max_tries if failed else 1):
                out.tries += 1
                self._write(out, now)
            if not failed and now - out.pending_since >= c.retry_s * c.max_tries:
                out.state = OutputState.FAILED
                changes.append(self._transition(out, OutputState.FAILED))
        return changes

    def summary(self) -> dict[str, dict[str, object]]:
        """Per output: wanted, observed, state, tries, and whether its writer works now."""
        return {
            name: {
                "desired": out.desired,
                "observed": out.observed,
                "state": str(out.state),
                "tries": out.tries,
                "writer_ok": out.writer.healthy,
            }
            for name, out in self.items.items()
        }

    def _write(self, out: Output, now: float) -> None:
        if out.desired is None:
            return
        out.last_write_s = now
        value: float | int = out.desired
        if float(value).is_integer() and not _scaled(out.spec):
            value = int(value)
        out.writer.put(out.spec, value)

    @staticmethod
    def _transition(out: Output, state: OutputState) -> Transition:
        return Transition(out.name, state, out.desired, out.observed, out.tries)
