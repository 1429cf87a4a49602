"""Pure hydraulic building blocks of the simulated pump room: pump curve, tank, demand, suction.

No I/O, no clocks: every function is a function of its arguments (random draws take an explicit
:class:`random.Random`). Units: pressure MPa (gauge unless said), head m, flow m³/h, volume m³,
power kW, time s.

Sources (see /work/shared/reference/domain.md):

* Pump curve: EPANET single-point rule — shut-off head 133 % of the design head, zero head at
  200 % of the design flow, ``H = A − B·Q²`` (EPANET pump curve help, [S91]); with relative speed
  ``s`` the affinity laws give ``H = A·s² − B·Q²`` (domain.md §5.1, [S91][S92]).
* Tank: isothermal gas side, compliance ``C(p) = V0·p0/p²`` with absolute pressures, precharge
  0.7 × setpoint (Grundfos Hydro Multi-E / CU 301 manuals, [S20][S21]; domain.md §5.3).
* Demand delivery: EPANET 2.2 pressure-driven demand (PDA) with ``pmin``, ``preq``, ``pexp``
  ([S97], domain.md §5.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

M_PER_MPA = 1.0e6 / (1000.0 * 9.80665)
"""Metres of water column per MPa (ρ = 1000 kg/m³, standard gravity): ≈ 101.97 m/MPa."""

P_ATM_MPA = 0.101325
"""Standard atmosphere, MPa (absolute = gauge + P_ATM_MPA)."""


@dataclass(frozen=True, slots=True)
class PumpCurve:
    """Head and power curve of one variable-speed multistage pump at nominal speed (50 Hz).

    Built from one duty point with the EPANET single-point rule ([S91]). The default duty point
    (10 m³/h at 35 m) is a 10 m³/h-class vertical multistage pump of the kind domain.md §5.2 sizes
    for 200 households (3 duty + 1 standby); it resembles a 4-stage CR 10 but is *not* digitised
    from a datasheet (domain.md §5.1 notes no CR 10 data was available) — treat it as illustrative.

    Efficiency: ``η(x) = η_bep·x·(2 − x)`` with ``x = Q/(s·Q_bep)`` (a parabola through the best
    efficiency point, constant along affinity parabolas). With the single-point curve this makes
    the shaft power linear in flow, ``P = s³·P0·(1 + x/2)``, as catalogue power curves of
    multistage pumps roughly are.

    Attributes:
        q_bep_m3h: design (best-efficiency) flow at 50 Hz, m³/h.
        h_bep_m: design head at 50 Hz, m.
        eta_bep: pump (hydraulic) efficiency at the design point, 0–1 (assumed 0.68).
        eta_drive: motor × VFD efficiency, 0–1 (assumed 0.85).
    """

    q_bep_m3h: float = 10.0
    h_bep_m: float = 35.0
    eta_bep: float = 0.68
    eta_drive: float = 0.85

    @property
    def a_m(self) -> float:
        """Shut-off head at 50 Hz, m (133 % of the design head, [S91])."""
        return 1.33 * self.h_bep_m

    @property
    def b_m_per_m3h2(self) -> float:
        """Curve coefficient B, m/(m³/h)², so that H = 0 at 200 % of the design flow ([S91])."""
        return self.a_m / (2.0 * self.q_bep_m3h) ** 2

    def head_m(self, q_m3h: float, s: float) -> float:
        """Pump head in m at flow ``q_m3h`` (m³/h) and relative speed ``s`` (n/n_50Hz)."""
        return self.a_m * s * s - self.b_m_per_m3h2 * q_m3h * q_m3h

    def flow_m3h(self, head_m: float, s: float) -> float:
        """Flow in m³/h delivered against ``head_m`` at relative speed ``s``.

        Zero when the required head is at or above the shut-off head (the check valve closes;
        EPANET also shuts a pump whose required head exceeds shut-off, [S93]).
        """
        if s <= 0.0:
            return 0.0
        excess = self.a_m * s * s - head_m
        if excess <= 0.0:
            return 0.0
        return math.sqrt(excess / self.b_m_per_m3h2)

    def efficiency(self, q_m3h: float, s: float) -> float:
        """Pump efficiency (0–1) at flow ``q_m3h`` and relative speed ``s``."""
        if s <= 0.0:
            return 0.0
        x = min(max(q_m3h / (s * self.q_bep_m3h), 0.0), 2.0)
        return self.eta_bep * x * (2.0 - x)

    def shaft_power_kw(self, q_m3h: float, s: float) -> float:
        """Shaft power in kW: ``s³·P0·(1 + x/2)`` (see class docstring), 0 when stopped."""
        if s <= 0.0:
            return 0.0
        x = min(max(q_m3h / (s * self.q_bep_m3h), 0.0), 2.0)
        p0 = 9.80665 * (self.q_bep_m3h / 3600.0) * self.a_m / (2.0 * self.eta_bep)
        return s**3 * p0 * (1.0 + x / 2.0)

    def electrical_power_kw(self, q_m3h: float, s: float) -> float:
        """Electrical input power of pump + motor + VFD, kW."""
        return self.shaft_power_kw(q_m3h, s) / self.eta_drive


@dataclass(frozen=True, slots=True)
class DiaphragmTank:
    """Hydropneumatic (diaphragm) tank on the outlet header plus the header's own elasticity.

    Water volume stored: ``V(p) = V0·(1 − p0_abs/p_abs)`` for ``p > p0`` (isothermal gas,
    domain.md §5.3, [S20]) plus ``c_pipe·p`` for the pipes. The compliance ``dV/dp`` is
    ``V0·p0_abs/p_abs² + c_pipe``.

    Attributes:
        volume_m3: total tank volume V0, m³ (18 L: Grundfos' recommendation for CR 10, [S19]).
        precharge_mpa: gas precharge, MPa gauge (0.7 × the 0.40 MPa setpoint, [S20][S21]).
        c_pipe_m3_per_mpa: header/pipe compliance, m³/MPa (assumed, small).
    """

    volume_m3: float = 0.018
    precharge_mpa: float = 0.28
    c_pipe_m3_per_mpa: float = 0.0005

    def water_m3(self, p_mpa: float) -> float:
        """Water stored in tank and pipes at gauge pressure ``p_mpa``, m³."""
        pipe = self.c_pipe_m3_per_mpa * p_mpa
        if p_mpa <= self.precharge_mpa:
            return pipe
        p0 = self.precharge_mpa + P_ATM_MPA
        return self.volume_m3 * (1.0 - p0 / (p_mpa + P_ATM_MPA)) + pipe

    def compliance_m3_per_mpa(self, p_mpa: float) -> float:
        """``dV/dp`` at gauge pressure ``p_mpa``, m³/MPa ([S20], domain.md §5.3)."""
        if p_mpa <= self.precharge_mpa:
            return self.c_pipe_m3_per_mpa
        p0 = self.precharge_mpa + P_ATM_MPA
        pa = p_mpa + P_ATM_MPA
        return self.volume_m3 * p0 / (pa * pa) + self.c_pipe_m3_per_mpa


@dataclass(frozen=True, slots=True)
class PressureDrivenDemand:
    """EPANET 2.2 pressure-driven demand: delivered = required · ((p − pmin)/(preq − pmin))^pexp.

    Pressures are at the booster outlet header. Defaults (derived, domain.md §5.2): pmin 0.15 MPa
    ≈ static lift to the top fixture of a ~6-storey zone; preq 0.30 MPa adds 0.10 MPa residual
    (residential code ≥ 0.1 MPa at the draw-off, [S25]) and riser friction; pexp 0.5 (EPANET's
    default exponent, [S97]).
    """

    pmin_mpa: float = 0.15
    preq_mpa: float = 0.30
    pexp: float = 0.5

    def delivered_m3h(self, required_m3h: float, p_mpa: float) -> float:
        """Flow actually drawn, m³/h, given the required flow and the header pressure."""
        if p_mpa <= self.pmin_mpa:
            return 0.0
        if p_mpa >= self.preq_mpa:
            return required_m3h
        return required_m3h * ((p_mpa - self.pmin_mpa) / (self.preq_mpa - self.pmin_mpa)) ** (
            self.pexp
        )


@dataclass(frozen=True, slots=True)
class Riser:
    """The building between the booster's outlet header and the top-floor tap (the index point).

    ``p_index = p_out − height/M_PER_MPA − k·Q²`` with ``k = friction_mpa / design_flow²``: the
    static lift to the highest fixture and the riser/branch friction at the flow drawn
    (domain.md §5.2: "static lift to the zone plus riser/branch friction (∝ Q²)"). This is the
    pressure the resident on the top floor feels; the agent never sees it (no transmitter there).

    Defaults (derived, consistent with the plant's 0.40 MPa setpoint and
    :class:`PressureDrivenDemand`'s ``pmin``/``preq`` for a ~6-storey zone, domain.md §1.6/§5.2):
    the top fixture 15 m above the outlet transmitter (0.147 MPa ≈ ``pmin`` 0.15 MPa: no flow
    reaches it below that); 0.05 MPa of riser friction at the design instantaneous flow of
    200 households, 26 m³/h (§5.2 table), so that ``preq`` 0.30 MPa = lift + 0.10 MPa residual
    (≥ 0.1 MPa at the draw-off, [S25]) + friction. (§5.2's 45 m worked example is a high zone
    with a 0.62 MPa setpoint; its 6–8 m friction is for that longer riser.)

    Attributes:
        height_m: top-floor tap above the outlet pressure transmitter, m.
        friction_mpa: riser/branch friction loss at ``design_flow_m3h``, MPa.
        design_flow_m3h: flow at which ``friction_mpa`` is lost, m³/h.
    """

    height_m: float = 15.0
    friction_mpa: float = 0.05
    design_flow_m3h: float = 26.0

    @property
    def k_mpa_per_m3h2(self) -> float:
        """Friction coefficient k, MPa/(m³/h)²."""
        return self.friction_mpa / self.design_flow_m3h**2

    def index_pressure_mpa(self, p_out_mpa: float, q_m3h: float) -> float:
        """Gauge pressure at the top-floor tap, MPa, with ``p_out_mpa`` (MPa gauge) at the
        header and ``q_m3h`` (m³/h) flowing up the riser. 0 when the water does not reach the
        top floor (the riser's top is then at atmospheric pressure, not below)."""
        p = p_out_mpa - self.height_m / M_PER_MPA - self.k_mpa_per_m3h2 * q_m3h * q_m3h
        return max(p, 0.0)


DIURNAL_PATTERN: tuple[float, ...] = (
    0.30, 0.10, 0.04, 0.03, 0.05, 0.40,  # 00–05 h
    1.16, 2.50, 2.03, 1.36, 0.97, 1.16,  # 06–11 h
    1.26, 0.87, 0.68, 0.73, 0.97, 1.45,  # 12–17 h
    2.13, 2.23, 1.55, 0.97, 0.62, 0.44,  # 18–23 h
)  # fmt: skip
"""Hourly multipliers of the average-day flow at the start of each hour (00 h … 23 h).

Calibrated against domain.md §5.2:

* the 24 factors sum to 24, so the day's volume is exactly households × persons × quota
  (200 × 2.8 × 200 L = 112 m³, GB 50015 table 3.1.9 [S98]) — :func:`diurnal_factor`
  interpolates linearly and the integral of a periodic piecewise-linear curve is the sum of its
  nodes;
* bulk use 06–10 h (largest) and 16–20 h, night near zero ([S99]); the peak hour (07 h) reaches
  Kh = 2.5, the factor of §5.2's worked table (GB 50015 type II housing 2.8–2.3, [S98]):
  11.7 m³/h for 200 households;
* the night minimum (03 h, 0.03 × 4.67 = 0.14 m³/h; lowest hourly mean 02–03 h 0.16 m³/h) lies in
  §5.2's estimate 0.05–0.2 m³/h ("leaking cisterns, occasional draws"), most of it the base leak
  :attr:`hil_sim.plant.PlantParams.base_leak_m3h`.

The instantaneous peaks on top of this hourly mean come from the pulse draws
(:class:`hil_sim.environment.PulseDemand`).
"""


def diurnal_factor(time_of_day_s: float, pattern: tuple[float, ...] = DIURNAL_PATTERN) -> float:
    """Multiplier of the average-day flow at ``time_of_day_s`` (seconds since local midnight),
    linearly interpolated between the 24 hourly values of ``pattern`` (default
    :data:`DIURNAL_PATTERN`; a scenario may give its own)."""
    h = (time_of_day_s / 3600.0) % 24.0
    i = int(h)
    frac = h - i
    return pattern[i] * (1.0 - frac) + pattern[(i + 1) % 24] * frac


def average_flow_m3h(households: int, persons: float, quota_l_per_day: float) -> float:
    """Average-day flow in m³/h: households × persons × quota (GB 50015 table 3.1.9, [S98]).

    Example (domain.md §5.2): 200 households × 2.8 persons × 200 L/(person·d) = 4.67 m³/h.
    """
    return households * persons * quota_l_per_day / 1000.0 / 24.0


def mains_pressure_mpa(
    time_of_day_s: float, mean_mpa: float = 0.20, swing_mpa: float = 0.04
) -> float:
    """Municipal mains pressure at the suction of a 叠压 (direct boosting) set, MPa gauge.

    The mains sag when the city draws most: pressure is the mean minus ``swing`` × (diurnal
    factor − 1) / 1.5, clipped to ±swing (derived from the demand pattern, domain.md §5.2/§6.1).
    """
    f = diurnal_factor(time_of_day_s)
    return mean_mpa - max(-swing_mpa, min(swing_mpa, swing_mpa * (f - 1.0) / 1.5))
