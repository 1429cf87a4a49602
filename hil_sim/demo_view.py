"""The demo's screen: the pump room in words, 80 columns × 24 lines at most.

Pure: :func:`render` turns a :class:`Room` (what the platform received over MQTT, plus the
simulator's truth for the top floor) and the story lines into at most :data:`ROWS` lines of at
most :data:`COLS` columns. Pressures MPa, flows m³/h, frequencies Hz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COLS = 80
"""Widest line, columns (a classic terminal)."""
ROWS = 24
"""Most lines of one frame (a classic terminal)."""
STORY_LINES = 8
"""Newest story lines kept on the screen."""


@dataclass
class Room:
    """What the screen shows. ``latest``: point → latest uplinked value (MQTT telemetry);
    ``status``: the retained ``status`` message; ``local``: the agent's ``/status.json``
    (uplink and buffer) or empty; ``alarms``: alarm code → state from ``event`` messages;
    ``truth``: the simulator's truth (``plant.p_index``: top-floor pressure, MPa);
    ``devices``: transport → (devices with every point uplinked, devices)."""

    latest: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    local: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, str] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, tuple[int, int]] = field(default_factory=dict)
    messages: int = 0
    service_mpa: float = 0.10


def _f(value: Any, fmt: str, unit: str = "") -> str:
    """``value`` formatted, or ``?`` when it has not arrived (or is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    return f"{value:{fmt}}{unit}"


def _pumps(latest: dict[str, Any]) -> str:
    parts = []
    for n in (1, 2, 3):
        running = latest.get(f"pump{n}.running")
        freq = latest.get(f"pump{n}.freq")
        fault = latest.get(f"pump{n}.fault_code")
        if fault:
            parts.append(f"P{n} FAULT {fault}")
        elif running is None:
            parts.append(f"P{n} ?")
        elif running:
            parts.append(f"P{n} running {_f(freq, '.1f', ' Hz')}")
        else:
            parts.append(f"P{n} stopped")
    return "Pumps     " + "   ".join(parts)


def _quality(latest: dict[str, Any]) -> str:
    turb, cl, ph = latest.get("wq.turbidity"), latest.get("wq.chlorine"), latest.get("wq.ph")
    verdict = "?"
    if all(isinstance(v, int | float) for v in (turb, cl, ph)):
        # GB 5749-2022 limits as domain.md §3.3 encodes them for a pump room
        ok = turb <= 1.0 and cl >= 0.05 and 6.5 <= ph <= 8.5  # type: ignore[operator]
        verdict = "within GB 5749" if ok else "OUT OF LIMITS"
    return (
        f"Water     turbidity {_f(turb, '.2f', ' NTU')}  chlorine {_f(cl, '.2f', ' mg/L')}"
        f"  pH {_f(ph, '.2f')}  {verdict}"
    )


def _alarms(room: Room) -> str:
    active = sorted(code for code, state in room.alarms.items() if state == "active")
    active += [
        name.removeprefix("alarm.")
        for name, v in sorted(room.latest.items())
        if name.startswith("alarm.") and v is True
    ]
    active += [n for n in ("room.door", "room.flood") if room.latest.get(n) is True]
    return "Alarms    " + (", ".join(active) if active else "none")


def _uplink(room: Room) -> str:
    state = room.status.get("state", "connecting")
    up = room.local.get("uplink", {})
    buf = room.local.get("buffer", {})
    link = "connected" if up.get("connected") else "DOWN" if up else "?"
    return (
        f"Uplink    gateway {state}, MQTT {link}, {room.messages} msgs; "
        f"buffer {buf.get('pending', '?')} waiting for PUBACK"
    )


def _devices(room: Room) -> str:
    parts = [f"{t} {done}/{n}" for t, (done, n) in sorted(room.devices.items())]
    return "Devices   " + ("  ".join(parts) if parts else "?") + " fully uplinked"


def render(room: Room, story: list[str], footer: str) -> list[str]:
    """The frame: header, the room (9 lines), the newest story lines, the footer.

    Every line is cut to :data:`COLS` columns; there are never more than :data:`ROWS` lines.
    """
    lt = room.latest
    sp = lt.get("ctl.sp", lt.get("setpoint"))
    top = room.truth.get("plant.p_index")
    verdict = "?"
    if isinstance(top, int | float):
        verdict = "OK" if top >= room.service_mpa else "LOW: below the service level"
    gw = room.status.get("gw", "?")
    lines = [
        f"pumproom-edge demo: pump room {gw} {room.status.get('state', 'connecting')} "
        "(platform's view)",
        "-" * COLS,
        _pumps(lt),
        f"Outlet    {_f(lt.get('p_out'), '.3f', ' MPa')}   setpoint {_f(sp, '.2f', ' MPa')}"
        f"   suction {_f(lt.get('p_in'), '.3f', ' MPa')}",
        f"Top floor {_f(top, '.3f', ' MPa')}   service level {room.service_mpa:.2f} MPa   "
        f"{verdict}",
        f"Flow      {_f(lt.get('flow'), '.1f', ' m³/h')}   (top floor: simulator truth, "
        "no sensor there)",
        _quality(lt),
        _alarms(room),
        _uplink(room),
        _devices(room),
        "-" * COLS,
    ]
    lines += story[-STORY_LINES:]
    room_for_footer = ROWS - len(lines) - 1
    lines += [""] * max(room_for_footer, 0)
    lines.append(footer)
    return [line[:COLS] for line in lines[:ROWS]]
