"""The booster control cabinet (PLC) at Modbus TCP unit 1, in the style of Wilo-Control CC-FC.

Imitates the Wilo-Control CC/SC/EC-Booster Modbus table (holding registers, protocol address =
register − 40001; I&O manual p.21 [S4], EC-Booster overview and data types [S80][S81], domain.md
§4.7). Served addresses 0–169 answer (reserved ones read 0); a vendor extension block at
300–331 adds float, 32/64-bit and counter values a modern PLC exposes; coils 0–7 and discrete
inputs 0–7 carry PLC I/O. Everything else answers exception 2.

Not Wilo's: control mode value 20 ("bus": the drives follow their own fieldbus commands), the
extension block, the coils and discrete inputs.
"""

from __future__ import annotations

from hil_sim.devices.registers import MapPoint, Number, RegisterMap
from hil_sim.modbus.slave import ILLEGAL_DATA_VALUE, ModbusError, RegisterBank
from hil_sim.plant import Plant

UNIT_ID = 1
HR = "holding_register"
CABINET_TYPE_CC_FC = 4
"""Wilo 40003 cabinet type 4 = CC-FC (cascade with Danfoss FC 202 drives, [S4])."""

FAULT_BITS = {"alarm.sensor": 0, "alarm.max_pressure": 1, "alarm.min_pressure": 2}
FAULT_BITS |= {"alarm.dry_run": 4, "pump1.error": 5, "pump2.error": 6, "pump3.error": 7}
"""Wilo 40139–40140 fault bitmap ([S4]): bit 0 sensor, 1 max pressure, 2 min pressure,
4 dry running, 5–12 pump 1–8 error. A big-endian BITMAP32: bits 0–15 sit in register 40140
(served as bit points; 40139, the high word, reads 0)."""


def cabinet_points() -> list[MapPoint]:
    """The cabinet's register map (see the module docstring)."""
    pts = [
        MapPoint("cabinet.type", HR, 2, "uint16", description="40003 cabinet type (4 = CC-FC)"),
        MapPoint("cabinet.drives_on", HR, 14, "uint16", writable=True,
                 description="40015 drives on/off (1 = on)", valid_min=0, valid_max=1),
        MapPoint("cabinet.mode", HR, 24, "uint16", writable=True,
                 description="40025 control mode: 0 constant pressure (p-c), 20 bus (sim)"),
        MapPoint("cabinet.p_out", HR, 25, "int16", "MPa", scale=0.01,
                 description="40026 actual value, 0.1 bar"),
        MapPoint("cabinet.setpoint_active", HR, 26, "int16", "MPa", scale=0.01,
                 description="40027 current setpoint, 0.1 bar"),
    ]  # fmt: skip
    for i in range(3):
        pts.append(MapPoint(f"pump{i + 1}.mode", HR, 40 + i, "uint16", writable=True,
                            description=f"4004{i + 1} pump {i + 1} mode: 0 off, 1 hand, 2 auto",
                            valid_min=0, valid_max=2))  # fmt: skip
    state = {"cabinet.run_signal": 0, "cabinet.fault_signal": 1, "pump1.running": 2}
    state |= {"pump2.running": 3, "pump3.running": 4, "cabinet.sleeping": 5}
    for name, bit in state.items():
        pts.append(MapPoint(name, HR, 61, "bool", bit=bit,
                            description=f"40062 state bitmap bit {bit}"))  # fmt: skip
    pts += [
        MapPoint("setpoint", HR, 67, "uint16", "MPa", scale=0.01, writable=True,
                 description="40068 setpoint 1, 0.1 bar", valid_min=0.05, valid_max=1.2),
    ]  # fmt: skip
    for name, bit in FAULT_BITS.items():
        pts.append(MapPoint(name, HR, 139, "bool", bit=bit,
                            description=f"40140 fault bitmap bit {bit}"))  # fmt: skip
    pts += [
        MapPoint("cabinet.ack", HR, 140, "uint16", writable=True,
                 description="40141 acknowledge faults (write 1)", valid_min=0, valid_max=1),
        # --- vendor extension block (simulator) ---
        MapPoint("cabinet.p_in_f", HR, 300, "float32", "MPa", description="suction pressure"),
        MapPoint("cabinet.p_out_f", HR, 302, "float32", "MPa", description="outlet pressure"),
        MapPoint("cabinet.flow", HR, 304, "float32", "m³/h", description="outlet flow"),
        MapPoint("cabinet.pumps_running", HR, 306, "uint16", description="pumps running"),
        MapPoint("cabinet.p_error", HR, 308, "int32", "MPa", scale=1e-6,
                 description="control deviation setpoint - actual, Pa"),
        MapPoint("cabinet.energy", HR, 310, "uint64", "kWh", scale=0.001,
                 description="energy of all pumps, Wh"),
    ]  # fmt: skip
    for i in range(3):
        pts.append(MapPoint(f"pump{i + 1}.run_hours", HR, 314 + 2 * i, "uint32", "h",
                            scale=0.01, description=f"pump {i + 1} running hours"))  # fmt: skip
        pts.append(MapPoint(f"pump{i + 1}.starts", HR, 320 + i, "uint16",
                            description=f"pump {i + 1} starts"))  # fmt: skip
    pts += [
        MapPoint("cabinet.volume", HR, 324, "float64", "m³", description="delivered volume"),
        MapPoint("cabinet.horn_off", "coil", 0, "bool", writable=True,
                 description="coil 0: silence alarm horn"),
        MapPoint("cabinet.alarm_ack", "coil", 1, "bool", writable=True,
                 description="coil 1: acknowledge faults (self-resetting)"),
        MapPoint("di.suction_low", "discrete_input", 0, "bool",
                 description="DI 0: suction low-pressure switch"),
        MapPoint("di.main_breaker", "discrete_input", 1, "bool",
                 description="DI 1: main breaker on"),
        MapPoint("di.phase_ok", "discrete_input", 2, "bool", description="DI 2: phase monitor OK"),
    ]  # fmt: skip
    return pts


