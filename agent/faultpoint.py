"""TEST HOOK: fault-injection points in the agent's stage loops.

A stage's loop calls ``await checkpoint("ingest")`` once per turn. In production
(:data:`FAULT_ENV` unset) that is one comparison. When :data:`FAULT_ENV` names a file, each line
``STAGE ACTION`` in it makes that stage, at its next turn:

* ``raise``: raise :class:`InjectedFault` (a stage dying of a bug: the supervisor's case);
* ``hang``: wait for ever (a stage stuck on an await that never ends: the watchdog's case).

The file is re-read at most every 0.2 s; a missing file means no fault. Stage names are those
of :class:`agent.supervisor.Supervisor` (``ingest``, ``uplink``, ``poll <connection>``).
Never set the variable in production.
"""

from __future__ import annotations

import asyncio
import os
import time

FAULT_ENV = "PUMPROOM_FAULT_FILE"
"""TEST HOOK: environment variable naming the fault file (see the module docstring)."""

_FILE = os.environ.get(FAULT_ENV) or None
_READ_EVERY_S = 0.2
_faults: dict[str, str] = {}
_read_at = -1.0


class InjectedFault(RuntimeError):
    """A fault injected through :data:`FAULT_ENV` (tests only)."""


def _current() -> dict[str, str]:
    global _faults, _read_at
    now = time.monotonic()
    if now - _read_at >= _READ_EVERY_S:
        _read_at = now
        try:
            with open(_FILE, encoding="utf-8") as f:  # type: ignore[arg-type]
                lines = f.read().splitlines()
        except OSError:
            lines = []
        _faults = {}
        for line in lines:
            stage, _, action = line.strip().rpartition(" ")
            if stage:
                _faults[stage] = action
    return _faults


async def checkpoint(stage: str) -> None:
    """Apply the fault configured for ``stage``, if any (see the module docstring).

    Raises:
        InjectedFault: the fault file says ``STAGE raise``.
    """
    if _FILE is None:
        return
    action = _current().get(stage)
    if action == "raise":
        raise InjectedFault(f"fault injected in {stage} ({FAULT_ENV})")
    if action == "hang":
        await asyncio.Event().wait()
