"""The rooms of a fleet: per-room parameters drawn from one seed, and one room's devices.

:func:`room_specs` draws N :class:`RoomSpec` (households, building height, pumps in service,
setpoint, mains pressure) from one ``random.Random(seed)``: the same seed gives the same fleet.
:class:`FleetRoom` is one pump room of the fleet: its :class:`~hil_sim.plant.Plant`, the same
nine Modbus devices as ``hil-sim run`` (:mod:`hil_sim.sim`) and their servers. By default every
unit sits on the room's one Modbus TCP port, the RS-485 units (VFDs 11–13, pressure transmitters
21–22) behind the room's RS-485-to-TCP gateway, as :mod:`hil_sim.modbus.tcp` serves a gateway;
``rtu_link`` puts them on a pty instead, and ``opcua_port`` adds the OPC UA server.

Units: pressure MPa gauge, flow m³/h, height m, time s.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from hil_sim.devices.acs580 import Acs580
from hil_sim.devices.cabinet import Cabinet
from hil_sim.devices.cl500 import Cl500
from hil_sim.devices.flowmeter import FlowMeter
from hil_sim.devices.opcua_server import OpcUaFacade
from hil_sim.devices.transmitter import PressureTransmitter
from hil_sim.devices.vfd import Vfd
from hil_sim.hydraulics import M_PER_MPA, PressureDrivenDemand, Riser
from hil_sim.modbus.counters import RequestCounters
from hil_sim.modbus.faults import Faults
from hil_sim.modbus.rtu import ModbusRtuServer
from hil_sim.modbus.slave import Slave
from hil_sim.modbus.tcp import ModbusTcpServer
from hil_sim.plant import PUMP_OFF, Plant, PlantParams
from hil_sim.sim import ServedDevice

HOUSEHOLDS = (80, 320)
"""Households per room, drawn uniformly (derived: around domain.md §5.2's 200-household
worked example, 3 duty pumps of 10 m³/h)."""
HEIGHT_M = (9.0, 27.0)
"""Top-floor tap above the outlet transmitter, m: 3 to 9 storeys of 3 m (derived; the default
room is 15 m, :class:`~hil_sim.hydraulics.Riser`)."""
MAINS_MPA = (0.15, 0.25)
"""Mean municipal suction pressure, MPa (derived around the plant's default 0.20 MPa)."""
RESIDUAL_MPA = 0.10
"""Residual pressure at the draw-off, MPa (residential code ≥ 0.1 MPa, [S25]; domain.md §5.2)."""
RISER_FRICTION_MPA = 0.05
"""Riser friction at the design flow, MPa (:class:`~hil_sim.hydraulics.Riser`'s default)."""
SETPOINT_MARGIN_MPA = 0.10
"""Setpoint above the full-service pressure ``preq``, MPa: the default room's 0.40 MPa over its
0.30 MPa ``preq`` (:class:`~hil_sim.hydraulics.PressureDrivenDemand`)."""
DESIGN_FLOW_200_M3H = 26.0
"""Design instantaneous flow of 200 households, m³/h (domain.md §5.2 table); scaled linearly
with the households (derived: an approximation, the table's flow grows a little slower)."""


@dataclass(frozen=True, slots=True)
class RoomSpec:
    """What makes one fleet room differ from the others.

    Attributes:
        index: 1-based room number (site ``<prefix>-<index:03d>``).
        seed: seed of the room's plant (random draws, sensor noise).
        households: households served (demand sizing, domain.md §5.2).
        height_m: top-floor tap above the outlet transmitter, m.
        pumps_in_service: 2 or 3; with 2, pump 3 is switched off at the cabinet (Wilo 40043 = 0,
            [S4]): a three-drive set with one pump out of service.
        setpoint_mpa: outlet pressure setpoint, MPa (0.01 MPa steps: the cabinet's 0.1 bar).
        mains_mpa: mean suction pressure from the mains, MPa.
    """

    index: int
    seed: int
    households: int
    height_m: float
    pumps_in_service: int
    setpoint_mpa: float
    mains_mpa: float

    @property
    def pmin_mpa(self) -> float:
        """Pressure at the outlet below which no water reaches the top floor, MPa (the lift)."""
        return round(self.height_m / M_PER_MPA, 3)

    @property
    def design_flow_m3h(self) -> float:
        """Design instantaneous flow, m³/h (:data:`DESIGN_FLOW_200_M3H` scaled)."""
        return DESIGN_FLOW_200_M3H * self.households / 200.0

    def plant_params(self, start_time_of_day_s: float) -> PlantParams:
        """The room's :class:`PlantParams`, the plant's clock starting at ``start_time_of_day_s``
        (s since local midnight)."""
        preq = self.pmin_mpa + RESIDUAL_MPA + RISER_FRICTION_MPA
        return PlantParams(
            households=self.households,
            riser=Riser(self.height_m, RISER_FRICTION_MPA, self.design_flow_m3h),
            pdd=PressureDrivenDemand(pmin_mpa=self.pmin_mpa, preq_mpa=round(preq, 3)),
            mains_mean_mpa=self.mains_mpa,
            start_time_of_day_s=start_time_of_day_s,
        )

    def describe(self) -> str:
        """One human line, e.g. ``room 2: 143 households, 18.0 m, 3 pumps, SP 0.43 MPa``."""
        return (
            f"room {self.index}: {self.households} households, {self.height_m:.1f} m, "
            f"{self.pumps_in_service} pumps, SP {self.setpoint_mpa:.2f} MPa, "
            f"mains {self.mains_mpa:.2f} MPa"
        )


def room_specs(rooms: int, seed: int) -> list[RoomSpec]:
    """``rooms`` room specifications drawn from ``seed`` (ranges: the module's constants).

    The setpoint follows the building: lift + residual + riser friction + margin, i.e. the
    default room's 0.40 MPa for 15 m. Raises ValueError when ``rooms`` < 1."""
    if rooms < 1:
        raise ValueError(f"rooms must be at least 1, got {rooms}")
    rng = random.Random(seed)
    specs = []
    for i in range(1, rooms + 1):
        households = rng.randint(*HOUSEHOLDS)
        height = round(rng.uniform(*HEIGHT_M), 1)
        pumps = 3 if households > 240 else rng.choice((2, 3))
        lift = height / M_PER_MPA
        setpoint = round(lift + RESIDUAL_MPA + RISER_FRICTION_MPA + SETPOINT_MARGIN_MPA, 2)
        mains = round(rng.uniform(*MAINS_MPA), 2)
        specs.append(RoomSpec(i, seed * 1000 + i, households, height, pumps, setpoint, mains))
    return specs


class LazyUnits(Mapping[int, Slave]):
    """Unit id → register bank for a server, re-serving a device from the plant only when a
    request asks for it after the plant moved (:meth:`mark_stale`), not on every tick.

    The values served are the same (the plant's state at its latest tick); a room nobody polls
    costs only its plant step. Devices that integrate time in ``update()`` (the ACS580's ramp)
    must be updated every tick by their owner instead, and are not given here.
    """

    def __init__(self, devices: Iterable[ServedDevice]) -> None:
        self._devices = {d.unit_id: d for d in devices}
        self._stale: set[int] = set()

    def mark_stale(self) -> None:
        """The plant moved: re-serve each device at its next request."""
        self._stale.update(self._devices)

    def __getitem__(self, unit_id: int) -> Slave:
        device = self._devices[unit_id]
        if unit_id in self._stale:
            self._stale.discard(unit_id)
            device.update()
        return device.bank

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._devices  # without updating the device

    def __iter__(self) -> Iterator[int]:
        return iter(self._devices)

    def __len__(self) -> int:
        return len(self._devices)


class FleetRoom:
    """One room of the fleet: plant, devices and servers (see the module docstring).

    Args:
        spec: the room's parameters.
        host: listen address (loopback).
        tcp_port: the room's Modbus TCP port (0: a free one, read :attr:`tcp_port` after start).
        start_time_of_day_s: plant time of day at start, s since midnight.
        rtu_link: serve the RS-485 units on a pty whose agent end appears at this path instead
            of on the TCP port.
        opcua_port: also run the room's OPC UA server on this port (heavy: one asyncua server
            per room).
    """

    def __init__(
        self,
        spec: RoomSpec,
        host: str,
        tcp_port: int,
        start_time_of_day_s: float,
        *,
        rtu_link: str | None = None,
        opcua_port: int | None = None,
    ) -> None:
        self.spec = spec
        self.host = host
        self._tcp_port = tcp_port
        self.rtu_link = rtu_link
        self.plant = Plant(spec.plant_params(start_time_of_day_s), seed=spec.seed)
        self.plant.set_setpoint(spec.setpoint_mpa)
        for pump in range(spec.pumps_in_service, len(self.plant.pumps)):
            self.plant.set_pump_mode(pump, PUMP_OFF)
        pl = self.plant
        self.circ_drive = Acs580(pl)  # its update() integrates its ramp: every tick
        self.tcp_devices: list[ServedDevice] = [Cabinet(pl), FlowMeter(pl), self.circ_drive]
        self.tcp_devices.append(Cl500(pl))
        self.rtu_devices: list[ServedDevice] = [Vfd(pl, n) for n in (1, 2, 3)]
        self.rtu_devices += [PressureTransmitter(pl, w) for w in ("p_in", "p_out")]
        self.counters = RequestCounters()
        self.faults = Faults(seed=spec.seed)
        self.opcua = OpcUaFacade(pl, host, opcua_port) if opcua_port is not None else None
        self.tcp_server: ModbusTcpServer | None = None
        self.rtu_server: ModbusRtuServer | None = None
        lazy = [d for d in self.tcp_devices if d is not self.circ_drive]
        self.tcp_units = LazyUnits(lazy)
        self.rtu_units = LazyUnits(self.rtu_devices)
        self.refresh()

    @property
    def tcp_port(self) -> int:
        """The Modbus TCP port listened on (after :meth:`start`: the real one)."""
        return self.tcp_server.port if self.tcp_server is not None else self._tcp_port

    @property
    def up(self) -> bool:
        """True while the room's Modbus TCP server listens."""
        return self.tcp_server is not None

    async def start(self) -> None:
        """Start the room's servers. Raises OSError naming the room and the port or link."""
        units: Mapping[int, Slave] = _Chain(
            {self.circ_drive.unit_id: self.circ_drive.bank},
            self.tcp_units,
            self.rtu_units if self.rtu_link is None else {},  # behind the room's gateway
        )
        rtu_units = self.rtu_units
        try:
            server = ModbusTcpServer(self.host, self._tcp_port, units, self.faults, self.counters)
            await server.start()
            self.tcp_server = server
            if self.rtu_link is not None:
                os.makedirs(os.path.dirname(self.rtu_link) or ".", exist_ok=True)
                rtu = ModbusRtuServer(  # 8N1: Linux refuses parity on a pty (hil_sim.cli)
                    self.rtu_link, rtu_units, self.faults, self.counters, parity="N"
                )
                await rtu.start()
                self.rtu_server = rtu
            if self.opcua is not None:
                await self.opcua.start()
        except OSError as exc:
            where = f"{self.host}:{self._tcp_port}"
            raise OSError(exc.errno, f"room {self.spec.index} ({where}): {exc}") from exc

    async def stop(self) -> None:
        """Stop the room's servers (idempotent)."""
        if self.opcua is not None:
            await self.opcua.stop()
        if self.rtu_server is not None:
            await self.rtu_server.stop()
            self.rtu_server = None
        if self.tcp_server is not None:
            await self.tcp_server.stop()
            self.tcp_server = None

    def advance(self, dt_s: float, max_step_s: float) -> None:
        """Advance the plant ``dt_s`` in sub-steps of at most ``max_step_s``; the devices are
        re-served when next asked (:class:`LazyUnits`), the ACS580 at once."""
        remaining = dt_s
        while remaining > 1e-9:
            step = min(max_step_s, remaining)
            self.plant.step(step)
            remaining -= step
        self.circ_drive.update()
        self.tcp_units.mark_stale()
        self.rtu_units.mark_stale()

    def refresh(self) -> None:
        """Re-serve every Modbus device from the plant now."""
        for dev in self.tcp_devices:
            dev.update()
        for dev in self.rtu_devices:
            dev.update()


class _Chain(Mapping[int, Slave]):
    """Several unit maps seen as one (the first that has the unit answers)."""

    def __init__(self, *maps: Mapping[int, Slave]) -> None:
        self._maps = maps

    def __getitem__(self, unit_id: int) -> Slave:
        for m in self._maps:
            if unit_id in m:
                return m[unit_id]
        raise KeyError(unit_id)

    def __iter__(self) -> Iterator[int]:
        return iter({u for m in self._maps for u in m})

    def __len__(self) -> int:
        return len({u for m in self._maps for u in m})
