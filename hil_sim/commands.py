"""Operator commands shared by the control port and scenario files.

A command is a JSON object with a ``cmd`` key; :func:`execute` applies it to a running
:class:`~hil_sim.sim.Simulator` and returns the answer object (``{"ok": true, ...}``) or raises
:class:`CommandError` (the caller answers ``{"ok": false, "error": ...}``).

Commands:

* ``{"cmd": "ping"}`` → ``{"ok": true, "t_s": <plant time>}``
* ``{"cmd": "stats"}`` → ``{"ok": true, "stats": {"tcp": {"1": {"3": n}}}, "errors": {...}}``
* ``{"cmd": "reset_stats"}``
* ``{"cmd": "truth"}`` → ``{"ok": true, "t": wall_ms, "values": {point: value}}``
* ``{"cmd": "fault", "unit": 11, "transport": "rtu", "silent": true}``; ``"unit"`` may be a
  list (``[11, 12, 13]``): the same fault on every unit at once (a whole bus lost in one
  step, not unit by unit as separate commands would); any
  :class:`~hil_sim.modbus.faults.UnitFaults` field (``silent``, ``delay_s``, ``echo``,
  ``fragment_gap_s``, ``corrupt_crc``, ``late_reply_s``, ``wrong_tid``, ``reset``,
  ``gateway_error``: 10 or 11 for a TCP gateway's dead serial slave, 0 off) and/or
  ``"exception": {"table": "holding_register", "address": 12288, "code": 2}``. ``transport``
  defaults to ``tcp`` for units 1–4 (and the test bench's 99) and ``rtu`` otherwise.
  ``{"cmd": "fault", "transport": "tcp", "single_client": true}`` and
  ``"once_per_connection": true`` set the server-wide flags.
* ``{"cmd": "clear_faults"}`` — every fault on both transports.
* ``{"cmd": "freeze", "on": true}`` — plant time and every served value stop.
* ``{"cmd": "set", "name": "demand_factor", "value": 2.0}`` — see :data:`SETTABLE`.
* Raw-value test bench (only with ``hil-sim run --test-types``; :mod:`hil_sim.devices.testbench`):
  ``{"cmd": "raw", "writes": [{"table": "holding_register", "address": 0, "values": [65535]},
  ...]}`` serves exactly those words (bools for ``coil``/``discrete_input``), all writes at once;
  ``{"cmd": "raw_ua", "values": {"UInt64": 18446744073709551615, "Gen": 7}}`` sets bench OPC UA
  variables (served within one simulator step; ``Gen`` written last). Floats that JSON cannot
  carry are given as strings: ``"nan"``, ``"inf"``, ``"-inf"``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from hil_sim.devices.testbench import UA_TYPES
from hil_sim.devices.testbench import UNIT_ID as TEST_BENCH_UNIT
from hil_sim.drive import WatchdogAction
from hil_sim.modbus.faults import UnitFaults
from hil_sim.modbus.slave import TABLES

if TYPE_CHECKING:
    from hil_sim.sim import Simulator

TCP_UNITS = frozenset({1, 2, 3, 4, TEST_BENCH_UNIT})


class CommandError(Exception):
    """A command that is malformed or cannot be applied; the message is sent back."""


def _num(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandError(f"{name}: expected a number, got {value!r}")
    return float(value)


def _set(sim: Simulator, name: str, value: Any) -> None:
    pl = sim.plant
    if name == "demand_factor":
        pl.demand_factor = max(0.0, _num(value, name))
    elif name == "leak_m3h":
        pl.demand.leak_m3h = max(0.0, _num(value, name))
    elif name == "suction_dip_mpa":
        pl.suction_dip_mpa = _num(value, name)
    elif name == "setpoint":
        try:
            pl.set_setpoint(_num(value, name))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    elif name == "mode":
        try:
            pl.set_mode(int(_num(value, name)))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    elif name == "drives_on":
        pl.drives_on = bool(value)
    elif name == "door":
        pl.room.door_open = bool(value)
    elif name == "flood":
        pl.room.flood = bool(value)
    elif name == "smoke":
        pl.room.smoke = bool(value)
    elif name == "turbidity_event_ntu":
        pl.quality.turbidity_event_ntu = _num(value, name)
    elif name == "chlorine_in_mg_l":
        pl.quality.chlorine_in_mg_l = _num(value, name)
    elif name == "analyser_status":
        sim.opcua.analyser_status = int(_num(value, name))
    elif name == "watchdog_timeout_s":
        pl.watchdog_timeout_s = _num(value, name)
    elif name == "watchdog_action":
        try:
            pl.watchdog_action = WatchdogAction(value)
        except ValueError:
            raise CommandError(
                f"watchdog_action must be one of {[a.value for a in WatchdogAction]}"
            ) from None
    elif name == "day_speed":
        pl.day_speed = max(0.0, _num(value, name))
    elif name == "p_out.fault":
        if value not in pl.PT_FAULTS:
            raise CommandError(f"p_out.fault must be one of {list(pl.PT_FAULTS)}")
        pl.pt_out_fault = value
    elif name == "power_blip_s":
        pl.power_blip(_num(value, name))
    elif name == "speed":
        sim.speed = max(0.01, _num(value, name))
    elif name.startswith("pump") and name.endswith((".trip", ".mode")):
        try:
            idx = int(name[4 : name.index(".")]) - 1
            if not 0 <= idx < len(pl.pumps):
                raise ValueError
            if name.endswith(".trip"):
                pl.trip(idx, int(_num(value, name)))
            else:
                pl.set_pump_mode(idx, int(_num(value, name)))
        except ValueError as exc:
            raise CommandError(f"bad {name}={value!r}: {exc}") from None
    elif name.endswith(".stuck"):
        point = name.removesuffix(".stuck")
        if point not in sim.modbus_point_names():
            raise CommandError(f"unknown Modbus point {point!r}")
        sim.set_stuck(point, bool(value))
    else:
        raise CommandError(f"unknown name {name!r}; settable: {', '.join(SETTABLE)}")


def set_name_problem(sim: Simulator, name: Any) -> str | None:
    """Why ``set`` would refuse ``name`` whatever the value (``None``: a settable name), so a
    scenario's misspelled name is refused when the file is loaded, not when the event fires."""
    fixed = {n for n in SETTABLE if "<" not in n}
    if not isinstance(name, str):
        return f"'name_' must be a string, got {name!r}"
    if name in fixed or (name.startswith("pump") and name.endswith((".trip", ".mode"))):
        return None
    if name.endswith(".stuck") and name.removesuffix(".stuck") in sim.modbus_point_names():
        return None
    return f"unknown name {name!r}; settable: {', '.join(SETTABLE)}"


