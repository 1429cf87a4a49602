"""Pump VFDs on the RS-485 bus (units 11, 12, 13) with the INVT Goodrive GD200A register map.

Imitates the INVT Goodrive communication map shared by GD200A/GD200L/GD350/GD10 (domain.md §4.4):
2000H command (1 fwd run … 5 stop, 6 coast stop, 7 fault reset) and 2001H communication
frequency setpoint in 0.01 Hz ([S70][S71]); 2100H status word 1 (1 fwd running, 3 stopped,
4 fault, [S71][S72]); 2101H status word 2, 2102H fault code, 2103H device id ([S73]);
3000H–3014H monitors with the GD300 scalings: frequencies ×100, bus voltage ×10, output voltage
×1, output current ×10 ([S73][S74]). At most 16 words per read (INVT e-book 9.4.1, [S57]); longer
reads answer exception 3. Served: 2000H–2003H, 2100H–2103H, 3000H–3014H.

Communication loss (domain.md §2: "configure the drive watchdog and refresh faster than the
timeout"): parameter P14.04 communication timeout (0.1 s, 0 = off) at 0E04H and P14.05 action
at 0E05H (Pxx.yy → xx<<8 | yy, domain.md §4.4 [S58]); the parameter numbers and the action
codes 0 trip and coast, 1 continue at the last speed, 2 stop are recalled from the INVT
manual (⚠ not in domain.md); 20 = hand control back to the cabinet is the simulator's
extension (like cabinet mode 20). Served: 0E04H–0E05H.

Assumptions (not from a manual): 2101H bit 0 = ready; 3006H output power int16 in 0.1 kW; 3007H
torque int16 in 0.1 %; device id 0x010C (the GD200L value of [S73]). Writes to 2000H/2001H are
stored always but act only while the cabinet is in bus mode and the pump in auto (like P00.01 =
communication, [S75]); each resets the drive's comms watchdog.
"""

from __future__ import annotations

from hil_sim.devices.registers import LimitedBank, MapPoint, Number, RegisterMap
from hil_sim.drive import WatchdogAction
from hil_sim.modbus.slave import ILLEGAL_DATA_VALUE, ModbusError
from hil_sim.plant import Plant

HR = "holding_register"
UNIT_IDS = (11, 12, 13)
MAX_READ = 16
DEVICE_ID = 0x010C
COMM_ACTIONS = {
    0: WatchdogAction.STOP_TRIP,
    1: WatchdogAction.FREEZE,
    2: WatchdogAction.STOP,
    20: WatchdogAction.LOCAL,
}
"""P14.05 codes → the drive model's communication-loss action (see the module docstring)."""
COMM_CODES = {a: c for c, a in COMM_ACTIONS.items()}

RATED_RPM = 2900.0
"""Speed at 50 Hz of a 2-pole motor, rpm (typical nameplate value)."""
MAINS_V = 380.0
"""Motor rated voltage, V (Chinese 380 V three-phase supply)."""


def vfd_points(n: int) -> list[MapPoint]:
    """Map of the drive of pump ``n`` (1-based); point names ``pump{n}.…``."""
    p = f"pump{n}"
    return [
        MapPoint(f"{p}.cmd", HR, 0x2000, "uint16", writable=True,
                 description="2000H command: 1 run, 5 stop, 6 coast, 7 reset"),
        MapPoint(f"{p}.freq_ref", HR, 0x2001, "uint16", "Hz", scale=0.01, writable=True,
                 description="2001H comm frequency setpoint, 0.01 Hz", valid_min=0, valid_max=50),
        MapPoint(f"{p}.state", HR, 0x2100, "uint16",
                 description="2100H status: 1 fwd running, 3 stopped, 4 fault"),
        MapPoint(f"{p}.ready", HR, 0x2101, "bool", bit=0, description="2101H bit 0 ready"),
        MapPoint(f"{p}.fault_code", HR, 0x2102, "uint16", description="2102H fault code"),
        MapPoint(f"{p}.freq", HR, 0x3000, "uint16", "Hz", scale=0.01,
                 description="3000H running frequency", valid_min=0, valid_max=50),
        MapPoint(f"{p}.freq_set", HR, 0x3001, "uint16", "Hz", scale=0.01,
                 description="3001H set frequency"),
        MapPoint(f"{p}.dc_bus", HR, 0x3002, "uint16", "V", scale=0.1,
                 description="3002H DC bus voltage"),
        MapPoint(f"{p}.voltage", HR, 0x3003, "uint16", "V", description="3003H output voltage"),
        MapPoint(f"{p}.current", HR, 0x3004, "uint16", "A", scale=0.1,
                 description="3004H output current"),
        MapPoint(f"{p}.speed", HR, 0x3005, "uint16", "rpm", description="3005H speed"),
        MapPoint(f"{p}.power", HR, 0x3006, "int16", "kW", scale=0.1,
                 description="3006H output power (0.1 kW, assumed)"),
        MapPoint(f"{p}.torque", HR, 0x3007, "int16", "%", scale=0.1,
                 description="3007H output torque (0.1 %, assumed)"),
        MapPoint(f"{p}.comm_timeout", HR, 0x0E04, "uint16", "s", scale=0.1, writable=True,
                 description="P14.04 comm timeout, 0.1 s (0 = off)", valid_min=0, valid_max=60),
        MapPoint(f"{p}.comm_action", HR, 0x0E05, "uint16", writable=True,
                 description="P14.05 comm-loss action: 0 trip, 1 continue, 2 stop, 20 to cabinet"),
    ]  # fmt: skip


