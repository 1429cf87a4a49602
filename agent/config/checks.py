"""Whole-config checks: the rules no single item's schema can see.

Run after each device passed its schema. Each rule yields a :class:`Problem` on the YAML node
that has to change (the second of two duplicates, the key that contradicts its point's type).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.config.control import (
    PUMP_WRITES,
    ConfirmConfig,
    ControlConfig,
    Interlocks,
    Remote,
    Sensor,
)
from agent.config.messages import path_text
from agent.config.plan import TABLES, DeviceConfig, pdu_address
from agent.config.problems import Path_, Positions, Problem
from agent.config.schema import (
    BROADCAST_MESSAGE,
    ModbusPointConfig,
    ModbusRtuDevice,
    ModbusTcpDevice,
    PointCommon,
)
from drivers.specs import DataType

_SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")
_READ_ONLY = {"discrete_input": "discrete inputs", "input": "input registers"}
"""Tables no Modbus function code writes (Modbus Application Protocol V1.1b3 §4.3)."""


@dataclass(slots=True)
class CheckedDevice:
    """What the whole-config checks know of one device.

    Attributes:
        index: position in the YAML ``devices`` list.
        name: the device name if it is valid, else ``None``.
        model: the validated device, or ``None`` when it failed its schema (then only its
            valid points are checked, and bus-sharing rules skip it).
        points: ``(index in the YAML points list, validated point)`` pairs.
        addressing: ``pdu`` or ``register-number``.
    """

    index: int
    name: str | None
    model: DeviceConfig | None
    points: list[tuple[int, PointCommon]] = field(default_factory=list)
    addressing: str = "pdu"


class _Ctx:
    def __init__(self, data: Any, positions: Positions) -> None:
        self.data = data
        self.positions = positions

    def at(self, path: Path_, message: str) -> Problem:
        return self.positions.value(path).problem(f"{path_text(self.data, path)}: {message}")

    def where(self, path: Path_) -> str:
        """``"line N"`` for a place in the site file, ``"FILE line N"`` for one elsewhere (a
        point from a device profile)."""
        pos = self.positions.value(path)
        if pos.file != self.positions.value(()).file:
            return f"{pos.file} line {pos.line}"
        return pos.where()


def check_devices(
    devices: Sequence[CheckedDevice], data: Any, positions: Positions
) -> list[Problem]:
    """All whole-config problems of ``devices`` (whatever of them passed the schema).

    Args:
        devices: one :class:`CheckedDevice` per YAML device.
        data: the parsed YAML tree (for paths and names in messages).
        positions: node positions of ``data``.
    """
    ctx = _Ctx(data, positions)
    problems: list[Problem] = []
    problems += _duplicate_names(ctx)
    for d in devices:
        problems += _point_rules(ctx, d)
        problems += _overlaps(ctx, d)
    problems += _shared_buses(ctx, [(d.index, d.model) for d in devices if d.model is not None])
    return problems


def _duplicate_names(ctx: _Ctx) -> Iterator[Problem]:
    """Duplicate device names, and point names repeated anywhere in the site. Works on the raw
    tree so that a duplicate is found even in items that have other problems."""
    seen_devices: dict[str, Path_] = {}
    seen_points: dict[str, Path_] = {}
    devices = ctx.data.get("devices") if isinstance(ctx.data, dict) else None
    for i, dev in enumerate(devices if isinstance(devices, list) else []):
        if not isinstance(dev, dict):
            continue
        name, path = dev.get("name"), ("devices", i, "name")
        if isinstance(name, str) and name in seen_devices:
            first = ctx.where(seen_devices[name])
            yield ctx.at(path, f"duplicate device name '{name}' (first at {first})")
        if isinstance(name, str):
            seen_devices.setdefault(name, path)
        points = dev.get("points")
        for j, point in enumerate(points if isinstance(points, list) else []):
            pname = point.get("name") if isinstance(point, dict) else None
            if not isinstance(pname, str):
                continue
            ppath: Path_ = ("devices", i, "points", j, "name")
            if pname in seen_points:
                first = ctx.where(seen_points[pname])
                msg = f"duplicate point name '{pname}' (first at {first}); names are site-wide"
                yield ctx.at(ppath, msg)
            seen_points.setdefault(pname, ppath)


def _point_rules(ctx: _Ctx, d: CheckedDevice) -> Iterator[Problem]:
    for j, p in d.points:
        base: Path_ = ("devices", d.index, "points", j)
        if p.valid_min is not None and p.valid_max is not None and p.valid_min > p.valid_max:
            yield ctx.at(
                (*base, "valid_max"), f"valid_max {p.valid_max:g} < valid_min {p.valid_min:g}"
            )
        if isinstance(p, ModbusPointConfig):
            yield from _modbus_point_rules(ctx, base, d.addressing, p)


def _modbus_point_rules(
    ctx: _Ctx, base: Path_, addressing: str, p: ModbusPointConfig
) -> Iterator[Problem]:
    if p.type is None and p.register in ("holding", "input"):
        yield ctx.at(base, f"missing required key 'type' (a {p.register} register needs one)")
        return
    dtype = DataType(p.dtype)
    is_bit_table = TABLES[p.register].is_bit
    if is_bit_table and dtype is not DataType.BOOL:
        yield ctx.at((*base, "type"), f"a {p.register} is one bit: type must be bool, not {p.type}")
    if p.word_order is not None and (is_bit_table or dtype.registers == 1):
        yield ctx.at(
            (*base, "word_order"),
            f"word_order applies only to 32/64-bit types; {p.type} is one register "
            "(remove word_order, or use byte_order)",
        )
    if p.bit is not None and is_bit_table:
        yield ctx.at(
            (*base, "bit"), f"bit applies only to holding/input registers, not {p.register}"
        )
    elif p.bit is not None and dtype is not DataType.BOOL:
        yield ctx.at((*base, "bit"), f"bit needs type: bool (this point is {p.type})")
    elif p.bit is None and dtype is DataType.BOOL and not is_bit_table:
        yield ctx.at((*base, "type"), f"type bool in a {p.register} register needs bit: 0..15")
    if p.writable and p.register in _READ_ONLY:
        key = "write_only" if p.write_only else "writable"
        yield ctx.at(
            (*base, key),
            f"{_READ_ONLY[p.register]} are read-only in Modbus; use a coil or holding register",
        )
    if p.write_only and p.bit is not None:
        yield ctx.at(
            (*base, "write_only"),
            "a register bit is written by read-modify-write, which needs a read: it cannot be "
            "write-only (declare the whole register instead)",
        )
    try:
        address = pdu_address(p.register, p.address, addressing)
    except ValueError as exc:
        yield ctx.at((*base, "address"), str(exc))
        return
    width = 1 if is_bit_table else dtype.registers
    if address + width - 1 > 65535:
        yield ctx.at((*base, "address"), f"{p.type} at {address} runs past PDU address 65535")


def _overlaps(ctx: _Ctx, d: CheckedDevice) -> Iterator[Problem]:
    """Points of one device (one unit id) that use the same register or bit of one table.
    Bits of one register are fine as long as they differ.

    Each point is reported once, against the first point before it in the file that it overlaps.
    A sweep over the points sorted by address: O(n log n) plus the overlapping pairs, so a
    10,000-point device checks in milliseconds (comparing every pair took seconds)."""
    spans: list[_Span] = []
    for j, p in d.points:
        if not isinstance(p, ModbusPointConfig):
            continue
        try:
            first = pdu_address(p.register, p.address, d.addressing)
        except ValueError:
            continue  # reported by the point rules
        is_bit_table = TABLES[p.register].is_bit
        last = first + (1 if is_bit_table else DataType(p.dtype).registers) - 1
        bit = p.bit if p.dtype == "bool" and not is_bit_table else None
        spans.append(_Span(p.register, first, last, bit, j, p.name))
    earliest: dict[int, _Span] = {}  # point index -> first earlier point it overlaps
    active: list[_Span] = []
    for s in sorted(spans, key=lambda s: (s.register, s.first, s.index)):
        active = [a for a in active if a.register == s.register and a.last >= s.first]
        for a in active:
            if s.bit is not None and a.bit is not None and s.bit != a.bit:
                continue
            late, early = (s, a) if s.index > a.index else (a, s)
            if late.index not in earliest or early.index < earliest[late.index].index:
                earliest[late.index] = early
        active.append(s)
    by_index = {s.index: s for s in spans}
    for j in sorted(earliest):
        s, o = by_index[j], earliest[j]
        bits = f" bit {s.bit}" if s.bit is not None and o.bit is not None else ""
        yield ctx.at(
            ("devices", d.index, "points", j, "address"),
            f"{s.register} {s.span}{bits} overlaps point '{o.name}' ({o.register} {o.span}, "
            f"{ctx.where(('devices', d.index, 'points', o.index))}; PDU addresses)",
        )


@dataclass(frozen=True, slots=True)
class _Span:
    """The registers (or bits) one Modbus point uses: PDU addresses ``first``..``last``."""

    register: str
    first: int
    last: int
    bit: int | None
    index: int
    name: str

    @property
    def span(self) -> str:
        return f"{self.first}" if self.first == self.last else f"{self.first}–{self.last}"


def _shared_buses(ctx: _Ctx, devices: Sequence[tuple[int, DeviceConfig]]) -> Iterator[Problem]:
    serial: dict[str, tuple[int, ModbusRtuDevice]] = {}
    units: dict[tuple[str, ...], tuple[int, DeviceConfig]] = {}
    for i, d in devices:
        if isinstance(d, ModbusRtuDevice):
            if d.port in serial:
                k, first = serial[d.port]
                for key in _SERIAL_KEYS:
                    if getattr(d, key) != getattr(first, key):
                        yield ctx.at(
                            ("devices", i, key) if _given(ctx, i, key) else ("devices", i),
                            f"serial port {d.port} is shared with device '{first.name}' "
                            f"({ctx.where(('devices', k))}) which uses {key} "
                            f"{getattr(first, key)}, this one {getattr(d, key)}; every device on "
                            "one RS-485 bus needs the same baudrate, parity, stopbits, bytesize",
                        )
            serial.setdefault(d.port, (i, d))
            key_: tuple[str, ...] = ("rtu", d.port, str(d.unit_id))
            where = f"serial port {d.port}"
        elif isinstance(d, ModbusTcpDevice):
            key_ = ("tcp", d.host.lower(), str(d.port), str(d.unit_id))
            where = f"{d.host}:{d.port}"
        else:
            continue
        if key_ in units:
            k, first_dev = units[key_]
            yield ctx.at(
                ("devices", i, "unit_id"),
                f"unit id {d.unit_id} on {where} is already used by device '{first_dev.name}' "
                f"({ctx.where(('devices', k))})",
            )
        units.setdefault(key_, (i, d))
    yield from _gateway_broadcast(ctx, devices)


def _gateway_broadcast(ctx: _Ctx, devices: Sequence[tuple[int, DeviceConfig]]) -> Iterator[Problem]:
    """Unit id 0 on a Modbus TCP host:port that other devices share: that endpoint is a serial
    gateway (one unit id per device behind it), where 0 is the broadcast address."""
    endpoints: dict[tuple[str, int], list[tuple[int, ModbusTcpDevice]]] = {}
    for i, d in devices:
        if isinstance(d, ModbusTcpDevice):
            endpoints.setdefault((d.host.lower(), d.port), []).append((i, d))
    for (host, port), members in endpoints.items():
        if len(members) < 2:
            continue
        for i, d in members:
            if d.unit_id == 0:
                others = ", ".join(f"'{o.name}'" for _, o in members if o is not d)
                yield ctx.at(
                    ("devices", i, "unit_id"),
                    f"{host}:{port} is shared with {others}, so it is a gateway to several "
                    f"units; {BROADCAST_MESSAGE}",
                )


def _given(ctx: _Ctx, i: int, key: str) -> bool:
    return ("devices", i, key) in ctx.positions.values


def check_control(
    devices: Sequence[CheckedDevice], data: Any, positions: Positions
) -> list[Problem]:
    """Problems of ``control:`` against ``devices:``: a referenced point that does not exist,
    and a point the loop writes that is not writable. Skipped when ``control`` is absent or
    not a mapping (the schema reports that), and when ``devices`` is empty or missing (that
    one problem is reported; every point the loop names would be missing too)."""
    control = data.get("control") if isinstance(data, dict) else None
    if not isinstance(control, dict) or not data.get("devices"):
        return []
    ctx = _Ctx(data, positions)
    points: dict[str, PointCommon] = {p.name: p for d in devices for _, p in d.points}
    problems: list[Problem] = []
    refs: list[tuple[Path_, str, bool]] = []
    section = control.get("points")
    for key, value in section.items() if isinstance(section, dict) else []:
        refs.append((("control", "points", key), value, key in _CONTROL_WRITES))
    pumps = control.get("pumps")
    for i, pump in enumerate(pumps if isinstance(pumps, list) else []):
        for key, value in pump.items() if isinstance(pump, dict) else []:
            refs.append((("control", "pumps", i, key), value, key in PUMP_WRITES))
    for path, name, written in refs:
        if not isinstance(name, str):
            continue  # the schema reports it
        point = points.get(name)
        if point is None and ctx.positions.unresolved_name(name):
            continue  # maybe a point of a device whose profile is unreadable: reported there
        if point is None:
            msg = f"no point named '{name}' in devices"
            close = [n for n in points if n.lower() == name.lower()]
            if close:
                msg += f" (did you mean '{close[0]}'?)"
            problems.append(ctx.at(path, msg))
        elif written and not point.writable:
            problems.append(
                ctx.at(path, f"the control loop writes '{name}', but that point is not writable")
            )
        elif point.write_only and not (written and path[1] == "pumps"):
            why = "reads" if not written else "writes and reads back"
            problems.append(
                ctx.at(
                    path,
                    f"the control loop {why} '{name}', but that point is write-only (never "
                    "polled); only a pump's cmd and freq_ref may be write-only",
                )
            )
    problems += _write_only_feedback(control, points, ctx)
    problems += _check_pv_staleness(control, devices, ctx)
    problems += _check_pressures(control, ctx)
    problems += _check_direct_pv_poll(control, devices, ctx)
    problems += _check_confirm(control, devices, ctx)
    return problems


def _check_confirm(
    control: dict[str, Any], devices: Sequence[CheckedDevice], ctx: _Ctx
) -> list[Problem]:
    """A written point is given up after ``confirm.retry_s`` × ``max_tries`` without a poll
    reading it back: that must exceed its device's poll interval plus timeout, or a working
    device would be reported failed."""
    raw = control.get("confirm")
    confirm: dict[str, Any] = raw if isinstance(raw, dict) else {}
    fields = ConfirmConfig.model_fields
    retry = _number(confirm, "retry_s", fields["retry_s"].default)
    tries = _number(confirm, "max_tries", fields["max_tries"].default)
    if retry is None or tries is None:
        return []
    written: set[str] = set()
    section = control.get("points")
    for key, value in section.items() if isinstance(section, dict) else []:
        if key in _CONTROL_WRITES and isinstance(value, str):
            written.add(value)
    pumps = control.get("pumps")
    for pump in pumps if isinstance(pumps, list) else []:
        for key, value in pump.items() if isinstance(pump, dict) else []:
            if key in PUMP_WRITES and isinstance(value, str):
                written.add(value)
    where: Path_ = ("control", "confirm", "retry_s") if "retry_s" in confirm else ("control",)
    for d in devices:
        if d.model is None:
            continue
        for _, p in d.points:
            interval = p.poll_interval_s or d.model.poll_interval_s
            need = interval + d.model.timeout_s
            if p.name in written and retry * tries <= need:
                return [ctx.at(where, (
                    f"retry_s × max_tries = {retry * tries:g} s is not longer than the poll"
                    f" interval + timeout of '{p.name}' (device '{d.name}', {need:g} s): a write"
                    " could never be read back in time"
                ))]  # fmt: skip
    return []


DIRECT_PV_POLL_MAX_S = 0.25
"""Slowest outlet-pressure poll direct mode accepts, s. The PI (``pid`` defaults) is tuned for
a 0.2 s poll and period: on the simulator a 0.05 MPa step overshot by ≤ 1.5 kPa at 0.2 s, and by
11–14 kPa with ringing at the 1 s poll (issue 13's trials)."""


def _check_direct_pv_poll(
    control: dict[str, Any], devices: Sequence[CheckedDevice], ctx: _Ctx
) -> list[Problem]:
    """Direct mode closes the loop on ``points.pv``: its poll interval must be at most
    :data:`DIRECT_PV_POLL_MAX_S`."""
    points = control.get("points")
    pv = points.get("pv") if isinstance(points, dict) else None
    if control.get("mode") != "direct" or not isinstance(pv, str):
        return []
    for d in devices:
        for _, p in d.points:
            interval = p.poll_interval_s or (d.model.poll_interval_s if d.model else None)
            if p.name == pv and interval is not None and interval > DIRECT_PV_POLL_MAX_S:
                return [ctx.at(("control", "points", "pv"), (
                    f"direct mode closes the loop on '{pv}', polled every {interval:g} s"
                    f" (device '{d.name}'): poll it every {DIRECT_PV_POLL_MAX_S:g} s or"
                    " faster (the PI is tuned for 0.2 s; at 1 s a 0.05 MPa step overshoots"
                    " 11–14 kPa and rings), or use supervisory mode"
                ))]  # fmt: skip
    return []


def _number(section: Any, key: str, default: Any) -> float | None:
    """``section[key]`` (or the model default) when it is a number, else ``None``."""
    value = section.get(key, default) if isinstance(section, dict) else default
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _check_pressures(control: dict[str, Any], ctx: _Ctx) -> list[Problem]:
    """Setpoints, remote bounds, clock-program values and interlocks that contradict each
    other, each reported at the key to change and naming the other key with its place:

    * every setpoint that can be in force (``setpoint_mpa``, each ``clock_program`` value,
      ``remote.max_mpa``) must lie below the high-outlet interlock ``interlocks.outlet_max_mpa``
      (else the interlock stops the pumps at the setpoint), and the local and clock-program
      setpoints within ``remote.min_mpa``–``remote.max_mpa`` (else no remote request could
      come back to them in bounds);
    * ``interlocks.outlet_recover_mpa`` must lie below ``outlet_max_mpa`` (else it never trips
      cleanly), ``suction_recover_mpa`` at or above ``suction_min_mpa``.
    """
    il, remote = control.get("interlocks"), control.get("remote")
    il = il if isinstance(il, dict) else {}
    remote = remote if isinstance(remote, dict) else {}
    fields = Interlocks.model_fields
    out_max = _number(il, "outlet_max_mpa", fields["outlet_max_mpa"].default)
    r_min = _number(remote, "min_mpa", Remote.model_fields["min_mpa"].default)
    r_max = _number(remote, "max_mpa", Remote.model_fields["max_mpa"].default)
    sp_default = ControlConfig.model_fields["setpoint_mpa"].default
    setpoints: list[tuple[Path_, float | None]] = [
        (("control", "setpoint_mpa"), _number(control, "setpoint_mpa", sp_default))
    ]
    program = control.get("clock_program")
    for i, period in enumerate(program if isinstance(program, list) else []):
        path: Path_ = ("control", "clock_program", i, "setpoint_mpa")
        setpoints.append((path, _number(period, "setpoint_mpa", None)))

    def named(path: Path_, key: str, given: bool) -> str:
        if not given:
            return f"control.{key} (default)"
        pos = ctx.positions.value(path)
        return f"control.{key} ({pos.file}:{pos.line}:{pos.column})"

    max_path: Path_ = ("control", "interlocks", "outlet_max_mpa")
    max_ref = named(max_path, "interlocks.outlet_max_mpa", "outlet_max_mpa" in il)
    problems: list[Problem] = []
    if out_max is not None:
        rmax_path: Path_ = ("control", "remote", "max_mpa")
        for path, value in [*setpoints, (rmax_path, r_max)]:
            if value is not None and value >= out_max and (path in ctx.positions.values
                                                           or path == rmax_path):  # fmt: skip
                where = path if path in ctx.positions.values else max_path
                problems.append(ctx.at(where, (
                    f"{value:g} MPa is not below the high-outlet interlock {max_ref} ="
                    f" {out_max:g} MPa: the interlock would stop the pumps at this setpoint"
                )))  # fmt: skip
        recover = _number(il, "outlet_recover_mpa", fields["outlet_recover_mpa"].default)
        if recover is not None and recover >= out_max:
            where = ("control", "interlocks", "outlet_recover_mpa")
            problems.append(ctx.at(where if "outlet_recover_mpa" in il else max_path, (
                f"{recover:g} MPa is not below {max_ref} = {out_max:g} MPa: the high-outlet"
                " interlock would never clear"
            )))  # fmt: skip
    if r_min is not None and r_max is not None:
        lo = named(("control", "remote", "min_mpa"), "remote.min_mpa", "min_mpa" in remote)
        hi = named(("control", "remote", "max_mpa"), "remote.max_mpa", "max_mpa" in remote)
        bounds = f"the remote bounds {lo} = {r_min:g} MPa and {hi} = {r_max:g} MPa"
        for path, value in setpoints:
            if value is not None and not r_min <= value <= r_max and path in ctx.positions.values:
                problems.append(ctx.at(path, f"{value:g} MPa is outside {bounds}"))
    s_min = _number(il, "suction_min_mpa", fields["suction_min_mpa"].default)
    s_rec = _number(il, "suction_recover_mpa", fields["suction_recover_mpa"].default)
    if s_min is not None and s_rec is not None and s_rec < s_min:
        where = ("control", "interlocks", "suction_recover_mpa")
        smin_ref = named(("control", "interlocks", "suction_min_mpa"), "interlocks.suction_min_mpa",
                         "suction_min_mpa" in il)  # fmt: skip
        problems.append(ctx.at(where if "suction_recover_mpa" in il else ("control", "interlocks"),
                               f"{s_rec:g} MPa is below {smin_ref} = {s_min:g} MPa"))  # fmt: skip
    return problems


def _check_pv_staleness(
    control: dict[str, Any], devices: Sequence[CheckedDevice], ctx: _Ctx
) -> list[Problem]:
    """``control.sensor.stale_s`` must exceed the outlet pressure's poll interval, or every
    reading would count as stale and the loop would sit in its fallback."""
    points, raw_sensor = control.get("points"), control.get("sensor")
    pv = points.get("pv") if isinstance(points, dict) else None
    sensor: dict[str, Any] = raw_sensor if isinstance(raw_sensor, dict) else {}
    stale = sensor.get("stale_s", Sensor.model_fields["stale_s"].default)
    if not isinstance(pv, str) or isinstance(stale, bool) or not isinstance(stale, int | float):
        return []
    where: Path_ = (
        ("control", "sensor", "stale_s") if "stale_s" in sensor else ("control", "points", "pv")
    )
    for d in devices:
        for _, p in d.points:
            interval = p.poll_interval_s or (d.model.poll_interval_s if d.model else None)
            if p.name == pv and interval is not None and stale <= interval:
                msg = (
                    f"stale_s {stale:g} s is not longer than the poll interval of '{pv}'"
                    f" ({interval:g} s): every reading would be stale"
                )
                return [ctx.at(where, msg)]
    return []


_CONTROL_WRITES = {"setpoint", "run_enable", "cabinet_mode"}
"""``control.points`` keys the loop writes (the others it reads)."""

_PUMP_COMMANDS = ("cmd", "freq_ref")
"""``control.pumps`` keys of the drive commands, which may be write-only (their feedback is
``freq``)."""


def _write_only_feedback(
    control: dict[str, Any], points: dict[str, PointCommon], ctx: _Ctx
) -> list[Problem]:
    """A pump whose ``cmd`` or ``freq_ref`` is write-only must have ``freq`` (the drive's
    output frequency): it is the only way the loop sees that its writes took effect."""
    out = []
    pumps = control.get("pumps")
    for i, pump in enumerate(pumps if isinstance(pumps, list) else []):
        if not isinstance(pump, dict) or isinstance(pump.get("freq"), str):
            continue
        for key in _PUMP_COMMANDS:
            name = pump.get(key)
            point = points.get(name) if isinstance(name, str) else None
            if point is not None and point.write_only:
                msg = (
                    f"'{point.name}' is write-only, so it cannot be read back: give the pump's "
                    "freq (output frequency) too, the feedback that shows the write took effect"
                )
                out.append(ctx.at(("control", "pumps", i, key), msg))
    return out