SETTABLE = (
    "demand_factor", "leak_m3h", "suction_dip_mpa", "setpoint", "mode", "drives_on", "door",
    "flood", "smoke", "turbidity_event_ntu", "chlorine_in_mg_l", "analyser_status",
    "watchdog_timeout_s", "watchdog_action", "day_speed", "p_out.fault", "power_blip_s", "speed",
    "pump<N>.trip", "pump<N>.mode", "<modbus point>.stuck",
)  # fmt: skip
"""Names accepted by ``set``. ``pump<N>.trip`` latches a drive fault code (0 clears it);
``leak_m3h`` is the always-on draw (base leak, or a burst main downstream when raised);
``<point>.stuck`` freezes one Modbus point's registers bit-exact (sensor stuck, domain.md §6.2);
``day_speed`` runs the time of day (diurnal demand, mains pressure) that many times faster than
plant time (the water draws get shorter with it, see ``plant.draw_duration_scale``);
``p_out.fault`` is ``none``/``open``/``short``/``range`` (outlet transmitter faults,
see ``Plant.PT_FAULTS``); ``power_blip_s`` drops the supply for that many seconds (phase monitor
off, every drive trips undervoltage and restarts after, ``Plant.power_blip``)."""

_FAULT_FIELDS = {f.name for f in dataclasses.fields(UnitFaults)} - {"exceptions", "garbage_before"}
_SERVER_FLAGS = ("single_client", "once_per_connection")


def _fault(sim: Simulator, cmd: dict[str, Any]) -> None:
    transport = cmd.get("transport")
    unit = cmd.get("unit")
    if transport is None:
        if unit is None:
            raise CommandError("fault needs 'unit' or 'transport'")
        transport = "tcp" if unit in TCP_UNITS else "rtu"
    if transport not in ("tcp", "rtu"):
        raise CommandError("transport must be 'tcp' or 'rtu'")
    faults = sim.faults[transport]
    for flag in _SERVER_FLAGS:
        if flag in cmd:
            setattr(faults, flag, bool(cmd[flag]))
    if unit is None:
        return
    units = unit if isinstance(unit, list) else [unit]
    for u in units:
        if isinstance(u, bool) or not isinstance(u, int) or not 0 <= u <= 255:
            raise CommandError(f"bad unit {u!r}")
    for u in units:  # every unit id checked before any is faulted
        _unit_fault(faults.unit(u), cmd)