class Vfd:
    """The drive of pump ``n`` (1-based) at unit id ``10 + n``."""

    transport = "modbus-rtu"
    max_read_registers = MAX_READ

    def __init__(self, plant: Plant, n: int) -> None:
        self.plant = plant
        self.n = n
        self.unit_id = 10 + n
        self.name = f"vfd{n}"
        self.last_cmd = 0
        self.bank = LimitedBank(self.unit_id, MAX_READ)
        self.map = RegisterMap(
            self.bank,
            vfd_points(n),
            blocks=[
                (HR, 0x0E04, 0x0E05),
                (HR, 0x2000, 0x2003),
                (HR, 0x2100, 0x2103),
                (HR, 0x3000, 0x3014),
            ],
            on_write=self._write,
        )
        self.bank.set(HR, 0x2103, DEVICE_ID)
        self.update()

    @property
    def points(self) -> list[MapPoint]:
        """The served points."""
        return self.map.points

    def update(self) -> None:
        """Serve the drive's state."""
        pump = self.plant.pumps[self.n - 1]
        d = pump.drive
        p = f"pump{self.n}"
        f = d.f_out_hz
        volts = MAINS_V * min(f / d.f_max_hz, 1.0)
        # I = P / (√3·U·cos φ), cos φ 0.8 assumed; magnetising current keeps ≥ 30 % at idle.
        amps = pump.power_kw * 1000.0 / (1.732 * max(volts, 40.0) * 0.8) if f > 0 else 0.0
        values: dict[str, Number] = {
            f"{p}.cmd": self.last_cmd,
            f"{p}.freq_ref": d.bus_freq_hz,
            f"{p}.state": int(d.status),
            f"{p}.ready": True,
            f"{p}.fault_code": d.fault_code,
            f"{p}.freq": f,
            f"{p}.freq_set": d.f_target_hz,
            f"{p}.dc_bus": 537.0,
            f"{p}.voltage": volts,
            f"{p}.current": amps,
            f"{p}.speed": RATED_RPM * d.speed_hz / d.f_max_hz,
            f"{p}.power": pump.power_kw,
            f"{p}.torque": (
                100.0 * (pump.power_kw / max(d.speed_hz, 1.0)) / (2.2 / d.f_max_hz)
                if d.speed_hz > 0
                else 0.0
            ),
            f"{p}.comm_timeout": d.comm_timeout_s,
            f"{p}.comm_action": COMM_CODES.get(d.comm_action, 1),
        }
        self.map.publish(values)

    def _write(self, point: MapPoint, value: Number) -> None:
        try:
            if point.name.endswith(".cmd"):
                self.plant.vfd_command(self.n - 1, int(value))
                self.last_cmd = int(value)
            elif point.name.endswith(".freq_ref"):
                if not 0.0 <= float(value) <= self.plant.pumps[self.n - 1].drive.f_max_hz:
                    raise ValueError(value)
                self.plant.vfd_frequency(self.n - 1, float(value))
            elif point.name.endswith(".comm_timeout"):
                if not 0.0 <= float(value) <= 60.0:
                    raise ValueError(value)
                self.plant.pumps[self.n - 1].drive.comm_timeout_s = float(value)
            elif point.name.endswith(".comm_action"):
                self.plant.pumps[self.n - 1].drive.comm_action = COMM_ACTIONS[int(value)]
        except (ValueError, KeyError):
            raise ModbusError(ILLEGAL_DATA_VALUE) from None
        finally:
            self.update()
