"""The agent configuration of each fleet room, derived from ``config/example.yaml``.

As ``hil-sim demo`` does for the one room (:func:`hil_sim.demo.device_overrides`), every device
of the example is pointed at the room's servers by its transport; in addition each room gets its
own site and gateway id, buffer file and status page, so N agents can share one broker. RS-485
devices move to the room's Modbus TCP port (the gateway) unless the fleet serves RTU on ptys;
without the room's OPC UA server the OPC UA device is left out, with the alarm rules on its
points (an alarm on a point that does not exist is a config error).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from hil_sim.fleet_rooms import FleetRoom

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"
SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")
"""Keys of a modbus-rtu device that a modbus-tcp device does not take."""


@dataclass(frozen=True, slots=True)
class AgentIds:
    """Where one room's agent reports and keeps its state.

    Attributes:
        site: site id (MQTT topic level, letters, digits, '-', '_').
        gateway: gateway id.
        broker: broker URL for ``uplink.broker`` (``mqtt://127.0.0.1:1883``).
        buffer_path: the agent's SQLite buffer file.
        status_port: its status page port on 127.0.0.1, or None for no status page.
    """

    site: str
    gateway: str
    broker: str
    buffer_path: Path
    status_port: int | None


def load_example(path: Path = EXAMPLE) -> dict[str, Any]:
    """The example config as data. Raises OSError / yaml.YAMLError / ValueError naming the file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        raise ValueError(f"{path}: no devices list")
    return data


def room_config(example: dict[str, Any], room: FleetRoom, ids: AgentIds) -> dict[str, Any]:
    """``example`` (see :func:`load_example`) pointed at ``room``'s servers with ``ids``.

    Raises ValueError naming the device whose transport is unknown."""
    doc = copy.deepcopy(example)
    devices: list[dict[str, Any]] = []
    dropped: set[str] = set()
    for dev in doc["devices"]:
        transport = dev.get("transport")
        if transport == "modbus-tcp" or (transport == "modbus-rtu" and room.rtu_link is None):
            for key in SERIAL_KEYS:
                dev.pop(key, None)
            dev.update(transport="modbus-tcp", host=room.host, port=room.tcp_port)
        elif transport == "modbus-rtu":
            dev["port"] = room.rtu_link
        elif transport == "opcua":
            if room.opcua is None:
                dropped.update(p["name"] for p in dev.get("points", []))
                continue
            dev["endpoint"] = room.opcua.endpoint
        else:
            raise ValueError(f"{EXAMPLE}: device {dev.get('name')!r}: transport {transport!r}")
        devices.append(dev)
    doc["devices"] = devices
    alarm_points = (doc.get("alarms") or {}).get("points") or {}
    for name in dropped & set(alarm_points):
        del alarm_points[name]
    doc["site"] = {"id": ids.site, "gateway_id": ids.gateway}
    doc.setdefault("uplink", {})["broker"] = ids.broker
    doc.setdefault("buffer", {})["path"] = str(ids.buffer_path)
    if ids.status_port is None:
        doc["status"] = {"enabled": False}
    else:
        doc["status"] = {"listen": f"127.0.0.1:{ids.status_port}"}
    return doc


def write_fleet_configs(
    out: Path,
    rooms: Sequence[FleetRoom],
    *,
    site_prefix: str,
    broker: str,
    status_base_port: int | None,
    example: Path = EXAMPLE,
) -> Path:
    """Write ``out/room-NNN/agent.yaml`` for every room and ``out/fleet.json`` (the manifest:
    per room its site, gateway, config, endpoints and parameters); returns the manifest's path.

    Call after the rooms started (their real ports). Raises OSError, yaml.YAMLError or
    ValueError naming the file."""
    base = load_example(example)
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, Any]] = []
    for room in rooms:
        n = room.spec.index
        folder = (out / f"room-{n:03d}").resolve()
        folder.mkdir(exist_ok=True)
        ids = AgentIds(
            site=f"{site_prefix}-{n:03d}",
            gateway=f"gw-{site_prefix}-{n:03d}",
            broker=broker,
            buffer_path=folder / "buffer.sqlite",
            status_port=None if status_base_port is None else status_base_port + n - 1,
        )
        doc = room_config(base, room, ids)
        path = folder / "agent.yaml"
        header = (
            f"# hil-sim fleet: room {n} of {len(rooms)}, derived from {example.name}\n"
            f"# {room.spec.describe()}\n"
        )
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        manifest.append(
            {
                "index": n,
                "site": ids.site,
                "gateway": ids.gateway,
                "config": str(path),
                "modbus_tcp": f"{room.host}:{room.tcp_port}",
                "rtu_link": room.rtu_link,
                "opcua": room.opcua.endpoint if room.opcua is not None else None,
                "status_port": ids.status_port,
                "params": asdict(room.spec),
            }
        )
    path = out / "fleet.json"
    path.write_text(json.dumps({"broker": broker, "rooms": manifest}, indent=1) + "\n")
    return path
