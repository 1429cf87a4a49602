"""A closed-loop rig: the simulator's servers on loopback, the agent's real drivers and pollers
feeding a latest-value cache, and the control loop writing back through the same drivers.

Used by the closed-loop tests and by ``python -m agent.control.plots``. Everything runs in one
event loop; only loopback addresses and a pty are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import drivers
from agent.config import load_config
from agent.control.loop import ControlLoop
from agent.control.wiring import outputs_from_pollers
from agent.core.cache import Cache
from agent.poller import ConnectionPoller
from hil_sim import commands
from hil_sim.sim import SimOptions, Simulator

ROOT = Path(__file__).resolve().parents[2]


def _example() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "config" / "example.yaml").read_text(encoding="utf-8"))


POLL_S = {d["name"]: d["poll_interval_s"] for d in _example()["devices"]}
"""Poll intervals of the rig, s: config/example.yaml's (1 s), but the outlet pressure's in
direct mode (:data:`DIRECT_PV_POLL_S`)."""
DIRECT_PV_POLL_S = 0.2
"""The outlet pressure's poll interval in direct mode, s: the example's comment says to set it
(``check`` refuses direct mode above 0.25 s)."""


def documented(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a site config) as config/example.yaml documents its control mode: in direct mode
    the outlet pressure transmitter ``pt_outlet`` polled every :data:`DIRECT_PV_POLL_S`."""
    control = data.get("control")
    if control and control.get("mode") == "direct":
        for dev in data["devices"]:
            if dev["name"] == "pt_outlet":
                dev["poll_interval_s"] = DIRECT_PV_POLL_S
    return data


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def control_section(mode: str = "direct", **extra: Any) -> dict[str, Any]:
    """config/example.yaml's ``control:`` section (the documented configuration) in ``mode``,
    with ``extra`` keys replaced (a dict value is merged into the section's dict)."""
    section: dict[str, Any] = dict(_example()["control"], mode=mode)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            section[key] = {**section[key], **value}
        else:
            section[key] = value
    return section


def site_yaml(tcp_port: int, rtu_link: str, control: dict[str, Any] | None) -> dict[str, Any]:
    """config/example.yaml pointed at the rig's simulator, its polling and timeouts unchanged
    (OPC UA analyser left out); ``control`` replaces its ``control:`` section (``None``: none)."""
    data = _example()
    devices = []
    for dev in data["devices"]:
        if dev["transport"] == "opcua":
            continue
        if dev["transport"] == "modbus-tcp":
            dev["port"] = tcp_port
        else:
            dev["port"] = rtu_link
        devices.append(dev)
    data["devices"] = devices
    data.pop("alarms", None)  # its rules name the analyser's points, left out here
    data.pop("control", None)
    if control is not None:
        data["control"] = control
    return documented(data)


