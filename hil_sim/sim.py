"""The running simulator: plant loop, devices, protocol servers, ground truth, control port.

:class:`Simulator` owns one :class:`~hil_sim.plant.Plant`, the device register maps, a Modbus
TCP server (cabinet unit 1, flow meter unit 2, ABB circulation drive unit 3, CL500
chlorine analyser unit 4), a Modbus RTU server on a pty (VFDs 11–13,
pressure transmitters 21–22, 19200 8N1 by default), the OPC UA server, the JSON-lines control
port and the truth writer. ``await sim.start()`` brings everything up (servers announce
themselves through ``announce``), ``await sim.run()`` steps until :meth:`request_stop`,
``await sim.stop()`` ends it all.

Timing: every ``step_s`` of wall time (monotonic deadlines, no catch-up queue) the plant advances
``step_s × speed`` of plant time in sub-steps of at most ``step_s``, then every device re-serves
its values and the truth recorder (:mod:`hil_sim.truth`) takes the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hil_sim import commands
from hil_sim.devices.acs580 import Acs580
from hil_sim.devices.cabinet import Cabinet
from hil_sim.devices.cl500 import Cl500
from hil_sim.devices.flowmeter import FlowMeter
from hil_sim.devices.opcua_server import OpcUaFacade
from hil_sim.devices.registers import Number, RegisterMap
from hil_sim.devices.testbench import TypesBench
from hil_sim.devices.transmitter import PressureTransmitter
from hil_sim.devices.vfd import Vfd
from hil_sim.modbus.counters import RequestCounters
from hil_sim.modbus.faults import Faults
from hil_sim.modbus.rtu import ModbusRtuServer
from hil_sim.modbus.slave import Slave
from hil_sim.modbus.tcp import ModbusTcpServer
from hil_sim.plant import Plant, PlantParams
from hil_sim.scenario import Scenario
from hil_sim.scenario_run import ScenarioRunner, plant_params
from hil_sim.truth import TruthRecorder

log = logging.getLogger(__name__)

_QUERIES = frozenset({"ping", "stats", "truth"})
"""Control-port commands that change nothing: not noted as events."""


class ServedDevice(Protocol):
    """What the simulator needs of a Modbus device (see :mod:`hil_sim.devices`)."""

    name: str
    unit_id: int
    map: RegisterMap

    @property
    def bank(self) -> Slave: ...

    def update(self) -> None: ...


@dataclass
class SimOptions:
    """Options of one simulator run (the CLI's flags). Ports 0 pick a free port (TCP only)."""

    host: str = "127.0.0.1"
    modbus_tcp_port: int = 15020
    opcua_port: int = 14840
    rtu_link: str | None = "/tmp/pumproom-hil/ttyRTU0"
    control_port: int | None = 15080
    truth_path: str | None = None
    scenario: Scenario | None = None
    """A scenario to play (:mod:`hil_sim.scenario`); its ``start_time`` applies when
    ``start_time_of_day_s`` is None (see :meth:`for_scenario` for its speed and seed)."""
    seed: int = 0
    speed: float = 1.0
    step_s: float = 0.05
    summary_every_s: float = 5.0
    truth_every_s: float = 1.0
    """Wall seconds between full states in the truth file (:mod:`hil_sim.truth`)."""
    start_time_of_day_s: float | None = None
    rtu_baudrate: int = 19200
    rtu_parity: str = "N"
    test_types: bool = False
    """Serve the raw-value test bench too (:mod:`hil_sim.devices.testbench`); tests only."""

    @classmethod
    def for_scenario(cls, scenario: Scenario, **overrides: Any) -> SimOptions:
        """Options playing ``scenario`` with its ``speed``, ``seed`` and ``start_time`` (where
        given); ``overrides`` (any field) win over them."""
        given = {"speed": scenario.speed, "seed": scenario.seed,
                 "start_time_of_day_s": scenario.start_time_s}  # fmt: skip
        fields = {k: v for k, v in given.items() if v is not None}
        return cls(**{**fields, "scenario": scenario, **overrides})


class Simulator:
    """See the module docstring.

    Args:
        options: run options.
        announce: called with one human line per server when it is ready and with the
            periodic plant summary (default: ``print``).
    """

    def __init__(self, options: SimOptions, announce: Callable[[str], None] = print) -> None:
        self.options = options
        self.announce = announce
        scenario = options.scenario
        start_tod = options.start_time_of_day_s
        if start_tod is None and scenario is not None:
            start_tod = scenario.start_time_s
        if scenario is not None:
            params = plant_params(scenario, start_tod)
        else:
            params = (
                PlantParams() if start_tod is None else PlantParams(start_time_of_day_s=start_tod)
            )
        self.plant = Plant(params, seed=options.seed)
        self.speed = options.speed
        self.frozen = False
        self.cabinet = Cabinet(self.plant)
        self.flowmeter = FlowMeter(self.plant)
        self.circ_drive = Acs580(self.plant)
        self.cl500 = Cl500(self.plant)
        self.vfds = [Vfd(self.plant, n) for n in (1, 2, 3)]
        self.transmitters = [PressureTransmitter(self.plant, w) for w in ("p_in", "p_out")]
        self.tcp_devices: list[ServedDevice] = [
            self.cabinet,
            self.flowmeter,
            self.circ_drive,
            self.cl500,
        ]
        self.bench = TypesBench() if options.test_types else None
        if self.bench is not None:  # not a pump-room device: raw values for round-trip tests
            self.tcp_devices.append(self.bench)
        self.rtu_devices: list[ServedDevice] = [*self.vfds, *self.transmitters]
        self.counters = RequestCounters()
        self.faults = {"tcp": Faults(seed=options.seed), "rtu": Faults(seed=options.seed + 1)}
        self.opcua = OpcUaFacade(
            self.plant, options.host, options.opcua_port, test_types=options.test_types
        )
        self.tcp_server: ModbusTcpServer | None = None
        self.rtu_server: ModbusRtuServer | None = None
        self.control_server: asyncio.Server | None = None
        self._control_tasks: set[asyncio.Task] = set()
        self._stop = asyncio.Event()
        self.truth_recorder: TruthRecorder | None = None
        self.event_log: list[tuple[int, float, str, dict[str, Any]]] = []
        """Scenario events that fired, failed or ended: ``(wall_ms, plant_s, name,
        description)``, appended by :meth:`note_event`; the ground-truth recorder drains it."""
        self.runner = (
            None if scenario is None else ScenarioRunner(self, scenario, seed=options.seed)
        )

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every server. Raises OSError when a port or the RTU link cannot be taken."""
        o = self.options
        try:
            self.tcp_server = ModbusTcpServer(
                o.host,
                o.modbus_tcp_port,
                {d.unit_id: d.bank for d in self.tcp_devices},
                self.faults["tcp"],
                self.counters,
            )
            await self.tcp_server.start()
            self.announce(
                f"modbus-tcp ready on {o.host}:{self.tcp_server.port} "
                "(unit 1 cabinet, unit 2 flow meter, unit 3 circulation drive, "
                "unit 4 chlorine analyser"
                + (", unit 99 raw-value test bench)" if self.bench is not None else ")")
            )
            if o.rtu_link:
                import os

                os.makedirs(os.path.dirname(o.rtu_link) or ".", exist_ok=True)
                self.rtu_server = ModbusRtuServer(
                    o.rtu_link,
                    {d.unit_id: d.bank for d in self.rtu_devices},
                    self.faults["rtu"],
                    self.counters,
                    baudrate=o.rtu_baudrate,
                    parity=o.rtu_parity,
                )
                await self.rtu_server.start()
                self.announce(
                    f"modbus-rtu ready on {o.rtu_link} ({o.rtu_baudrate} 8{o.rtu_parity}1; "
                    "units 11-13 VFDs, 21-22 pressure transmitters)"
                )
            await self.opcua.start()
            self.announce(f"opcua ready on {self.opcua.endpoint}")
            if o.control_port is not None:
                self.control_server = await asyncio.start_server(
                    self._serve_control, o.host, o.control_port
                )
                port = self.control_server.sockets[0].getsockname()[1]
                self.announce(f"control ready on {o.host}:{port}")
            if o.truth_path:
                self.truth_recorder = TruthRecorder(o.truth_path, every_s=o.truth_every_s)
                self.truth_recorder.start()
                self._record_truth()
        except BaseException:
            await self.stop()
            raise

    @property
    def control_port(self) -> int | None:
        """The control port actually listened on, after :meth:`start`."""
        if self.control_server is None:
            return None
        return int(self.control_server.sockets[0].getsockname()[1])

    def request_stop(self) -> None:
        """Make :meth:`run` return (safe to call from a signal handler)."""
        self._stop.set()

    async def run(self) -> None:
        """Step the plant in real time (× speed) until :meth:`request_stop`."""
        loop = asyncio.get_running_loop()
        step = self.options.step_s
        next_tick = loop.time()
        next_summary = loop.time() + self.options.summary_every_s
        while not self._stop.is_set():
            next_tick += step
            now = loop.time()
            if next_tick < now:  # overrun: skip missed ticks, never queue them
                next_tick = now + step
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - now)):
                    await self._stop.wait()
            if self._stop.is_set():
                break
            self.advance(step * self.speed)
            await self.opcua.update()
            if loop.time() >= next_summary:
                next_summary += self.options.summary_every_s
                self.announce(self.plant.summary() + (" FROZEN" if self.frozen else ""))

    async def stop(self) -> None:
        """Stop every server and close the truth file (idempotent)."""
        if self.control_server is not None:
            self.control_server.close()
            for task in list(self._control_tasks):
                task.cancel()
            await asyncio.gather(*self._control_tasks, return_exceptions=True)
            await self.control_server.wait_closed()
            self.control_server = None
        await self.opcua.stop()
        if self.rtu_server is not None:
            await self.rtu_server.stop()
            self.rtu_server = None
        if self.tcp_server is not None:
            await self.tcp_server.stop()
            self.tcp_server = None
        if self.truth_recorder is not None:
            self.truth_recorder.close()
            self.truth_recorder = None

    # --- stepping and truth ---------------------------------------------------------------

    def advance(self, plant_dt_s: float) -> None:
        """Advance the plant by ``plant_dt_s`` (unless frozen), run due scenario actions,
        re-serve every device and append changed truth values."""
        if not self.frozen:
            remaining = plant_dt_s
            step = self.options.step_s
            while remaining > 1e-9:
                dt = min(step, remaining)
                self.plant.step(dt)
                remaining -= dt
            if self.runner is not None:
                self.runner.step()
            self.refresh()

    def refresh(self) -> None:
        """Re-serve every Modbus device from the plant and append changed truth values."""
        if self.frozen:
            return
        for dev in (*self.tcp_devices, *self.rtu_devices):
            dev.update()
        self._record_truth()

    def _maps(self) -> list[RegisterMap]:
        return [d.map for d in (*self.tcp_devices, *self.rtu_devices)]

    def modbus_point_names(self) -> set[str]:
        """Names of every served Modbus point."""
        return {name for m in self._maps() for name in m.by_name}

    def set_stuck(self, point: str, on: bool) -> None:
        """Freeze (or release) one Modbus point's registers at their present value."""
        for m in self._maps():
            if point in m.by_name:
                (m.stuck.add if on else m.stuck.discard)(point)

    def truth(self) -> dict[str, Number]:
        """Every served value by point name, as a master decodes it (the example config's
        points; the flow meter's holding-register mirror ``….hr`` is left out), plus what no
        device serves: ``plant.p_index``, the pressure at the top-floor tap, MPa gauge (what the
        resident feels, :class:`~hil_sim.hydraulics.Riser`; 0.1 kPa resolution)."""
        out: dict[str, Number] = {}
        for m in self._maps():
            out.update({k: v for k, v in m.served().items() if not k.endswith(".hr")})
        out.update(self.opcua.served or {})
        out["plant.p_index"] = round(self.plant.p_index, 4)
        return out

    def _record_truth(self) -> None:
        if self.truth_recorder is not None:
            self.truth_recorder.record(
                self, int(time.time() * 1000), self.plant.t_s, self.plant.time_of_day_s
            )

    def note_event(self, name: str, description: dict[str, Any]) -> None:
        """Record an event (scenario event, fault, its end, control-port command) in
        :attr:`event_log` with the wall clock (ms since the epoch) and the plant time (s); the
        truth recorder (:mod:`hil_sim.truth`) drains it."""
        self.event_log.append((int(time.time() * 1000), self.plant.t_s, name, description))

    # --- control port ---------------------------------------------------------------------

    def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(
            self._control_session(reader, writer), name="hil-sim-control"
        )
        self._control_tasks.add(task)
        task.add_done_callback(self._control_tasks.discard)

    async def _control_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                async with asyncio.timeout(3600.0):
                    line = await reader.readline()
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    cmd = json.loads(line)
                    answer = commands.execute(self, cmd)
                    if isinstance(cmd, dict) and cmd.get("cmd") not in _QUERIES:
                        self.note_event(f"control:{cmd.get('cmd')}", cmd)
                except json.JSONDecodeError as exc:
                    answer = {"ok": False, "error": f"bad JSON: {exc}"}
                except commands.CommandError as exc:
                    answer = {"ok": False, "error": str(exc)}
                writer.write((json.dumps(answer) + "\n").encode())
                async with asyncio.timeout(5.0):
                    await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
