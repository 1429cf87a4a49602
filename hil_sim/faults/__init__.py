"""The fault catalogue: named faults a scenario (or a tester) can inject into the running
simulator, at a time or on a condition, for a duration (hil_sim/README.md lists them).

``CATALOGUE[name]`` is a :class:`~hil_sim.faults.base.FaultSpec`: ``check_params(dict)``
validates parameters without a simulator; ``apply(sim, params, rng)`` injects the fault and
returns an :class:`~hil_sim.faults.base.Active` whose ``undo()`` removes it.
"""

from __future__ import annotations

from hil_sim.faults import comms, plant, sensor
from hil_sim.faults.base import Active, FaultApplyError, FaultParamError, FaultSpec, Param

CATALOGUE: dict[str, FaultSpec] = {s.name: s for s in (*sensor.SPECS, *comms.SPECS, *plant.SPECS)}

__all__ = ["CATALOGUE", "Active", "FaultApplyError", "FaultParamError", "FaultSpec", "Param"]
