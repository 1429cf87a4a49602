"""An ABB ACS580 drive on the TCP gateway (unit 3): the break tank's circulation pump.

Imitates the ACS580 / ACQ580 embedded fieldbus with the ABB Drives profile and the default
Data I/O 1–6 (parameters 58.101–58.106; domain.md §4.1, [S47]): 400001 control word, 400002
reference 1, 400003 reference 2, 400004 status word, 400005 actual 1 (output frequency),
400006 actual 2 (torque); 6-digit register numbers, so PDU addresses 0–5. Scaling: reference
and actual 1 ±20000 = ±46.02 frequency scaling, taken as 50 Hz; torque ±10000 = 46.03 = 100 %
([S61][S62]). Only addresses 0–5 answer (others: exception 2).

Control word (ABB Drives profile, [S63][S64]): bits 0–3 (OFF1, OFF2, OFF3, enable operation)
all set = run (0x047F), bit 0 clear = ramp stop (0x047E); a rising bit 7 resets a trip.
Status word bits (⚠ recall): 0 ready to switch on, 1 ready to run, 2 running (RDY_REF), 3
tripped, 8 at setpoint, 9 remote. The pump is not part of the booster hydraulics: it circulates
the break tank; torque follows the fan/pump law (∝ f², 60 % at 50 Hz, assumed).
"""

from __future__ import annotations

from hil_sim.devices.registers import MapPoint, Number, RegisterMap
from hil_sim.modbus.slave import ILLEGAL_DATA_VALUE, ModbusError, RegisterBank
from hil_sim.plant import Plant

UNIT_ID = 3
HR = "holding_register"
HZ_PER_COUNT = 50.0 / 20000.0
"""Reference/actual 1 scaling: 20000 = 46.02, here 50 Hz ([S61][S62])."""
RAMP_HZ_PER_S = 5.0
"""Acceleration and deceleration ramp, Hz/s (ACS580 default ramp times are drive data; assumed)."""
RUN_BITS = 0x000F
RESET_BIT = 0x0080


def acs580_points(prefix: str = "circ.") -> list[MapPoint]:
    """The drive's map; point names ``{prefix}…`` (profile ``abb-acs580``)."""
    p = prefix
    return [
        MapPoint(f"{p}control_word", HR, 0, "uint16", writable=True,
                 description="400001 control word (ABB Drives profile)"),
        MapPoint(f"{p}reference", HR, 1, "int16", "Hz", scale=HZ_PER_COUNT, writable=True,
                 description="400002 reference 1", valid_min=0, valid_max=50),
        MapPoint(f"{p}running", HR, 3, "bool", bit=2, description="400004 bit 2 running"),
        MapPoint(f"{p}tripped", HR, 3, "bool", bit=3, description="400004 bit 3 tripped"),
        MapPoint(f"{p}at_setpoint", HR, 3, "bool", bit=8, description="400004 bit 8 at setpoint"),
        MapPoint(f"{p}remote", HR, 3, "bool", bit=9, description="400004 bit 9 remote"),
        MapPoint(f"{p}freq", HR, 4, "int16", "Hz", scale=HZ_PER_COUNT,
                 description="400005 actual 1, output frequency", valid_min=-50, valid_max=50),
        MapPoint(f"{p}torque", HR, 5, "int16", "%", scale=0.01,
                 description="400006 actual 2, torque"),
    ]  # fmt: skip


class Acs580:
    """The circulation pump's drive (see the module docstring)."""

    name = "circ_drive"
    transport = "modbus-tcp"
    unit_id = UNIT_ID
    max_read_registers = 125

    def __init__(self, plant: Plant, bank: RegisterBank | None = None) -> None:
        self.plant = plant
        self.bank = bank or RegisterBank(UNIT_ID)
        self.control_word = 0x047E
        self.reference_hz = 0.0
        self.f_hz = 0.0
        self.tripped = False
        self._t = plant.t_s
        self.map = RegisterMap(
            self.bank, acs580_points(), blocks=[(HR, 0, 5)], on_write=self._write
        )
        self.update()

    def update(self) -> None:
        """Ramp the output frequency over the plant time since the last update; serve it."""
        dt = max(0.0, self.plant.t_s - self._t)
        self._t = self.plant.t_s
        run = self.control_word & RUN_BITS == RUN_BITS and not self.tripped
        target = self.reference_hz if run else 0.0
        step = RAMP_HZ_PER_S * dt
        self.f_hz += max(-step, min(step, target - self.f_hz))
        status = 0x0001 | 0x0200  # ready to switch on, remote
        if self.control_word & 0x0001:
            status |= 0x0002
        if run and self.f_hz > 0.0:
            status |= 0x0004
        if self.tripped:
            status |= 0x0008
        if run and abs(self.f_hz - target) < 0.1:
            status |= 0x0100
        values: dict[str, Number] = {
            "circ.control_word": self.control_word,
            "circ.reference": self.reference_hz,
            "circ.running": bool(status & 0x0004),
            "circ.tripped": bool(status & 0x0008),
            "circ.at_setpoint": bool(status & 0x0100),
            "circ.remote": bool(status & 0x0200),
            "circ.freq": self.f_hz,
            "circ.torque": 60.0 * (self.f_hz / 50.0) ** 2,
        }
        self.map.publish(values)
        self.bank.set(HR, 3, status)  # the whole word, bits 0, 1 and 9 included

    def _write(self, point: MapPoint, value: Number) -> None:
        if point.name == "circ.control_word":
            word = int(value)
            if word & RESET_BIT and not self.control_word & RESET_BIT:
                self.tripped = False
            self.control_word = word
        elif point.name == "circ.reference":
            hz = float(value)
            if not 0.0 <= hz <= 50.0:
                raise ModbusError(ILLEGAL_DATA_VALUE)
            self.reference_hz = hz
        self.update()
