"""``alarms:``: alarm rules per point, evaluated on the gateway (optional; absent = no alarms).

Shape::

    alarms:
      shelve_max_s: 28800            # longest alarm.shelve a command may ask for, s
      comm_loss_delay_s: 5           # a device (or a whole connection) without one good answer
                                     # for this long raises ONE summary alarm (flood control)
      groups:                        # flood control: one cause, one alarm
        - {cause: di.phase_ok.state, members: ["pump*.fault_code.fault"], window_s: 3}
      points:
        wq.chlorine:
          - {kind: low, limit: 0.05, deadband: 0.02, on_delay_s: 10, priority: high,
             code: CHLORINE_LOW, source: "GB 5749-2022 Table 2, free chlorine at the tap"}

Rule kinds (values in the point's engineering unit, times in s):

* ``high`` / ``high_high``: value > ``limit``; clears below ``limit − deadband``.
* ``low`` / ``low_low``: value < ``limit``; clears above ``limit + deadband``.
* ``state``: a digital or enumerated value equals ``state`` (door open, flood, phase failure).
* ``rate``: |Δvalue / Δt| between two good samples > ``limit`` (unit per s).
* ``stale``: no good sample for ``after_s``.
* ``frozen``: the value did not change by more than ``min_change`` for ``after_s`` while the
  ``moving`` point did (a stuck transmitter, domain.md §6.2); without ``moving``, a flat line.
* ``bad_quality``: every sample not good for ``on_delay_s`` (NAMUR NE 43 failure currents show
  as bad values through ``valid_min``/``valid_max``).
* ``fault``: a fault code register or status word, decoded by ``fault_map`` (a YAML file in
  ``config/faultmaps/``) into one common cause; active while the code is not "no fault".

Each rule's id is ``<point>.<name or kind>`` (e.g. ``wq.chlorine.low``); ``on_delay_s`` and
``off_delay_s`` debounce (a contact that chatters faster than the on-delay never raises).
Which points exist and what type they are is checked against ``devices:`` by
:func:`agent.config.checks_alarms.check_alarms`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from agent.config.schema import Name, Seconds, Strict

Priority = Literal["critical", "high", "medium", "low"]
"""ISA-18.2 / IEC 62682 style priorities, most urgent first."""
Kind = Literal[
    "high", "high_high", "low", "low_low", "state", "rate", "stale", "frozen", "bad_quality",
    "fault",
]  # fmt: skip
LIMIT_KINDS = ("high", "high_high", "low", "low_low")
VALUE_KINDS = (*LIMIT_KINDS, "rate", "frozen")
"""Kinds that compare numbers: refused on a boolean point."""
Code = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
NonNeg = Annotated[float, Field(ge=0)]


class AlarmRule(Strict):
    """One alarm rule on one point (see the module docstring for the kinds).

    Attributes:
        kind: what is compared.
        name: distinguishes two rules of one kind on one point (the id is ``point.name``).
        code: the event ``code`` (default: from the point and kind, e.g. ``WQ_CHLORINE_LOW``).
        priority: ``critical``, ``high``, ``medium`` or ``low``.
        limit: limit kinds: the limit, engineering units; ``rate``: units per second.
        deadband: hysteresis, engineering units (limit and rate kinds).
        on_delay_s / off_delay_s: the condition must hold this long to raise / to clear.
        state: ``state`` kind: the abnormal value (default ``true``).
        after_s: ``stale`` / ``frozen``: how long without a good sample / without change.
        moving: ``frozen``: the point whose change shows the process is moving.
        min_change: ``frozen``: changes up to this size count as no change.
        fault_map: ``fault``: name of a map in ``config/faultmaps/`` (without ``.yaml``).
        out_of_service: evaluated but never annunciated (ISA-18.2 out of service).
        source: where the limit comes from (standard clause, manual section), for people.
        description: free text.
    """

    kind: Kind
    name: Name | None = None
    code: Code | None = None
    priority: Priority = "medium"
    limit: float | None = None
    deadband: NonNeg = 0.0
    on_delay_s: NonNeg = 0.0
    off_delay_s: NonNeg = 0.0
    state: bool | int | None = None
    after_s: Seconds | None = None
    moving: Name | None = None
    min_change: NonNeg = 0.0
    fault_map: Name | None = None
    out_of_service: bool = False
    source: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _kind_keys(self) -> AlarmRule:
        k = self.kind
        if k in (*LIMIT_KINDS, "rate") and self.limit is None:
            raise ValueError(f"a '{k}' rule needs 'limit'")
        if k not in (*LIMIT_KINDS, "rate") and self.limit is not None:
            raise ValueError(f"'limit' belongs to limit and rate rules, not '{k}'")
        if k in ("stale", "frozen") and self.after_s is None:
            raise ValueError(f"a '{k}' rule needs 'after_s'")
        if k not in ("stale", "frozen") and self.after_s is not None:
            raise ValueError(f"'after_s' belongs to stale and frozen rules, not '{k}'")
        if k == "fault" and self.fault_map is None:
            raise ValueError("a 'fault' rule needs 'fault_map'")
        if k != "fault" and self.fault_map is not None:
            raise ValueError(f"'fault_map' belongs to fault rules, not '{k}'")
        if k != "state" and self.state is not None:
            raise ValueError(f"'state' belongs to state rules, not '{k}'")
        if k != "frozen" and self.moving is not None:
            raise ValueError(f"'moving' belongs to frozen rules, not '{k}'")
        return self

    @property
    def suffix(self) -> str:
        """The part of the id after the point name."""
        return self.name or self.kind


class AlarmGroup(Strict):
    """Flood control: while ``cause`` (a rule id) is active, and ``window_s`` after it clears,
    the ``members`` (rule ids, ``*`` and ``?`` wildcards) are not annunciated one by one: they
    are folded into the cause's alarm as ``affected`` points. Members wait at least
    ``window_s`` before they raise, so a cause read a poll later still catches them."""

    cause: Annotated[str, Field(min_length=1)]
    members: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    window_s: Annotated[float, Field(ge=0, le=60)] = 3.0


class AlarmsConfig(Strict):
    """``alarms:``.

    Attributes:
        shelve_max_s: longest shelving a command may ask for, s (default 8 h, one shift; at
            most 7 days). Shelving always has an expiry (ISA-18.2 §10.4 "shelving").
        comm_loss_delay_s: a device, or a connection of several devices, with no good sample
            for this long raises one ``COMM_LOST`` alarm whose ``affected`` lists its points;
            the per-point stale and bad-quality alarms of those points are folded into it.
            A floor applies: two poll intervals + 1 s, plus on a shared connection one response
            timeout per device on it (:mod:`agent.alarms.rules`).
        comm_loss_priority: priority of those alarms.
        groups: flood-control groups (:class:`AlarmGroup`).
        points: point name → its rules.
    """

    shelve_max_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 8 * 3600.0
    comm_loss_delay_s: Seconds = 5.0
    comm_loss_priority: Priority = "high"
    groups: list[AlarmGroup] = Field(default_factory=list)
    points: dict[Name, list[AlarmRule]] = Field(default_factory=dict)
