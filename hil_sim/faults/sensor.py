"""Sensor faults on any served numeric Modbus point (names as EPyT-Flow's sensor faults and
DHALSIM's attacks on readings; loop currents per NAMUR NE 43, domain.md §2 and §6.2 [S31]).

Each one installs a function of the true value in the point's
:attr:`~hil_sim.devices.registers.RegisterMap.distort` (or freezes the registers for a bit-exact
stuck value), so every master — and :meth:`~hil_sim.sim.Simulator.truth`, which decodes what is
served — sees the faulty reading while the plant goes on with the true one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hil_sim.devices.registers import Number, RegisterMap
from hil_sim.faults.base import Active, FaultApplyError, FaultSpec, Param
from hil_sim.modbus.slave import BIT_TABLES

if TYPE_CHECKING:
    from hil_sim.sim import Simulator

LOOP_SPANS = {"p_in": (0.0, 1.0), "p_out": (0.0, 1.6)}
"""Measuring span (MPa) of the transmitters whose 4–20 mA loop is played when no ``span`` is
given (their ``range_full`` registers, hil_sim/devices/transmitter.py)."""
NE43_LOW_MA, NE43_HIGH_MA = 3.6, 21.0
"""NAMUR NE 43 failure currents: below 3.6 mA or above 21 mA ([S31], domain.md §2)."""

TARGET = Param("str", "served Modbus point (a truth key: p_out, p_in, flow, cl500.chlorine …)")


def map_of(sim: Simulator, point: str) -> RegisterMap:
    for dev in (*sim.tcp_devices, *sim.rtu_devices):
        p = dev.map.by_name.get(point)
        if p is not None:
            if p.table in BIT_TABLES or p.dtype == "bool":
                raise FaultApplyError(f"sensor fault on {point!r}: a bool point has no reading")
            return dev.map
    raise FaultApplyError(f"sensor fault: {point!r} is not a served Modbus point")


def _distort(sim: Simulator, point: str, fn: Callable[[Number], Number]) -> Active:
    m = map_of(sim, point)
    before = m.distort.get(point)
    m.distort[point] = fn

    def undo() -> None:
        if m.distort.get(point) is fn:
            if before is None:
                del m.distort[point]
            else:
                m.distort[point] = before

    return Active(undo)


def stuck(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Frozen reading: at ``value`` if given, else bit-exact at the present registers."""
    if "value" in prm:
        v = prm["value"]
        return _distort(sim, prm["target"], lambda _x: v)
    m = map_of(sim, prm["target"])
    was = prm["target"] in m.stuck
    m.stuck.add(prm["target"])
    return Active(lambda: None if was else m.stuck.discard(prm["target"]))


def stuck_zero(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Reading stuck at 0."""
    return _distort(sim, prm["target"], lambda _x: 0.0)


def drift(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Offset growing by ``rate_per_h`` per plant hour since the fault began."""
    t0, rate = sim.plant.t_s, prm["rate_per_h"]
    return _distort(sim, prm["target"], lambda x: x + rate * (sim.plant.t_s - t0) / 3600.0)


def offset(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Constant bias ``offset``."""
    return _distort(sim, prm["target"], lambda x: x + prm["offset"])


def noise(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Gaussian noise of standard deviation ``sigma``, a fresh draw at every step."""
    return _distort(sim, prm["target"], lambda x: x + rng.gauss(0.0, prm["sigma"]))


def spikes(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Spikes of ``magnitude`` (random sign) arriving ``rate_per_min`` times per plant minute
    (Poisson), each ``width_s`` long."""
    state = {"next": sim.plant.t_s + rng.expovariate(prm["rate_per_min"] / 60.0), "until": -1.0}
    sign = [1.0]

    def fn(x: Number) -> Number:
        now = sim.plant.t_s
        if now >= state["next"]:
            state["until"] = now + prm["width_s"]
            state["next"] = now + rng.expovariate(prm["rate_per_min"] / 60.0)
            sign[0] = rng.choice((-1.0, 1.0))
        return x + sign[0] * prm["magnitude"] if now < state["until"] else x

    return _distort(sim, prm["target"], fn)


def gain(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Reading multiplied by ``gain`` (a calibration slope error)."""
    return _distort(sim, prm["target"], lambda x: x * prm["gain"])


def wrong_scaling(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Reading multiplied by ``factor`` (a decimal-places or unit setting changed in the
    device, e.g. ×10 for one decimal less; domain.md §6.2 "wrong word order / scaling")."""
    return _distort(sim, prm["target"], lambda x: x * prm["factor"])


def _loop(sim: Simulator, prm: dict[str, Any]) -> Active:
    point = prm["target"]
    span = prm.get("span") or LOOP_SPANS.get(point)
    if span is None:
        raise FaultApplyError(f"{point}: give 'span' [low, high] of its 4–20 mA range")
    lo, hi = span
    value = lo + (prm["ma"] - 4.0) / 16.0 * (hi - lo)
    return _distort(sim, point, lambda _x: value)


def loop_open(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """4–20 mA loop open (NE 43 failure low): the reading the loop current ``ma`` gives."""
    return _loop(sim, prm)


def loop_short(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """4–20 mA loop short (NE 43 failure high): the reading the loop current ``ma`` gives."""
    return _loop(sim, prm)


SPAN = Param("span", "[low, high] engineering span of the 4–20 mA loop", None)
SPECS = [
    FaultSpec("sensor_stuck", "sensor", stuck.__doc__ or "", stuck,
              {"target": TARGET,
               "value": Param("number", "stuck value (unit of the point)", None)}),
    FaultSpec("sensor_stuck_zero", "sensor", stuck_zero.__doc__ or "", stuck_zero,
              {"target": TARGET}),
    FaultSpec("sensor_drift", "sensor", drift.__doc__ or "", drift,
              {"target": TARGET, "rate_per_h": Param("number", "drift, point unit per hour")}),
    FaultSpec("sensor_offset", "sensor", offset.__doc__ or "", offset,
              {"target": TARGET, "offset": Param("number", "bias, point unit")}),
    FaultSpec("sensor_noise", "sensor", noise.__doc__ or "", noise,
              {"target": TARGET,
               "sigma": Param("number", "standard deviation, point unit", low=0)}),
    FaultSpec("sensor_spikes", "sensor", spikes.__doc__ or "", spikes,
              {"target": TARGET, "magnitude": Param("number", "spike height, point unit"),
               "rate_per_min": Param("number", "spikes per plant minute", 6.0, low=0.01),
               "width_s": Param("number", "spike length, plant s", 1.0, low=0.01)}),
    FaultSpec("sensor_gain", "sensor", gain.__doc__ or "", gain,
              {"target": TARGET, "gain": Param("number", "slope factor")}),
    FaultSpec("wrong_scaling", "sensor", wrong_scaling.__doc__ or "", wrong_scaling,
              {"target": TARGET, "factor": Param("number", "scale factor", 10.0)}),
    FaultSpec("loop_open", "sensor", loop_open.__doc__ or "", loop_open,
              {"target": TARGET, "span": SPAN,
               "ma": Param("number", "loop current, mA (NE 43: < 3.6)", 0.0, low=0.0, high=3.59)}),
    FaultSpec("loop_short", "sensor", loop_short.__doc__ or "", loop_short,
              {"target": TARGET, "span": SPAN,
               "ma": Param("number", "loop current, mA (NE 43: > 21)", 22.0, low=21.01,
                            high=30.0)}),
]  # fmt: skip
