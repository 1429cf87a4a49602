"""Communication faults per slave or per bus, mapped onto the simulated servers' own fault
injection (:class:`hil_sim.modbus.faults.UnitFaults`; Modbus Application Protocol V1.1b3 for the
exception codes, domain.md §6.2 "comms loss": timeouts, CRC errors, exception 0x06 busy,
half-frame).

``target`` is a unit id (``12``), a list (``[11, 12, 13]``: faulted in one step) or a whole bus
(``rtu``: every RTU unit; ``tcp``: every TCP unit). Undo puts back the unit's previous fault
settings.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hil_sim.faults.base import Active, FaultApplyError, FaultSpec, Param
from hil_sim.modbus.faults import UnitFaults

if TYPE_CHECKING:
    from hil_sim.sim import Simulator

TARGET = Param("units", "unit id, list of unit ids, or 'rtu' / 'tcp' for a whole bus")


def units_of(sim: Simulator, target: Any) -> list[tuple[str, int]]:
    """(transport, unit id) pairs of ``target``."""
    rtu = {d.unit_id for d in sim.rtu_devices}
    tcp = {d.unit_id for d in sim.tcp_devices}
    if target == "rtu":
        return [("rtu", u) for u in sorted(rtu)]
    if target == "tcp":
        return [("tcp", u) for u in sorted(tcp)]
    out = []
    for u in target:
        if u not in rtu | tcp:
            raise FaultApplyError(f"unit {u} is not served (RTU {sorted(rtu)}, TCP {sorted(tcp)})")
        out.append(("rtu" if u in rtu else "tcp", u))
    return out


def unit_fault(change: Callable[[Simulator, UnitFaults, int, dict[str, Any]], None]):
    """An ``apply`` that calls ``change(sim, unit_faults, unit, params)`` on every target unit
    and restores each unit's snapshot on undo."""

    def apply(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
        pairs = units_of(sim, prm["target"])
        saved = [(tr, u, copy.deepcopy(sim.faults[tr].unit(u))) for tr, u in pairs]
        for tr, u in pairs:
            change(sim, sim.faults[tr].unit(u), u, prm)

        def undo() -> None:
            for tr, u, before in saved:
                uf = sim.faults[tr].unit(u)
                for f in dataclasses.fields(UnitFaults):
                    setattr(uf, f.name, getattr(before, f.name))

        return Active(undo)

    return apply


def _silent(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.silent = True


def _delay(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.delay_s = prm["delay_s"]


def _exception(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    if "address" in prm:
        uf.exceptions[(prm.get("table", "holding_register"), prm["address"])] = prm["code"]
        return
    dev = next(d for d in (*sim.tcp_devices, *sim.rtu_devices) if d.unit_id == u)
    for p in dev.map.points:  # every mapped address: whatever the master reads is refused
        for a in range(p.address, p.address + p.width):
            uf.exceptions[(p.table, a)] = prm["code"]


def _crc(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.corrupt_crc = prm["probability"]


def _fragment(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.fragment_gap_s = prm["gap_s"]


def _late(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.late_reply_s = prm["late_s"]


def _reset(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.reset = prm["probability"]


def _gateway(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.gateway_error = prm["code"]


def _echo(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.echo = True


def _wrong_tid(sim: Simulator, uf: UnitFaults, u: int, prm: dict[str, Any]) -> None:
    uf.wrong_tid = True


def single_client(sim: Simulator, prm: dict[str, Any], rng: random.Random) -> Active:
    """The Modbus TCP server accepts one connection at a time; a second is closed at once
    (small embedded Modbus TCP devices)."""
    faults = sim.faults["tcp"]
    before = faults.single_client
    faults.single_client = True
    return Active(lambda: setattr(faults, "single_client", before))


PROB = Param("number", "probability per reply, 0..1", 1.0, low=0.0, high=1.0)
SPECS = [
    FaultSpec("comms_silent", "comms", "The slave never answers (off the bus, dead): the "
              "master's request times out.", unit_fault(_silent), {"target": TARGET}),
    FaultSpec("comms_delay", "comms", "Every reply comes `delay_s` late (a slow slave; blocks "
              "the RTU link meanwhile).", unit_fault(_delay),
              {"target": TARGET, "delay_s": Param("number", "delay, s", 0.5, low=0.0, high=60.0)}),
    FaultSpec("comms_exception", "comms", "Requests answered by exception `code` (default 6 "
              "SLAVE DEVICE BUSY) on `address` of `table`, or on every mapped address.",
              unit_fault(_exception),
              {"target": TARGET, "code": Param("int", "exception code 1..255", 6, low=1, high=255),
               "table": Param("choice", "register table", None, ("holding_register",
                              "input_register", "coil", "discrete_input")),
               "address": Param("int", "0-based PDU address", None, low=0, high=65535)}),
    FaultSpec("comms_crc", "comms", "RTU replies with a corrupted CRC (line noise).",
              unit_fault(_crc), {"target": TARGET, "probability": PROB}),
    FaultSpec("comms_fragment", "comms", "RTU replies split in two with a silent gap (> t3.5 "
              "makes a conforming master drop them).", unit_fault(_fragment),
              {"target": TARGET, "gap_s": Param("number", "gap, s", 0.05, low=0.0, high=5.0)}),
    FaultSpec("comms_late_reply", "comms", "Each reply arrives `late_s` after the request "
              "without blocking the link (after the master gave up).", unit_fault(_late),
              {"target": TARGET,
               "late_s": Param("number", "lateness, s", 2.0, low=0.0, high=60.0)}),
    FaultSpec("comms_tcp_reset", "comms", "Modbus TCP requests answered by a TCP reset (RST).",
              unit_fault(_reset), {"target": TARGET, "probability": PROB}),
    FaultSpec("comms_gateway_error", "comms", "A TCP/RTU gateway whose serial slave is dead: "
              "exception 0x0A or 0x0B (MBAP V1.1b3 §7).", unit_fault(_gateway),
              {"target": TARGET, "code": Param("int", "10 or 11", 11, low=10, high=11)}),
    FaultSpec("comms_echo", "comms", "RTU adapter with local echo: the request comes back "
              "before the reply.", unit_fault(_echo), {"target": TARGET}),
    FaultSpec("comms_wrong_tid", "comms", "Modbus TCP replies carry the wrong transaction id.",
              unit_fault(_wrong_tid), {"target": TARGET}),
    FaultSpec("comms_single_client", "comms", single_client.__doc__ or "", single_client, {}),
]  # fmt: skip
