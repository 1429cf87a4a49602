"""Stochastic building demand, water quality and pump-room environment (pure, seeded).

Units: flow m³/h, time s, turbidity NTU, chlorine mg/L, temperature °C.

* Demand: the diurnal mean of :func:`hil_sim.hydraulics.diurnal_factor` is realised as a pulse
  process — draws (taps, showers, washing machines) arrive as a Poisson process and each runs for
  an exponential time at a random rate — because at 100–300 households the demand is intermittent
  and skewed (domain.md §5.2, [S100][S101]). At the peak hours a slow surge (households
  drawing together) lifts the instantaneous peaks to §5.2's design instantaneous flow (≈ 26 m³/h
  for 200 households, 2.2 × the peak hour). A base leak (night minimum 0.05–0.2 m³/h,
  domain.md §5.2) is always on.
* Water quality: free chlorine decays first-order with the water age in the header and riser
  volume (domain.md §6.1 "chlorine first-order decay with water age"); turbidity is a baseline plus
  injected events; pH wanders slowly. Thresholds of interest (GB 5749, domain.md §3.3): turbidity
  ≤ 1 NTU, residual chlorine ≥ 0.05 mg/L, pH 6.5–8.5.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class PulseDemand:
    """Poisson-pulse water draws whose mean follows a given mean flow.

    One draw is a fixture's use (GB 50015 fixture flows 0.1–0.3 L/s, [S98]): uniform between
    0.4 and 1.6 × ``mean_draw_m3h``. The arrival rate is the mean flow over the mean draw volume,
    times a surge factor ``1 + a·tanh(x)`` (mean 1 since tanh is odd, so the day's volume is
    kept; bounded to 1 ± a) where ``x`` is a unit Ornstein–Uhlenbeck process with time constant
    ``surge_tau_s`` and the amplitude ``a`` (0–1) is given per step (:class:`~hil_sim.plant.Plant`
    raises it with the diurnal factor: use is correlated at the peak hours — everyone showers in
    the same minutes — which independent draws cannot show; derived). Calibration (domain.md
    §5.2): independent draws alone peak at ~0.65 × the design instantaneous flow of 200
    households (26 m³/h); with a = 0.8 at Kh 2.5 and a 120 s time constant the highest instant of
    the peak hour is 21–28 m³/h (mean 24 over 10 seeds; tests/hil_sim/test_physics.py checks
    it), while away from the peaks the short-term behaviour is that of independent draws.

    Attributes:
        mean_draw_m3h: mean flow of one draw, m³/h (0.5 m³/h ≈ 0.14 L/s, a shower or tap).
        mean_duration_s: mean duration of one draw, s.
        surge_tau_s: time constant of the surge, s (in plant time; scaled with
            ``duration_scale`` like the draws).
        leak_m3h: always-on base flow, m³/h.
        duration_scale: multiplier of ``mean_duration_s`` (1 in real time). When the time of
            day runs faster than plant time (``Plant.day_speed``), the plant shortens the draws
            with it — a 60 s draw at a day in a few minutes would span hours of the profile
            and smear it — while the arrival rate rises so the mean flow is unchanged. Shorter
            draws make the demand faster and harder to follow, never easier.
        draws: active draws as (end time s, flow m³/h).
    """

    mean_draw_m3h: float = 0.5
    mean_duration_s: float = 60.0
    surge_tau_s: float = 120.0
    leak_m3h: float = 0.1
    duration_scale: float = 1.0
    draws: list[tuple[float, float]] = field(default_factory=list)
    _last_s: float | None = None
    _budget: float = 0.0
    _surge_x: float = 0.0

    def draw_flow_m3h(self, rng: random.Random) -> float:
        """Flow of one new draw, m³/h (uniform, mean ``mean_draw_m3h``)."""
        return rng.uniform(0.4, 1.6) * self.mean_draw_m3h

    def step(
        self, now_s: float, mean_flow_m3h: float, rng: random.Random, surge: float = 0.0
    ) -> float:
        """Advance to ``now_s`` and return the required flow, m³/h.

        Args:
            now_s: plant time, s (non-decreasing).
            mean_flow_m3h: target mean demand at this time (without the leak), m³/h.
            rng: the plant's seeded random generator.
            surge: amplitude ``a`` of the surge factor now, 0–1 (0: independent draws).
        """
        duration_s = self.mean_duration_s * self.duration_scale
        if self._last_s is not None and now_s > self._last_s:
            a = min((now_s - self._last_s) / (self.surge_tau_s * self.duration_scale), 1.0)
            self._surge_x += -a * self._surge_x + math.sqrt(2.0 * a) * rng.gauss(0.0, 1.0)
        factor = 1.0 + min(max(surge, 0.0), 1.0) * math.tanh(self._surge_x)
        rate_per_s = max(mean_flow_m3h, 0.0) * factor / (self.mean_draw_m3h * duration_s)
        if self._last_s is None:
            # Start in the stationary state: ≈ rate × duration draws already running.
            expected = rate_per_s * duration_s
            n = max(0, round(rng.gauss(expected, expected**0.5)))
            for _ in range(n):
                q = self.draw_flow_m3h(rng)
                self.draws.append((now_s + rng.expovariate(1.0 / duration_s), q))
            self._budget = rng.expovariate(1.0)
        else:
            # Inhomogeneous Poisson arrivals by time change: a unit-exponential budget is used
            # up at the present rate and each arrival draws a fresh one. Exact for a rate that
            # changes between steps, so slow rises (night → morning) do not lag.
            self._budget -= rate_per_s * (now_s - self._last_s)
            while self._budget <= 0.0:
                start = now_s + self._budget / rate_per_s  # budget ≤ 0 ⇒ rate > 0 here
                q = self.draw_flow_m3h(rng)
                self.draws.append((start + rng.expovariate(1.0 / duration_s), q))
                self._budget += rng.expovariate(1.0)
        self._last_s = now_s
        self.draws = [d for d in self.draws if d[0] > now_s]
        return self.leak_m3h + sum(q for _, q in self.draws)


@dataclass
class WaterQuality:
    """Water-quality state at the analyser on the outlet header.

    Attributes:
        chlorine_in_mg_l: free chlorine arriving from the mains, mg/L.
        decay_per_h: first-order bulk decay constant, 1/h (assumed 0.5/h).
        volume_m3: mixed volume of header and risers whose age is tracked, m³ (assumed 1 m³).
        age_s: mean water age in that volume, s.
        turbidity_base_ntu: baseline turbidity, NTU.
        turbidity_event_ntu: extra turbidity injected by a scenario, NTU (decays with 10 min τ).
        ph: current pH.
    """

    chlorine_in_mg_l: float = 0.45
    decay_per_h: float = 0.5
    volume_m3: float = 1.0
    age_s: float = 600.0
    turbidity_base_ntu: float = 0.25
    turbidity_event_ntu: float = 0.0
    ph: float = 7.4

    def step(self, dt_s: float, flow_m3h: float, rng: random.Random) -> None:
        """Advance by ``dt_s`` with ``flow_m3h`` leaving through the header."""
        # d(age)/dt = 1 − Q·age/V (well-mixed volume).
        self.age_s += dt_s * (1.0 - (flow_m3h / 3600.0) * self.age_s / self.volume_m3)
        self.age_s = max(self.age_s, 0.0)
        self.turbidity_event_ntu *= math.exp(-dt_s / 600.0)
        self.ph += (7.4 - self.ph) * dt_s / 3600.0 + rng.gauss(0.0, 0.0005) * math.sqrt(dt_s)

    @property
    def chlorine_mg_l(self) -> float:
        """Free chlorine at the analyser, mg/L."""
        return self.chlorine_in_mg_l * math.exp(-self.decay_per_h * self.age_s / 3600.0)

    @property
    def turbidity_ntu(self) -> float:
        """Turbidity at the analyser, NTU."""
        return self.turbidity_base_ntu + self.turbidity_event_ntu


@dataclass
class Room:
    """Pump-room I/O: door contact, flood electrode, smoke detector, cabinet temperature.

    Attributes:
        door_open: door contact (True = open).
        flood: water-on-floor electrode (True = wet).
        smoke: smoke detector's alarm contact (True = smoke).
        ambient_c: room temperature, °C.
        cabinet_c: cabinet air temperature, °C; rises with drive losses (τ 10 min, assumed
            0.02 K per W of loss at steady state).
    """

    door_open: bool = False
    flood: bool = False
    smoke: bool = False
    ambient_c: float = 22.0
    cabinet_c: float = 25.0

    def step(self, dt_s: float, drive_loss_kw: float) -> None:
        """Advance the cabinet temperature by ``dt_s`` with ``drive_loss_kw`` dissipated."""
        target = self.ambient_c + 3.0 + 20.0 * drive_loss_kw
        self.cabinet_c += (target - self.cabinet_c) * min(1.0, dt_s / 600.0)
