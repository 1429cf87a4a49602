"""The demo's story: an evening peak, a low-pressure complaint, the operator's remote setpoint.

:class:`Story` is a state machine stepped once per frame with the top-floor pressure (the
simulator's truth) and the gateway's state; it acts through two callbacks (raise the demand on
the simulator's control port; send ``setpoint.set`` over MQTT) and writes one story line per
event. Pressures MPa, times s (monotonic).

Numbers (domain.md): the service level 0.10 MPa is the residential code's minimum at a household
draw-off ([S25], §1.6). The day setpoint 0.26 MPa is an energy-saving value that serves this
~6-storey zone at ordinary flow (top floor ≈ 0.11 MPa: 15 m lift,
:class:`hil_sim.hydraulics.Riser`) but not at an evening peak of 4 × the diurnal mean at 17:00
(≈ 27 m³/h required, about §5.2's design instantaneous flow of 26 m³/h for 200 households, which
the three pumps carry), when riser friction takes another ≈ 0.04 MPa and the top floor falls to
≈ 0.07 MPa. The operator raises the setpoint by 0.10 MPa, the largest step ``control.remote``
allows in the demo config (within §1.6's 0.25–0.45 MPa for 6–15-storey zones).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Phase(enum.Enum):
    """Where the story is."""

    CALM = "calm"
    PEAK = "peak"
    COMMAND = "command"
    RECOVERED = "recovered"
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class StoryParams:
    """The story's numbers (see the module docstring for their sources)."""

    day_setpoint_mpa: float = 0.26
    operator_setpoint_mpa: float = 0.36
    service_mpa: float = 0.10
    peak_demand_factor: float = 4.0
    calm_s: float = 6.0
    confirm_s: float = 3.0
    """The top floor must stay below (complaint) or at/above (recovered) the service level
    this long."""
    give_up_s: float = 90.0


@dataclass
class Story:
    """Step with :meth:`step`; read :attr:`lines`."""

    set_demand: Callable[[float], None]
    send_setpoint: Callable[[float, str], str]
    answers_for: Callable[[str], list[dict[str, Any]]]
    params: StoryParams = field(default_factory=StoryParams)
    phase: Phase = Phase.CALM
    lines: list[str] = field(default_factory=list)
    cid: str | None = None
    _since: float | None = None
    _mark: float | None = None
    _complaint_at: float | None = None
    _seen_answers: int = 0

    def say(self, text: str) -> None:
        """Append a story line stamped with the wall clock."""
        self.lines.append(f"{time.strftime('%H:%M:%S')} {text}")

    def step(self, now: float, top_mpa: float | None, ready: bool) -> None:
        """Advance. ``top_mpa``: top-floor pressure now (None: unknown); ``ready``: the gateway
        is online and its control loop holds the day setpoint."""
        p = self.params
        if self.phase is Phase.CALM:
            if not ready:
                self._since = None
                return
            if self._since is None:
                self._since = now
                self.say(f"gateway online, local control at {p.day_setpoint_mpa:.2f} MPa")
            elif now - self._since >= p.calm_s:
                self.set_demand(p.peak_demand_factor)
                self.say(f"evening peak: demand x{p.peak_demand_factor:g} (simulator)")
                self.phase, self._since, self._mark = Phase.PEAK, now, None
        elif self.phase is Phase.PEAK:
            if top_mpa is not None and top_mpa < p.service_mpa:
                self._mark = self._mark if self._mark is not None else now
                if now - self._mark >= p.confirm_s:
                    self._complaint_at = now
                    self.say(
                        f"COMPLAINT: top floor {top_mpa:.3f} MPa < {p.service_mpa:.2f} MPa "
                        "service level"
                    )
                    self.cid = self.send_setpoint(
                        p.operator_setpoint_mpa, "low-pressure complaint, top floor"
                    )
                    self.say(
                        f"operator -> setpoint.set {p.operator_setpoint_mpa:.2f} MPa "
                        f"(id {self.cid}) sent"
                    )
                    self.phase, self._mark = Phase.COMMAND, None
            else:
                self._mark = None
            self._give_up(now, "no complaint: the top floor held")
        elif self.phase is Phase.COMMAND:
            self._report_answers()
            if top_mpa is not None and top_mpa >= p.service_mpa:
                self._mark = self._mark if self._mark is not None else now
                if now - self._mark >= p.confirm_s and self._complaint_at is not None:
                    took = self._mark - self._complaint_at
                    self.say(
                        f"RECOVERED: top floor {top_mpa:.3f} MPa, {took:.1f} s after the complaint"
                    )
                    self.phase = Phase.RECOVERED
            else:
                self._mark = None
            self._give_up(now, "the top floor did not recover")
        elif self.phase is Phase.RECOVERED:
            self._report_answers()

    def _give_up(self, now: float, why: str) -> None:
        if self._since is not None and now - self._since > self.params.give_up_s:
            self.say(f"story stopped: {why} within {self.params.give_up_s:.0f} s")
            self.phase = Phase.GAVE_UP

    def _report_answers(self) -> None:
        if self.cid is None:
            return
        answers = self.answers_for(self.cid)
        for a in answers[self._seen_answers :]:
            detail = a.get("detail") or a.get("result") or {}
            extra = ""
            if "from" in detail and "to" in detail:
                extra = f" ({detail['from']} -> {detail['to']} MPa)"
            elif detail:
                extra = " " + ", ".join(f"{k}={v}" for k, v in detail.items())
            self.say(f"<- {a.get('phase')} {a.get('status')} {a.get('code')}{extra}")
        self._seen_answers = len(answers)
