"""Electromagnetic flow meter at Modbus unit 2 (behind the TCP gateway), MFE600H "0x1010 family".

Imitates the Microsensor MFE600H converter map (manual p.26, [S54]; domain.md §4.8): floats and
longs "inverse", i.e. word-swapped (CDAB), cf. the 00 00 C1 48 → −12.5 example [S55]. The map is
served from both input registers (FC04) and holding registers (FC03), 0x1010–0x1025 in full
(reserved addresses read 0), as converters of this family answer both function codes (the sister
model MFE600C documents FC03/04, [S51]).

Totaliser: integer part (LONG) + fractional part (FLOAT), total = int + frac, m³.
"""

from __future__ import annotations

import math

from hil_sim.devices.registers import MapPoint, RegisterMap
from hil_sim.modbus.slave import RegisterBank
from hil_sim.plant import Plant

UNIT_ID = 2
PIPE_DN_M = 0.065
"""Nominal bore of the meter, m (DN 65, assumed for a 10–30 m³/h booster outlet)."""
FLOW_UNIT_M3H = 5
"""0x101E flow unit code 5 = m³/h ([S54])."""
TOTAL_UNIT_M3 = 1
"""0x1021 total unit code 1 = m³ ([S54])."""


def flowmeter_points(table: str = "input_register") -> list[MapPoint]:
    """The meter's map on ``table`` (``input_register`` or ``holding_register``)."""
    sfx = "" if table == "input_register" else ".hr"
    cdab = "little"  # word order: "float inverse" (CDAB)
    return [
        MapPoint(f"flow{sfx}", table, 0x1010, "float32", "m³/h", word_order=cdab,
                 description="0x1010 instantaneous flow (float, CDAB)", valid_min=0, valid_max=60),
        MapPoint(f"flow.velocity{sfx}", table, 0x1012, "float32", "m/s", word_order=cdab,
                 description="0x1012 flow velocity (float, CDAB)"),
        MapPoint(f"flow.total_int{sfx}", table, 0x1018, "int32", "m³", word_order=cdab,
                 description="0x1018 totaliser integer part (long, CDAB)"),
        MapPoint(f"flow.total_frac{sfx}", table, 0x101A, "float32", "m³", word_order=cdab,
                 description="0x101A totaliser fractional part (float, CDAB)"),
        MapPoint(f"flow.unit_code{sfx}", table, 0x101E, "uint16",
                 description="0x101E flow unit (5 = m³/h)"),
        MapPoint(f"flow.total_unit_code{sfx}", table, 0x1021, "uint16",
                 description="0x1021 total unit (1 = m³)"),
        MapPoint(f"flow.empty_pipe{sfx}", table, 0x1024, "uint16",
                 description="0x1024 empty-pipe alarm (1 = alarm)"),
        MapPoint(f"flow.alarm{sfx}", table, 0x1025, "uint16",
                 description="0x1025 system alarm (1 = alarm)"),
    ]  # fmt: skip


class FlowMeter:
    """The flow meter device (points named ``flow…``; the holding mirror is ``flow….hr``,
    not listed in the example config)."""

    name = "flowmeter"
    transport = "modbus-tcp"
    unit_id = UNIT_ID
    max_read_registers = 125

    def __init__(self, plant: Plant, bank: RegisterBank | None = None) -> None:
        self.plant = plant
        self.bank = bank or RegisterBank(UNIT_ID)
        blocks = [(t, 0x1010, 0x1025) for t in ("input_register", "holding_register")]
        self.map = RegisterMap(
            self.bank,
            flowmeter_points("input_register") + flowmeter_points("holding_register"),
            blocks=blocks,
        )
        self.update()

    @property
    def points(self) -> list[MapPoint]:
        """The points of the example config (input registers)."""
        return [p for p in self.map.points if not p.name.endswith(".hr")]

    def update(self) -> None:
        """Serve the plant's meter reading and totaliser."""
        q = self.plant.flow_meas_m3h
        total = self.plant.total_m3
        whole = math.floor(total)
        base = {
            "flow": q,
            "flow.velocity": q / 3600.0 / (math.pi * PIPE_DN_M**2 / 4.0),
            "flow.total_int": whole,
            "flow.total_frac": total - whole,
            "flow.unit_code": FLOW_UNIT_M3H,
            "flow.total_unit_code": TOTAL_UNIT_M3,
            "flow.empty_pipe": int(self.plant.p_out < 0.01),
            "flow.alarm": 0,
        }
        self.map.publish(base | {f"{k}.hr": v for k, v in base.items()})
