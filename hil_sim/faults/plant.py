"""Actuator, hydraulic, power, room and water-quality faults: changes of the plant's state
through its own mechanisms (:mod:`hil_sim.plant`, :mod:`hil_sim.environment`), named after
domain.md §6.2's catalogue; EPyT-Flow's leakages (burst, incipient leak) for the hydraulics.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hil_sim.faults.base import Active, FaultApplyError, FaultSpec, Param
from hil_sim.faults.comms import unit_fault
from hil_sim.plant import PUMP_HAND, PUMP_OFF, Plant

if TYPE_CHECKING:
    from hil_sim.sim import Simulator

PUMP = Param("str", "pump1, pump2 …")


def pump_index(sim: Simulator, target: str) -> int:
    try:
        idx = int(target.removeprefix("pump")) - 1
    except ValueError:
        idx = -1
    if not target.startswith("pump") or not 0 <= idx < len(sim.plant.pumps):
        raise FaultApplyError(f"{target!r}: expected pump1..pump{len(sim.plant.pumps)}")
    return idx


def _hold(get: Callable[[], Any], put: Callable[[Any], None], value: Any) -> Active:
    before = get()
    put(value)
    return Active(lambda: put(before))


def drive_trip(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """The pump's drive trips with fault `code` (latched; the cabinet's cascade skips it);
    undo clears the code as a reset would."""
    i = pump_index(sim, prm["target"])
    sim.plant.trip(i, prm["code"])
    return Active(lambda: sim.plant.trip(i, 0))


def pump_stuck(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """The pump no longer follows the controller: `off` (seized / contactor open: never
    runs) or `on` (contactor welded: runs at full speed)."""
    i = pump_index(sim, prm["target"])
    pump = sim.plant.pumps[i]
    mode = PUMP_OFF if prm["state"] == "off" else PUMP_HAND
    return _hold(lambda: pump.mode, lambda m: sim.plant.set_pump_mode(i, m), mode)


def valve_stuck(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """The mains bypass check valve stuck closed: with the pumps stopped the mains no longer
    feed the header."""
    pl = sim.plant
    return _hold(lambda: pl.bypass_factor, lambda v: setattr(pl, "bypass_factor", v), 0.0)


def _extra_leak(sim: Simulator, flow: float) -> Active:
    d = sim.plant.demand
    d.leak_m3h += flow
    return Active(lambda: setattr(d, "leak_m3h", max(0.0, d.leak_m3h - flow)))


def burst(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """A main bursts downstream: `flow_m3h` more draw at once (pressure-driven)."""
    return _extra_leak(sim, prm["flow_m3h"])


def leak(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """A background leak: `flow_m3h` more always-on draw."""
    return _extra_leak(sim, prm["flow_m3h"])


def _dip(sim: Simulator, mpa: float) -> Active:
    pl = sim.plant
    return _hold(lambda: pl.suction_dip_mpa, lambda v: setattr(pl, "suction_dip_mpa", v), mpa)


def suction_loss(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """The mains pressure at the suction drops by `dip_mpa` (below the 0.03 MPa dry-run
    threshold for 5 s: the cabinet stops every pump, Grundfos [S14])."""
    return _dip(sim, prm["dip_mpa"])


def tank_empty(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Supply gone (the modelled set is 叠压, no break tank: played as suction pressure to
    zero and below, what a break tank at its low-level switch gives)."""
    return _dip(sim, 0.3)