def _unit_fault(uf: UnitFaults, cmd: dict[str, Any]) -> None:
    for key, value in cmd.items():
        if key in ("cmd", "unit", "transport", *_SERVER_FLAGS):
            continue
        if key == "exception":
            if not isinstance(value, dict):
                raise CommandError("exception must be an object")
            table, address, code = value.get("table"), value.get("address"), value.get("code", 2)
            if table not in TABLES or not isinstance(address, int) or not isinstance(code, int):
                raise CommandError(f"bad exception {value!r}")
            if code == 0:
                uf.exceptions.pop((table, address), None)
            else:
                uf.exceptions[(table, address)] = code
        elif key == "gateway_error":
            if value not in (0, 0x0A, 0x0B) or isinstance(value, bool):
                raise CommandError("gateway_error must be 10 (0x0A), 11 (0x0B) or 0 (off)")
            uf.gateway_error = value
        elif key in _FAULT_FIELDS:
            kind = type(getattr(uf, key))
            setattr(uf, key, bool(value) if kind is bool else _num(value, key))
        else:
            raise CommandError(f"unknown fault field {key!r}")


def _raw(sim: Simulator, cmd: dict[str, Any]) -> None:
    bench = sim.bench
    if bench is None:
        raise CommandError("raw: the test bench is not served (hil-sim run --test-types)")
    writes = cmd.get("writes")
    if not isinstance(writes, list):
        raise CommandError("raw needs 'writes': [{table, address, values}, ...]")
    checked = []
    for w in writes:
        table, address, values = (w.get(k) for k in ("table", "address", "values"))
        if table not in TABLES or not isinstance(address, int) or not isinstance(values, list):
            raise CommandError(f"bad raw write {w!r}")
        checked.append((table, address, values))
    try:  # all-or-nothing: check every range first
        for table, address, values in checked:
            bench.bank.get(table, address, len(values))
        for table, address, values in checked:
            bench.set_raw(table, address, values)
    except (KeyError, ValueError) as exc:
        raise CommandError(f"raw: {exc}") from None


def _raw_ua(sim: Simulator, cmd: dict[str, Any]) -> None:
    if not sim.opcua.test_types:
        raise CommandError("raw_ua: the test bench is not served (hil-sim run --test-types)")
    values = cmd.get("values")
    if not isinstance(values, dict) or not set(values) <= set(UA_TYPES):
        raise CommandError(f"raw_ua needs 'values': {{name: value}} with names {list(UA_TYPES)}")
    for name, value in values.items():
        if isinstance(value, str) and value in ("nan", "inf", "-inf"):
            value = float(value)
        if not isinstance(value, bool | int | float):
            raise CommandError(f"raw_ua: {name}: not a number or bool: {value!r}")
        sim.opcua.test_values[name] = value


def execute(sim: Simulator, cmd: Any) -> dict[str, Any]:
    """Apply one command. Returns the answer; raises :class:`CommandError`."""
    if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
        raise CommandError("expected an object with a string 'cmd'")
    name = cmd["cmd"]
    if name == "ping":
        return {"ok": True, "t_s": round(sim.plant.t_s, 3)}
    if name == "stats":
        snap = sim.counters.snapshot()
        stats = {
            tr: {str(u): {str(fc): n for fc, n in fcs.items()} for u, fcs in units.items()}
            for tr, units in snap.items()
        }
        return {"ok": True, "stats": stats, "errors": sim.counters.errors()}
    if name == "reset_stats":
        sim.counters.reset()
        return {"ok": True}
    if name == "truth":
        return {"ok": True, "t": int(time.time() * 1000), "values": sim.truth()}
    if name == "fault":
        _fault(sim, cmd)
        return {"ok": True}
    if name == "clear_faults":
        for faults in sim.faults.values():
            faults.clear()
        return {"ok": True}
    if name == "raw":
        _raw(sim, cmd)
        return {"ok": True}
    if name == "raw_ua":
        _raw_ua(sim, cmd)
        return {"ok": True}
    if name == "freeze":
        sim.frozen = bool(cmd.get("on", True))
        return {"ok": True, "frozen": sim.frozen}
    if name == "set":
        if not isinstance(cmd.get("name"), str) or "value" not in cmd:
            raise CommandError("set needs 'name' and 'value'")
        _set(sim, cmd["name"], cmd["value"])
        sim.refresh()
        return {"ok": True}
    raise CommandError(f"unknown cmd {name!r}")
