"""RS-485 pressure transmitters (suction unit 21, outlet unit 22), generic Chinese "v1" map.

Imitates the generic RS-485 pressure transmitter documented by Lobaro, map version 1 (domain.md
§4.9, [S56]): holding registers 0x0000 slave address, 0x0001 baud code (4 = 19200), 0x0002 unit
(1 = kPa), 0x0003 decimal places, 0x0004 measured value int16 = value / 10^dp, 0x0005/0x0006
range zero/full (same scaling), 0x000C zero offset (R/W). 0x0000–0x000C answer; other addresses
answer exception 2. Configured here for kPa with 1 decimal (0.1 kPa = 0.0001 MPa per count).
"""

from __future__ import annotations

from hil_sim.devices.registers import MapPoint, Number, RegisterMap
from hil_sim.modbus.slave import RegisterBank
from hil_sim.plant import Plant

HR = "holding_register"
UNIT_KPA = 1
"""0x0002 unit code 1 = kPa ([S56] v1)."""
DECIMALS = 1
BAUD_19200 = 4
"""0x0001 baud code 4 = 19200 ([S56])."""


def transmitter_points(prefix: str) -> list[MapPoint]:
    """Map of one transmitter whose value point is named ``prefix`` (``p_in`` or ``p_out``)."""
    return [
        MapPoint(f"{prefix}.unit_code", HR, 0x0002, "uint16",
                 description="0x0002 unit (1 = kPa)"),
        MapPoint(f"{prefix}.decimals", HR, 0x0003, "uint16",
                 description="0x0003 decimal places"),
        MapPoint(prefix, HR, 0x0004, "int16", "MPa", scale=0.0001,
                 description="0x0004 pressure, int16 kPa / 10^dp", valid_min=-0.1, valid_max=1.6),
        MapPoint(f"{prefix}.range_full", HR, 0x0006, "int16", "MPa",
                 scale=0.0001, description="0x0006 range full scale"),
    ]  # fmt: skip


class PressureTransmitter:
    """One transmitter; ``which`` is ``"p_in"`` (suction, unit 21) or ``"p_out"`` (unit 22)."""

    transport = "modbus-rtu"
    max_read_registers = 125

    def __init__(self, plant: Plant, which: str, bank: RegisterBank | None = None) -> None:
        if which not in ("p_in", "p_out"):
            raise ValueError(which)
        self.plant = plant
        self.which = which
        self.unit_id = 21 if which == "p_in" else 22
        self.name = "pt_suction" if which == "p_in" else "pt_outlet"
        self.bank = bank or RegisterBank(self.unit_id)
        self.map = RegisterMap(self.bank, transmitter_points(which), blocks=[(HR, 0, 0x000C)])
        self.bank.set(HR, 0x0000, self.unit_id)
        self.bank.set(HR, 0x0001, BAUD_19200)
        self.full_scale_mpa = 1.0 if which == "p_in" else 1.6
        self.update()

    def update(self) -> None:
        """Serve the measured pressure."""
        pl = self.plant
        value: Number = pl.p_in_meas if self.which == "p_in" else pl.p_out_tx
        self.map.publish(
            {
                self.which: value,
                f"{self.which}.unit_code": UNIT_KPA,
                f"{self.which}.decimals": DECIMALS,
                f"{self.which}.range_full": self.full_scale_mpa,
            }
        )
