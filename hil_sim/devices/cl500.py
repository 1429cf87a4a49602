"""A Xylem CL500 online chlorine analyser on the TCP gateway (unit 4).

Imitates the CL500 Modbus map (domain.md §4.10): input registers 30001–30002 chlorine reading
as a float with the least significant word first ([S35]: "first register = least-significant
word", word order little / CDAB), 30010 reading status (1 normal, 2 over range, 3 under range,
4 need standard, 5 need sample, 6 reading error), 30012 error summary bitmap (bit 0 error,
1 alarm 1, 2 alarm 2, 3 calibration error; bit order as the manual lists them, ⚠); holding
registers 40001 decimal places (default 2) and 40002 units (0 ppm, 1 mg/L) ([S85]). Served:
input 0–11, holding 0–11. It measures the plant's free chlorine at the outlet (the same water
as the OPC UA analyser); the reading is quantised to the configured decimals.
"""

from __future__ import annotations

from hil_sim.devices.registers import MapPoint, Number, RegisterMap
from hil_sim.modbus.slave import RegisterBank
from hil_sim.plant import Plant

UNIT_ID = 4
IR = "input_register"
HR = "holding_register"
DECIMALS = 2
"""40001 default decimal places ([S85])."""
UNITS_MG_L = 1
"""40002 units code 1 = mg/L ([S35])."""
STATUS_NORMAL = 1
ALARM1_BELOW_MG_L = 0.05
"""Alarm 1 set below this residual (GB 5749 network-end minimum for free chlorine, domain.md §3.3,
⚠ recall; the analyser's own alarm relay in the field is set by the utility)."""


def cl500_points(prefix: str = "cl500.") -> list[MapPoint]:
    """The analyser's map; point names ``{prefix}…`` (profile ``xylem-cl500``)."""
    p = prefix
    return [
        MapPoint(f"{p}chlorine", IR, 0, "float32", "mg/L", word_order="little",
                 description="30001 chlorine", valid_min=0, valid_max=20),
        MapPoint(f"{p}status", IR, 9, "uint16", description="30010 reading status"),
        MapPoint(f"{p}error", IR, 11, "bool", bit=0, description="30012 bit 0 error"),
        MapPoint(f"{p}alarm1", IR, 11, "bool", bit=1, description="30012 bit 1 alarm 1"),
        MapPoint(f"{p}alarm2", IR, 11, "bool", bit=2, description="30012 bit 2 alarm 2"),
        MapPoint(f"{p}cal_error", IR, 11, "bool", bit=3, description="30012 bit 3 cal error"),
        MapPoint(f"{p}decimals", HR, 0, "uint16", description="40001 decimal places"),
        MapPoint(f"{p}units", HR, 1, "uint16", description="40002 units"),
    ]  # fmt: skip


class Cl500:
    """The chlorine analyser (see the module docstring)."""

    name = "cl500"
    transport = "modbus-tcp"
    unit_id = UNIT_ID
    max_read_registers = 125

    def __init__(self, plant: Plant, bank: RegisterBank | None = None) -> None:
        self.plant = plant
        self.bank = bank or RegisterBank(UNIT_ID)
        self.map = RegisterMap(self.bank, cl500_points(), blocks=[(IR, 0, 11), (HR, 0, 11)])
        self.update()

    def update(self) -> None:
        """Serve the plant's free chlorine."""
        cl = round(self.plant.quality.chlorine_mg_l, DECIMALS)
        values: dict[str, Number] = {
            "cl500.chlorine": cl,
            "cl500.status": STATUS_NORMAL,
            "cl500.error": False,
            "cl500.alarm1": cl < ALARM1_BELOW_MG_L,
            "cl500.alarm2": False,
            "cl500.cal_error": False,
            "cl500.decimals": DECIMALS,
            "cl500.units": UNITS_MG_L,
        }
        self.map.publish(values)