async def until(cond: Any, timeout_s: float, step_s: float = 0.1) -> bool:
    """Poll ``cond()`` every ``step_s`` until it is true (→ True) or ``timeout_s`` passed
    (→ False): a wait that ends as soon as the outcome is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step_s)


@dataclass
class Trace:
    """Plant truth sampled every 0.1 s: time (s since start), outlet pressure (MPa), setpoint
    the loop used (MPa), pump output frequencies (Hz), flow (m³/h), pumps running, sleep/boost
    state of the loop."""

    t: list[float] = field(default_factory=list)
    p_out: list[float] = field(default_factory=list)
    sp: list[float] = field(default_factory=list)
    freqs: list[tuple[float, ...]] = field(default_factory=list)
    flow: list[float] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    quiet: list[bool] = field(default_factory=list)
    p_in: list[float] = field(default_factory=list)


class Rig:
    """Simulator + pollers + cache + control loop. ``async with Rig(tmp, control=...) as rig``."""

    def __init__(self, tmp: Path, control: dict[str, Any] | None, seed: int = 1,
                 start_time_of_day_s: float = 8 * 3600.0) -> None:  # fmt: skip
        self.tmp = tmp
        self.control = control
        self.options = SimOptions(
            modbus_tcp_port=free_port(),
            opcua_port=free_port(),
            rtu_link=str(tmp / "ttyRTU0"),
            control_port=None,
            seed=seed,
            start_time_of_day_s=start_time_of_day_s,
            summary_every_s=3600.0,
        )
        self.sim = Simulator(self.options, announce=lambda line: None)
        self.cache = Cache()
        self.events: list[dict[str, Any]] = []
        self.telemetry: list[Any] = []
        self.trace = Trace()
        self.loop: ControlLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._t0 = 0.0

    def config_path(self) -> Path:
        """Write the rig's site config and return its path."""
        path = self.tmp / "site.yaml"
        data = site_yaml(self.options.modbus_tcp_port, str(self.options.rtu_link), self.control)
        data["buffer"]["path"] = str(self.tmp / "buffer.sqlite")
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    def set(self, name: str, value: Any) -> None:
        """A simulator ``set`` command (as on its control port)."""
        commands.execute(self.sim, {"cmd": "set", "name": name, "value": value})

    async def __aenter__(self) -> Rig:
        await self.sim.start()
        self.sim.advance(20.0)  # past the start transient, under the cabinet's own control
        config = load_config(self.config_path())
        self.pollers = [
            ConnectionPoller(drivers.create(cp.spec), cp.groups, self._sink)
            for cp in config.connections()
        ]
        self._tasks.append(asyncio.create_task(self.sim.run(), name="sim"))
        self._tasks += [asyncio.create_task(p.run(), name=f"poll {p.name}") for p in self.pollers]
        if config.control is not None:
            self.loop = ControlLoop(
                config.control,
                self.cache,
                outputs_from_pollers(self.pollers),
                publish=self.telemetry.extend,
                event_sink=self._event,
            )
        self._t0 = time.monotonic()
        self._tasks.append(asyncio.create_task(self._sample(), name="trace"))
        return self

    def start_loop(self) -> None:
        """Start the control loop task."""
        assert self.loop is not None
        self._tasks.append(asyncio.create_task(self.loop.run(), name="control"))

    async def wait_polled(self, timeout_s: float = 30.0) -> None:
        """Until the outlet pressure and every drive frequency are in the cache. The default
        30 s is for a loaded CI machine: six rigs started at once (each with its Modbus and
        OPC UA servers) missed a 5 s deadline under ``pytest -n 3`` on 2 cores."""
        deadline = time.monotonic() + timeout_s
        names = ["p_out", "pump1.freq", "pump2.freq", "pump3.freq", "flow", "p_in"]
        while not all(self.cache.get(n) for n in names):
            assert time.monotonic() < deadline, "no polls"
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        for t in reversed(self._tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.sim.stop()

    def _sink(self, readings: Any, ts_ms: int | None = None) -> None:
        self.cache.update(readings, ts_ms or int(time.time() * 1000), time.monotonic())

    async def _event(self, body: dict[str, Any]) -> None:
        body = dict(body, rel_s=round(time.monotonic() - self._t0, 2))
        self.events.append(body)

    def kinds(self, prefix: str = "control.") -> list[str]:
        """Event types seen so far, without the ``control.`` prefix."""
        return [e["type"].removeprefix(prefix) for e in self.events]

    async def _sample(self) -> None:
        tr, pl = self.trace, self.sim.plant
        while True:
            tr.t.append(time.monotonic() - self._t0)
            tr.p_out.append(pl.p_out)
            tr.p_in.append(pl.p_in)
            tr.sp.append(self.loop.sp_eff if self.loop else pl.setpoint)
            tr.freqs.append(tuple(p.drive.f_out_hz for p in pl.pumps))
            tr.flow.append(pl.flow_m3h)
            tr.running.append(pl.running_count)
            tr.quiet.append(bool(self.loop and self.loop.sleep.phase != "run"))
            await asyncio.sleep(0.1)

    def now(self) -> float:
        """Seconds since the rig started."""
        return time.monotonic() - self._t0