class Cabinet:
    """The cabinet device: serves the plant's cabinet view and applies master writes.

    Args:
        plant: the plant it controls.
        bank: the bank to serve from (unit id :data:`UNIT_ID` by default).
    """

    name = "cabinet"
    transport = "modbus-tcp"
    unit_id = UNIT_ID
    max_read_registers = 125

    def __init__(self, plant: Plant, bank: RegisterBank | None = None) -> None:
        self.plant = plant
        self.bank = bank or RegisterBank(UNIT_ID)
        self.horn_off = False
        self.map = RegisterMap(
            self.bank,
            cabinet_points(),
            blocks=[(HR, 0, 169), (HR, 300, 331), ("coil", 0, 7), ("discrete_input", 0, 7)],
            on_write=self._write,
        )
        self.map.publish({"cabinet.type": CABINET_TYPE_CC_FC})
        self.update()

    def update(self) -> None:
        """Serve the plant's current state."""
        pl = self.plant
        faults = {"alarm.sensor": False} | {f"alarm.{k}": v for k, v in pl.alarms.items()}
        for i, pump in enumerate(pl.pumps):
            faults[f"pump{i + 1}.error"] = bool(pump.drive.fault_code)
        bitmap = sum(1 << FAULT_BITS[k] for k, v in faults.items() if v)
        running = [p.drive.f_out_hz > 0.0 for p in pl.pumps]
        values: dict[str, Number] = {
            "cabinet.drives_on": int(pl.drives_on),
            "cabinet.mode": pl.mode,
            "cabinet.p_out": pl.p_out_meas,
            "cabinet.setpoint_active": pl.setpoint,
            "cabinet.run_signal": any(running),
            "cabinet.fault_signal": bitmap != 0,
            "cabinet.sleeping": pl.sleeping,
            "setpoint": pl.setpoint,
            "cabinet.ack": 0,
            "cabinet.p_in_f": pl.p_in_meas,
            "cabinet.p_out_f": pl.p_out_meas,
            "cabinet.flow": pl.flow_meas_m3h,
            "cabinet.pumps_running": sum(running),
            "cabinet.p_error": pl.setpoint - pl.p_out_meas,
            "cabinet.energy": sum(p.energy_kwh for p in pl.pumps),
            "cabinet.volume": pl.total_m3,
            "cabinet.horn_off": self.horn_off,
            "cabinet.alarm_ack": False,
            "di.suction_low": pl.p_in < pl.params.dry_run_mpa,
            "di.main_breaker": True,
            "di.phase_ok": pl.phase_ok,
        }
        values |= faults
        for i, pump in enumerate(pl.pumps):
            n = i + 1
            values[f"pump{n}.mode"] = pump.mode
            values[f"pump{n}.running"] = running[i]
            values[f"pump{n}.run_hours"] = pump.run_s / 3600.0
            values[f"pump{n}.starts"] = pump.starts
        self.map.publish(values)

    def _write(self, point: MapPoint, value: Number) -> None:
        pl = self.plant
        try:
            if point.name == "setpoint":
                pl.set_setpoint(round(float(value), 2))
            elif point.name == "cabinet.mode":
                pl.set_mode(int(value))
            elif point.name == "cabinet.drives_on":
                if int(value) not in (0, 1):
                    raise ValueError(value)
                pl.drives_on = bool(value)
            elif point.name.endswith(".mode"):
                pl.set_pump_mode(int(point.name[4]) - 1, int(value))
            elif point.name in ("cabinet.ack", "cabinet.alarm_ack"):
                if value:
                    pl.acknowledge()
            elif point.name == "cabinet.horn_off":
                self.horn_off = bool(value)
        except ValueError:
            raise ModbusError(ILLEGAL_DATA_VALUE) from None
        self.update()
