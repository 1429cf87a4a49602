"""The alarm engine: rules, their tracks and alarm records together; readings, time and operator
commands in, :class:`~agent.alarms.state.Transition`s out. Pure (no I/O, no clock of its own):
the runtime (:mod:`agent.alarms.runtime`) feeds it and persists what comes out.

Restart: the engine starts from the records persisted in the buffer. A restored alarm's
debounced condition starts as it was, so an alarm still active after the restart is not raised
twice, and one whose condition went away during the restart clears (after its off-delay) with
the first samples.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.alarms import state as sm
from agent.alarms.evaluate import Track, debounce, on_sample, on_time
from agent.alarms.rules import COMM_KIND, Spec
from agent.alarms.state import Alarm, Refused, State, Transition
from agent.core.model import Quality, Reading, Value

PRIORITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class AlarmEngine:
    """See the module docstring.

    Args:
        specs: compiled rules by id (:func:`agent.alarms.rules.compile_rules`).
        restored: alarm records from the buffer, by id (records of rules no longer configured
            are dropped).
        shelve_max_s: the bound of ``alarm.shelve``, s.
    """

    def __init__(
        self, specs: dict[str, Spec], restored: dict[str, Alarm], shelve_max_s: float
    ) -> None:
        self.specs = specs
        self.shelve_max_s = shelve_max_s
        self.alarms: dict[str, Alarm] = {}
        self.tracks: dict[str, Track] = {}
        self._by_point: dict[str, list[Spec]] = {}
        self._moved: dict[str, tuple[Value, float]] = {}
        """Point → (last good value, ``mono`` of its last change), for frozen rules."""
        for sid, s in specs.items():
            a = restored.get(sid) or Alarm(sid, s.point, s.kind, s.code, s.priority, unit=s.unit)
            a.code, a.priority, a.unit, a.rule = s.code, s.priority, s.unit, s.kind
            if s.out_of_service:
                a.state = State.OUT_OF_SERVICE
            elif a.state is State.OUT_OF_SERVICE:
                a.state = State.NORMAL
            self.alarms[sid] = a
            self.tracks[sid] = Track(raw=a.active, active=a.active)
            for p in {s.point, s.moving, *s.watch} - {None}:
                self._by_point.setdefault(str(p), []).append(s)

    # ---- inputs --------------------------------------------------------------------------------

    def observe(self, readings: Iterable[Reading], t_ms: int, mono: float) -> list[Transition]:
        """One poll's readings (taken at ``t_ms`` UTC ms, ``mono`` s)."""
        out: list[Transition] = []
        for r in readings:
            specs = self._by_point.get(r.point)
            if not specs:
                continue
            if r.quality is Quality.GOOD:
                last = self._moved.get(r.point)
                if last is None or last[0] != r.value:
                    self._moved[r.point] = (r.value, mono)
            for s in specs:
                t = self.tracks[s.id]
                on_sample(s, t, r.point, r.value, r.quality, r.reason, mono)
                self._step(s, t, t_ms, mono, out)
        return out

    def tick(self, t_ms: int, mono: float) -> list[Transition]:
        """Time passes: delays mature, stale/frozen/comm conditions, shelving expiries."""
        out: list[Transition] = []
        for sid, s in self.specs.items():
            t = self.tracks[sid]
            seen = self._moved.get(s.moving) if s.moving is not None else None
            moved = seen[1] if seen is not None else None
            on_time(s, t, mono, moved)
            changed = self._step(s, t, t_ms, mono, out)
            if not changed and t.folded and t.active and not self._holds(s, mono):
                t.folded = False  # the cause is gone, this condition is not: annunciate it
                self._condition(s, t, True, t_ms, out)
            tr = sm.expire(self.alarms[sid], t_ms)
            if tr is not None:
                out.append(tr)
        return out

    # ---- operator commands ---------------------------------------------------------------------

    def acknowledge(self, alarm_id: str, t_ms: int, by: str) -> Transition:
        """``alarm.ack``. Raises :class:`Refused` (INVALID_ARGUMENT for an unknown id)."""
        return sm.acknowledge(self._known(alarm_id), t_ms, by)

    def shelve(self, alarm_id: str, duration_s: float, t_ms: int, by: str) -> Transition:
        """``alarm.shelve`` for ``duration_s`` (0 < duration ≤ ``shelve_max_s``).

        Raises:
            Refused: INVALID_ARGUMENT (unknown id), OUT_OF_RANGE (duration), NOT_PERMITTED.
        """
        a = self._known(alarm_id)
        if not 0 < duration_s <= self.shelve_max_s:
            raise Refused(
                "OUT_OF_RANGE",
                {"reason": "duration_s out of bounds", "min": 0, "max": self.shelve_max_s,
                 "requested": duration_s},
            )  # fmt: skip
        return sm.shelve(a, t_ms, t_ms + int(duration_s * 1000), by)

    def unshelve(self, alarm_id: str, t_ms: int, by: str) -> Transition:
        """``alarm.unshelve``. Raises :class:`Refused`."""
        return sm.unshelve(self._known(alarm_id), t_ms, by)

    def _known(self, alarm_id: str) -> Alarm:
        a = self.alarms.get(alarm_id)
        if a is None:
            raise Refused("INVALID_ARGUMENT", {"reason": "unknown alarm", "alarm": alarm_id})
        return a

    # ---- outputs -------------------------------------------------------------------------------

    def active_list(self) -> list[Alarm]:
        """Alarms not in ``normal``, most urgent first, then newest first."""
        listed = [a for a in self.alarms.values() if a.annunciated]
        listed.sort(key=lambda a: -(a.raised_at or 0))
        listed.sort(key=lambda a: PRIORITY_ORDER.get(a.priority, 9))
        return listed

    # ---- internals -----------------------------------------------------------------------------

    def _holds(self, s: Spec, mono: float) -> bool:
        """Whether ``s``'s group cause folds it now: the cause's condition is there (raw or
        debounced) or cleared less than the window ago."""
        if s.cause is None or s.cause not in self.tracks:
            return False
        if s.kind == "bad_quality" and not self.tracks[s.id].comm:
            return False
        c = self.tracks[s.cause]
        cs = self.specs[s.cause]
        if cs.kind in (COMM_KIND, "stale"):
            on_time(cs, c, mono, None)  # its time condition as of now, not of the last tick
        recent = c.cleared_mono is not None and mono - c.cleared_mono <= s.window_s
        return c.raw or c.active or recent

    def _step(self, s: Spec, t: Track, t_ms: int, mono: float, out: list[Transition]) -> bool:
        """After a sample or tick: fold a member whose condition shows while its cause holds
        (at once: its own delay only guards against annunciating it alone), else debounce.
        True when the debounced condition changed."""
        if s.cause is not None and t.raw and not t.active and self._holds(s, mono):
            t.active, t.since = True, None
            self._fold(s, t)
            return True
        if debounce(s, t, mono):
            self._settle(s, t, t_ms, mono, out)
            return True
        return False

    def _fold(self, s: Spec, t: Track) -> None:
        assert s.cause is not None
        t.folded = True
        cause = self.tracks[s.cause]
        cause.affected.update(s.watch or ([s.point] if s.point else []))
        self.alarms[s.cause].detail["affected"] = sorted(cause.affected)

    def _settle(self, s: Spec, t: Track, t_ms: int, mono: float, out: list[Transition]) -> None:
        if t.active and s.cause is not None and self._holds(s, mono):
            self._fold(s, t)
            return
        if not t.active and t.folded:
            t.folded = False
            return
        self._condition(s, t, t.active, t_ms, out)

    def _condition(self, s: Spec, t: Track, active: bool, t_ms: int, out: list[Transition]) -> None:
        detail = dict(t.detail)
        if s.kind == COMM_KIND or t.affected:
            t.affected.update(s.watch)
            detail["affected"] = sorted(t.affected)
        if s.device:
            detail.setdefault("device", s.device)
        tr = sm.condition(self.alarms[s.id], active, t_ms, t.value, t.limit, detail)
        if not active:
            t.affected.clear()
        if tr is not None:
            out.append(tr)
