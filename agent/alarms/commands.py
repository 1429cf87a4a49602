"""Parameters of the alarm commands (``v1/command-request.schema.json``, closed shapes):

* ``alarm.ack``      ``{"alarm": id}``
* ``alarm.shelve``   ``{"alarm": id, "duration_s": seconds}`` (bounded by
  ``alarms.shelve_max_s``, published in ``meta.commands``; out of bounds: OUT_OF_RANGE)
* ``alarm.unshelve`` ``{"alarm": id}``

An id the gateway does not know is refused INVALID_ARGUMENT (``detail.reason``: unknown alarm).
"""

from __future__ import annotations

import math
import re
from typing import Any

METHODS = ("alarm.ack", "alarm.shelve", "alarm.unshelve")
_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def param_problems(method: str, params: dict[str, Any]) -> list[str]:
    """What in ``params`` the schema of ``method`` does not allow (empty: fine)."""
    known = ("alarm", "duration_s") if method == "alarm.shelve" else ("alarm",)
    problems = []
    extra = sorted(str(k) for k in params if k not in known)
    if extra:
        problems.append(
            f"params: unknown member {', '.join(map(repr, extra))} (known: {', '.join(known)})"
        )
    alarm = params.get("alarm")
    if not (isinstance(alarm, str) and _ID.fullmatch(alarm)):
        problems.append("params.alarm: an alarm id (A–Z a–z 0–9 _ . -)")
    if method == "alarm.shelve":
        d = params.get("duration_s")
        if not isinstance(d, int | float) or isinstance(d, bool) or not math.isfinite(d):
            problems.append("params.duration_s: a number of seconds")
    return problems
