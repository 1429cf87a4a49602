"""The agent configuration that matches the simulator: ``devices:`` built from the served maps.

:func:`devices_config` is the single source of truth for ``config/example.yaml``'s devices
section (a test checks the file against it); :func:`render_devices_yaml` prints it in the
commented, one-line-per-point form used there. Run ``python -m hil_sim.configgen`` to print it.

Modbus devices name the agent's device profile of their family (``profile:``, with a ``prefix``
for the site's point names and ``overrides`` where the simulator differs from the manual) instead
of listing the points; points the profile does not have (the cabinet's simulator extension
block) are listed. The simulator does not read the profiles (hil_sim never imports agent/):
tests/profiles/ checks every served point against the profile-expanded config.
"""

from __future__ import annotations

from typing import Any

from hil_sim.devices.acs580 import UNIT_ID as CIRC_UNIT
from hil_sim.devices.cabinet import cabinet_points
from hil_sim.devices.cl500 import UNIT_ID as CL500_UNIT
from hil_sim.devices.opcua_server import NAMESPACE_URI, UA_POINTS
from hil_sim.devices.registers import CONFIG_TABLE, MapPoint

RTU_LINK = "/tmp/pumproom-hil/ttyRTU0"
CABINET_MODE_ENUM = {0: "constant pressure (p-c)", 10: "fill", 11: "drain", 20: "bus (simulator)"}
"""Wilo 40025 values ([S4]) plus the simulator's bus mode 20."""
WIDE = {"int32", "uint32", "int64", "uint64", "float32", "float64"}


def _point(p: MapPoint, register_number: bool = False) -> dict[str, Any]:
    register = CONFIG_TABLE[p.table]
    address = p.address
    if register_number:  # Modicon reference notation, as Wilo prints it (40026 = PDU 25)
        address = p.address + (40001 if register == "holding" else 1)
    out: dict[str, Any] = {"name": p.name, "register": register, "address": address}
    out["type"] = p.dtype
    if p.dtype in WIDE:
        out["word_order"] = p.word_order
    if p.bit is not None:
        out["bit"] = p.bit
    if p.scale != 1.0:
        out["scale"] = p.scale
    if p.unit:
        out["unit"] = p.unit
    if p.writable:
        out["writable"] = True
    if p.valid_min is not None:
        out["valid_min"] = p.valid_min
    if p.valid_max is not None:
        out["valid_max"] = p.valid_max
    if p.description:
        out["description"] = p.description
    return out


def devices_config(
    host: str = "127.0.0.1",
    tcp_port: int = 15020,
    opcua_port: int = 14840,
    rtu_link: str = RTU_LINK,
) -> list[dict[str, Any]]:
    """The ``devices:`` list for a simulator listening at the given addresses."""
    common = {"timeout_s": 1.0, "poll_interval_s": 1.0}
    rtu = {"port": rtu_link, "baudrate": 19200, "parity": "N", "stopbits": 1, "bytesize": 8}
    devices: list[dict[str, Any]] = [
        {
            "name": "cabinet",
            "description": "booster control cabinet / PLC, Wilo-Control CC-FC map + sim block",
            "profile": "wilo-control-cc",
            "transport": "modbus-tcp", "host": host, "port": tcp_port, "unit_id": 1, **common,
            "max_read_bits": 2000,
            "overrides": {"cabinet.mode": {"enum": CABINET_MODE_ENUM}},
            "points": [_point(p, register_number=True) for p in cabinet_points()
                       if p.table != "holding_register" or p.address >= 300],
        },
        {
            "name": "flowmeter",
            "description": "electromagnetic flow meter, MFE600H 0x1010 map, behind a TCP gateway",
            "profile": "mfe600h-flow",
            "transport": "modbus-tcp", "host": host, "port": tcp_port, "unit_id": 2, **common,
        },
        {
            "name": "circ_drive",
            "description": "break-tank circulation pump drive, ABB ACS580, behind the TCP gateway",
            "profile": "abb-acs580",
            "transport": "modbus-tcp", "host": host, "port": tcp_port, "unit_id": CIRC_UNIT,
            **common, "prefix": "circ.",
        },
        {
            "name": "cl500",
            "description": "online chlorine analyser, Xylem CL500, behind the TCP gateway",
            "profile": "xylem-cl500",
            "transport": "modbus-tcp", "host": host, "port": tcp_port, "unit_id": CL500_UNIT,
            **common, "prefix": "cl500.",
        },
    ]  # fmt: skip
    for n in (1, 2, 3):
        devices.append({
            "name": f"vfd{n}", "description": f"pump {n} drive, INVT Goodrive GD200A map",
            "profile": "invt-gd200a",
            "transport": "modbus-rtu", **rtu, "unit_id": 10 + n, **common,
            "prefix": f"pump{n}.",
        })  # fmt: skip
    for which, unit, what in (("p_in", 21, "suction"), ("p_out", 22, "outlet")):
        devices.append({
            "name": f"pt_{what}", "description": f"{what} pressure transmitter, RS-485 v1 map",
            "profile": "rs485-pressure-v1",
            "transport": "modbus-rtu", **rtu, "unit_id": unit, **common,
            "prefix": f"{which}.", "overrides": {"value": {"name": which}},
        })  # fmt: skip
    ua_points = []
    for p in UA_POINTS:
        item: dict[str, Any] = {"name": p.name, "node_id": f"ns=2;s={p.node}"}
        item["namespace_uri"] = NAMESPACE_URI
        if p.unit:
            item["unit"] = p.unit
        item["description"] = p.description
        ua_points.append(item)
    devices.append({
        "name": "analyser", "description": "water-quality analyser and room I/O over OPC UA",
        "transport": "opcua", "endpoint": f"opc.tcp://{host}:{opcua_port}/pumproom/hil-sim/",
        "timeout_s": 2.0, "poll_interval_s": 1.0, "points": ua_points,
    })  # fmt: skip
    return devices


def _scalar(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_scalar(x)}" for k, x in v.items()) + "}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, float):
        r = repr(v)  # YAML 1.1 (PyYAML) needs a dot in exponent floats: 1.0e-06, not 1e-06
        return r.replace("e", ".0e") if "e" in r and "." not in r else r
    s = str(v)
    plain = s.replace("_", "").replace(".", "").replace("-", "").isalnum()
    return s if plain and not s[0].isdigit() and s not in ("true", "false", "null") else _quote(s)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_devices_yaml(devices: list[dict[str, Any]]) -> str:
    """``devices:`` as YAML text: device keys in block style, one flow mapping per point."""
    lines = ["devices:"]
    for dev in devices:
        lines.append(f"  # {dev['description']}")
        first = True
        for key, value in dev.items():
            if key == "points":
                continue
            lead = "  - " if first else "    "
            lines.append(f"{lead}{key}: {_scalar(value)}")
            first = False
        if "points" not in dev:
            lines.append("")
            continue
        lines.append("    points:")
        for point in dev["points"]:
            body = ", ".join(f"{k}: {_scalar(v)}" for k, v in point.items())
            lines.append(f"      - {{{body}}}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_devices_yaml(devices_config()))
