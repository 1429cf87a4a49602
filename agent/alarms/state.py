"""The alarm state machine, in the style of ISA-18.2 / IEC 62682 (pure: state in, transition out).

States (ANSI/ISA-18.2-2016 §11.5 "alarm state transition diagram")::

    normal ──condition──► unack_active ──ack──► ack_active ──clears──► normal
                              │                                       ▲
                              └──clears──► rtn_unack ──ack────────────┘
                                             └──condition──► unack_active (raised again)

    any (but out_of_service) ──alarm.shelve(until)──► shelved ──unshelve / expiry──►
        unack_active when the condition is active, else normal
    out_of_service: configured (``out_of_service: true``); evaluated, never annunciated.

A shelved or out-of-service alarm follows its condition silently (``active``), so unshelving
annunciates it at once when the condition is still there. Shelving always has an expiry (the
command bounds it). Every change of state is one :class:`Transition`; none for a condition that
does not change the state (so an alarm restored after a restart, still active, is not raised
twice).

Times are wall-clock UTC ms (events and the retained status carry them).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agent.core.model import Value


class State(enum.StrEnum):
    """ISA-18.2 alarm states (see the module docstring)."""

    NORMAL = "normal"
    UNACK_ACTIVE = "unack_active"
    ACK_ACTIVE = "ack_active"
    RTN_UNACK = "rtn_unack"
    SHELVED = "shelved"
    OUT_OF_SERVICE = "out_of_service"


class What(enum.StrEnum):
    """What a transition did (the event's ``transition``)."""

    RAISED = "raised"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    SHELVE_EXPIRED = "shelve_expired"


class Refused(Exception):
    """A command the state does not allow: ``code`` (command result code) and ``detail``."""

    def __init__(self, code: str, detail: dict[str, Any]) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


@dataclass(slots=True)
class Alarm:
    """One alarm's record (persisted in the buffer, listed in the retained status).

    Attributes:
        id: rule id, ``<point>.<kind or name>`` or ``comm.<device>``.
        point: the point it watches (``None`` for a device or connection alarm).
        rule: the rule kind (``low``, ``state``, ``comm_lost``...).
        code: event code, e.g. ``CHLORINE_LOW``.
        priority: ``critical``, ``high``, ``medium`` or ``low``.
        state: :class:`State`.
        active: the (debounced) condition.
        value: the value that raised or cleared it (engineering units).
        limit: the limit it was compared with (``None`` when there is none).
        unit: the point's unit.
        raised_at / acked_at / cleared_at: UTC ms of the last raise, acknowledgement, clear.
        acked_by: who acknowledged.
        shelved_until: UTC ms when a shelving ends; shelved_by: who shelved.
        detail: kind-specific facts (fault ``cause`` and ``vendor`` code, ``affected`` points).
    """

    id: str
    point: str | None
    rule: str
    code: str
    priority: str
    state: State = State.NORMAL
    active: bool = False
    value: Value = None
    limit: float | None = None
    unit: str | None = None
    raised_at: int | None = None
    acked_at: int | None = None
    acked_by: str | None = None
    cleared_at: int | None = None
    shelved_until: int | None = None
    shelved_by: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (state as its string)."""
        out = asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alarm:
        """The inverse of :meth:`to_json`; unknown keys are ignored (an older record)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["state"] = State(known.get("state", "normal"))
        return cls(**known)

    @property
    def annunciated(self) -> bool:
        """Whether it belongs in the active alarm list (anything but normal)."""
        return self.state is not State.NORMAL


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of an alarm's state: ``what`` happened at ``t`` (UTC ms), by ``by`` (a
    command's principal, or ``None``); ``alarm`` is a copy of the record after it."""

    what: What
    t: int
    alarm: Alarm
    by: str | None = None


def _after(a: Alarm, what: What, t: int, by: str | None = None) -> Transition:
    return Transition(what, t, replace(a, detail=dict(a.detail)), by)


def condition(
    a: Alarm, active: bool, t: int, value: Value, limit: float | None, detail: dict[str, Any]
) -> Transition | None:
    """The debounced condition is now ``active`` (with the ``value`` and ``limit`` behind it).
    Returns the transition, or ``None`` when the state does not change."""
    if active == a.active:
        return None
    a.active = active
    a.value, a.limit = value, limit
    if active:
        a.detail = dict(detail)
    else:
        a.detail.update(detail)
    s = a.state
    if s in (State.SHELVED, State.OUT_OF_SERVICE):
        return None  # followed silently
    if active and s in (State.NORMAL, State.RTN_UNACK):
        a.state, a.raised_at, a.acked_at, a.acked_by, a.cleared_at = (
            State.UNACK_ACTIVE, t, None, None, None
        )  # fmt: skip
        return _after(a, What.RAISED, t)
    if not active and s is State.UNACK_ACTIVE:
        a.state, a.cleared_at = State.RTN_UNACK, t
        return _after(a, What.CLEARED, t)
    if not active and s is State.ACK_ACTIVE:
        a.state, a.cleared_at = State.NORMAL, t
        return _after(a, What.CLEARED, t)
    return None


def acknowledge(a: Alarm, t: int, by: str) -> Transition:
    """``alarm.ack``: unack_active → ack_active, rtn_unack → normal.

    Raises:
        Refused: NOT_PERMITTED when there is nothing to acknowledge (normal, already
            acknowledged, shelved, out of service).
    """
    if a.state is State.UNACK_ACTIVE:
        a.state = State.ACK_ACTIVE
    elif a.state is State.RTN_UNACK:
        a.state = State.NORMAL
    else:
        raise Refused(
            "NOT_PERMITTED", {"reason": "nothing to acknowledge", "alarm": a.id, "state": a.state}
        )
    a.acked_at, a.acked_by = t, by
    return _after(a, What.ACKNOWLEDGED, t, by)


def shelve(a: Alarm, t: int, until: int, by: str) -> Transition:
    """``alarm.shelve``: suppress until ``until`` (UTC ms; the caller bounds it).

    Raises:
        Refused: NOT_PERMITTED for an out-of-service alarm.
    """
    if a.state is State.OUT_OF_SERVICE:
        raise Refused("NOT_PERMITTED", {"reason": "out of service", "alarm": a.id})
    a.state, a.shelved_until, a.shelved_by = State.SHELVED, until, by
    return _after(a, What.SHELVED, t, by)


def unshelve(a: Alarm, t: int, by: str | None, *, expired: bool = False) -> Transition:
    """End a shelving (``alarm.unshelve`` or, with ``expired``, its expiry): an active
    condition is annunciated again as unacknowledged (raised now), else normal.

    Raises:
        Refused: NOT_PERMITTED when the alarm is not shelved.
    """
    if a.state is not State.SHELVED:
        raise Refused("NOT_PERMITTED", {"reason": "not shelved", "alarm": a.id, "state": a.state})
    a.shelved_until = a.shelved_by = None
    if a.active:
        a.state, a.raised_at, a.acked_at, a.acked_by, a.cleared_at = (
            State.UNACK_ACTIVE, t, None, None, None
        )  # fmt: skip
    else:
        a.state = State.NORMAL
    return _after(a, What.SHELVE_EXPIRED if expired else What.UNSHELVED, t, by)


def expire(a: Alarm, t: int) -> Transition | None:
    """The shelving's expiry, when it has come (``t`` ≥ ``shelved_until``)."""
    if a.state is State.SHELVED and a.shelved_until is not None and t >= a.shelved_until:
        return unshelve(a, t, None, expired=True)
    return None