def overpressure(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Controller runaway: every pump forced to full speed (hand mode), the outlet rises to
    the shut-off head (domain.md §6.2 "PRV stuck / setpoint mis-write")."""
    pl = sim.plant
    before = [p.mode for p in pl.pumps]
    for i in range(len(pl.pumps)):
        pl.set_pump_mode(i, PUMP_HAND)

    def undo() -> None:
        for i, mode in enumerate(before):
            pl.set_pump_mode(i, mode)

    return Active(undo)


OFFLINE: dict[str, list[Any]] = {"drives": [[11, 12, 13]], "all": ["rtu", "tcp"], "none": []}
"""Who loses the supply in a blip: the VFDs (the cabinet PLC, transmitters and gateway ride
through on the UPS, domain.md §2 "run on UPS"), every Modbus device, or none."""


def power_blip(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Supply lost for `duration_s`: the phase monitor drops, every drive trips on
    undervoltage (code 10) and restarts when it is back (or stays tripped with `restart:
    false`, until acknowledged) (domain.md §2); the `offline` devices are off the bus meanwhile
    (`drives`: the VFDs; `all`; `none`)."""
    pl = sim.plant
    pl.power_blip(prm["duration_s"])
    silence = unit_fault(lambda s, uf, u, p: setattr(uf, "silent", True))
    off = [silence(sim, {"target": t}, rng) for t in OFFLINE[prm["offline"]]]

    def end() -> None:
        for a in off:
            a.undo()
        if not prm["restart"]:
            for i in range(len(pl.pumps)):
                pl.trip(i, Plant.UNDERVOLTAGE_CODE)

    return Active(end, ends_at_s=pl.t_s + prm["duration_s"])


def _contact(sim: Simulator, prm: dict[str, Any], rng: random.Random, attr: str) -> Active:
    room = sim.plant.room
    before = getattr(room, attr)
    setattr(room, attr, prm["state"])
    if "chatter_s" not in prm:
        return Active(lambda: setattr(room, attr, before))
    mean, bounce = prm["chatter_s"], prm["bounce_s"]
    nxt = [sim.plant.t_s + rng.expovariate(1.0 / mean)]

    def tick() -> None:  # a bouncing contact: brief opposite blips, mean interval chatter_s
        while sim.plant.t_s >= nxt[0]:
            steady = getattr(room, attr) == prm["state"]
            setattr(room, attr, not getattr(room, attr))
            nxt[0] += bounce if steady else rng.expovariate(1.0 / mean)

    return Active(lambda: setattr(room, attr, before), tick)


def door(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Door contact open (`state`), optionally chattering: every `chatter_s` on average the
    contact bounces to the other state for `bounce_s`."""
    return _contact(sim, prm, rng, "door_open")


def flood(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Flood electrode wet (`state`), optionally chattering like `door` (water lapping at the
    electrode)."""
    return _contact(sim, prm, rng, "flood")


def smoke(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Smoke detector in alarm (`state`), optionally chattering like `door` (a detector at its
    threshold)."""
    return _contact(sim, prm, rng, "smoke")


def turbidity(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Turbidity held at `ntu` (GB 5749 limit 1 NTU, domain.md §3.3); back to baseline after."""
    q = sim.plant.quality

    def tick() -> None:
        q.turbidity_event_ntu = max(0.0, prm["ntu"] - q.turbidity_base_ntu)

    tick()
    return Active(lambda: setattr(q, "turbidity_event_ntu", 0.0), tick)


def chlorine_low(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """Free chlorine arriving from the mains drops to `mg_l` (GB 5749 minimum 0.05 mg/L at the
    tap); the analyser follows with the water age in the header."""
    q = sim.plant.quality
    return _hold(lambda: q.chlorine_in_mg_l, lambda v: setattr(q, "chlorine_in_mg_l", v),
                 prm["mg_l"])  # fmt: skip


def ph_excursion(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """pH held at `ph` (GB 5749 range 6.5–8.5)."""
    q = sim.plant.quality
    before = q.ph

    def tick() -> None:
        q.ph = prm["ph"]

    tick()
    return Active(lambda: setattr(q, "ph", before), tick)


def analyser_status(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """The analyser reports reading status `status` (CL500 30010 coding: 2 over range, 3 under
    range, 4 need standard, 5 need sample, 6 error [S35]) on OPC UA (`target: opcua`) or on
    the CL500's Modbus register (`target: cl500`); the water itself is unchanged."""
    if prm["target"] == "opcua":
        ua = sim.opcua
        return _hold(lambda: ua.analyser_status, lambda v: setattr(ua, "analyser_status", v),
                     prm["status"])  # fmt: skip
    m = sim.cl500.map
    before = m.distort.get("cl500.status")
    m.distort["cl500.status"] = lambda _x: prm["status"]

    def undo() -> None:
        if before is None:
            m.distort.pop("cl500.status", None)
        else:
            m.distort["cl500.status"] = before

    return Active(undo)


CONTACT = {"state": Param("bool", "contact state while in force", True),
           "chatter_s": Param("number", "mean time between bounces, plant s", None,
                               low=0.05),
           "bounce_s": Param("number", "length of one bounce, plant s", 0.2, low=0.01)}  # fmt: skip
SPECS = [
    FaultSpec("drive_trip", "actuator", drive_trip.__doc__ or "", drive_trip,
              {"target": PUMP,
               "code": Param("int", "drive fault code (INVT map)", low=1, high=65535)}),
    FaultSpec("pump_stuck", "actuator", pump_stuck.__doc__ or "", pump_stuck,
              {"target": PUMP, "state": Param("choice", "off or on", "off", ("off", "on"))}),
    FaultSpec("valve_stuck", "actuator", valve_stuck.__doc__ or "", valve_stuck,
              {"target": Param("choice", "the valve", "bypass", ("bypass",))}),
    FaultSpec("burst", "hydraulic", burst.__doc__ or "", burst,
              {"flow_m3h": Param("number", "extra draw, m³/h", 15.0, low=0.0)}),
    FaultSpec("leak", "hydraulic", leak.__doc__ or "", leak,
              {"flow_m3h": Param("number", "extra draw, m³/h", 1.0, low=0.0)}),
    FaultSpec("suction_loss", "hydraulic", suction_loss.__doc__ or "", suction_loss,
              {"dip_mpa": Param("number", "suction pressure drop, MPa", 0.19, low=0.0, high=1.0)}),
    FaultSpec("tank_empty", "hydraulic", tank_empty.__doc__ or "", tank_empty, {}),
    FaultSpec("overpressure", "hydraulic", overpressure.__doc__ or "", overpressure, {}),
    FaultSpec("power_blip", "power", power_blip.__doc__ or "", power_blip,
              {"duration_s": Param("number", "outage, plant s (0.1–5 s typical)", 2.0, low=0.05,
                                    high=3600.0),
               "restart": Param("bool", "drives restart by themselves", True),
               "offline": Param("choice", "devices off the bus", "drives", tuple(OFFLINE))}),
    FaultSpec("door", "room", door.__doc__ or "", door, CONTACT),
    FaultSpec("flood", "room", flood.__doc__ or "", flood, CONTACT),
    FaultSpec("smoke", "room", smoke.__doc__ or "", smoke, CONTACT),
    FaultSpec("turbidity", "quality", turbidity.__doc__ or "", turbidity,
              {"ntu": Param("number", "turbidity, NTU", 3.0, low=0.0)}),
    FaultSpec("chlorine_low", "quality", chlorine_low.__doc__ or "", chlorine_low,
              {"mg_l": Param("number", "free chlorine from the mains, mg/L", 0.02, low=0.0)}),
    FaultSpec("ph_excursion", "quality", ph_excursion.__doc__ or "", ph_excursion,
              {"ph": Param("number", "pH", 9.0, low=0.0, high=14.0)}),
    FaultSpec("analyser_status", "quality", analyser_status.__doc__ or "", analyser_status,
              {"status": Param("int", "reading status 1..6", 4, low=1, high=6),
               "target": Param("choice", "which interface", "opcua", ("opcua", "cl500"))}),
]  # fmt: skip
