"""Building engines from config dicts for the table tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.alarms.engine import AlarmEngine
from agent.alarms.rules import PointFacts, compile_rules
from agent.alarms.state import Alarm, Transition
from agent.config.alarms import AlarmsConfig
from agent.core.model import Quality, Reading

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "config"
T0 = 1_700_000_000_000


def facts(
    *names: str, device: str = "dev", conn: str = "bus", interval: float = 1.0
) -> dict[str, PointFacts]:
    return {n: PointFacts(device, conn, None, interval) for n in names}


def engine(
    cfg: dict[str, Any],
    points: dict[str, PointFacts],
    restored: dict[str, Alarm] | None = None,
) -> AlarmEngine:
    alarms = AlarmsConfig.model_validate(cfg)
    specs = compile_rules(alarms, points, CONFIG_DIR)
    return AlarmEngine(specs, restored or {}, alarms.shelve_max_s)


class Run:
    """Drives an engine on a fake time line: ``feed(t_s, point=value, ...)`` then ticks."""

    def __init__(self, eng: AlarmEngine) -> None:
        self.eng = eng
        self.out: list[Transition] = []
        self.t = 0.0

    def at(self, t_s: float) -> Run:
        self.t = t_s
        self.out += self.eng.tick(T0 + int(t_s * 1000), t_s)
        return self

    def feed(self, t_s: float, **values: Any) -> Run:
        self.t = t_s
        readings = []
        for k, v in values.items():
            name = k.replace("__", ".")
            if isinstance(v, Quality):
                readings.append(Reading(name, None, v, "timeout"))
            else:
                readings.append(Reading(name, v))
        self.out += self.eng.observe(readings, T0 + int(t_s * 1000), t_s)
        self.out += self.eng.tick(T0 + int(t_s * 1000), t_s)
        return self

    def series(self, point: str, pairs: list[tuple[float, Any]]) -> Run:
        for t_s, v in pairs:
            self.feed(t_s, **{point.replace(".", "__"): v})
        return self

    def seen(self) -> list[tuple[str, str]]:
        """(alarm id, transition) in order."""
        return [(tr.alarm.id, tr.what.value) for tr in self.out]

    def take(self) -> list[tuple[str, str]]:
        out = self.seen()
        self.out = []
        return out
