"""Feed-forward of the lead frequency: measured flow, and the hand-over when pumps are staged.

Pure functions; the loop adds their *increments* to the PI integrator (:class:`PidInput` ``ff``),
so the PI keeps its own correction and stays bumpless.

Pump model: the EPANET single-point curve, shut-off head 133 % of the rated head and zero head
at 200 % of the rated flow, ``H = A·s² − B·q²`` with ``B = A/(2·Q_n)²`` and relative speed ``s``
(affinity laws) [S91] (domain.md §5.1). In normalised form ``h = H/A``::

    s² = h + (q / (2·Q_n))²

so only the rated flow ``Q_n`` is needed (``staging.pump_capacity_m3h``), and the head ``h`` is
estimated from the measured operating point (speed and flow) — no curve data to configure.

* Flow feed-forward: at constant head, ``ds/dq = q/(4·Q_n²·s)``, which is ``1/(4·Q_n)`` at the
  rated point: ``f_max/(4·Q_n)`` Hz per m³/h for one pump, shared by ``n`` pumps at equal speed
  (master/follower). A building's draw is a measured disturbance; feeding it forward lets the PI
  only trim (derived; a draw step otherwise shows up first as a pressure sag). The gain is taken
  at the operating point (:func:`flow_gain_at`): at part load it is well below the rated-point
  value (0.57 × at half the rated flow per pump and 0.8 speed), and the rated-point gain cut the
  speed by ~1.75 × too much when a draw ended — on the simulator a 0.40→0.45 MPa step then
  sagged 7 kPa after reaching its target and settled in 11.4 s instead of ~6 s.
* Hand-over at staging (equal speeds, same total flow ``Q``): from ``n`` to ``m`` pumps the lead
  moves to ``s'² = s² + (Q/(2·Q_n))²·(1/m² − 1/n²)`` — it *drops* when a pump starts and rises
  when one stops, as ABB's PFC drops the drive by START FREQ − LOW FREQ when an auxiliary motor
  starts and raises it by the same when one stops (8109/8112, [S12], domain.md §1.3). A new
  pump adds no flow until its speed passes the shut-off speed ``√h``, so the drop is applied
  in step with the new pump's share of the flow, from its measured (extrapolated) speed
  (Grundfos CU 352 "compensation for pump start-up time", [S3], domain.md §1.1). With
  fixed-speed lag pumps (``one_vfd``) ABB's step ``stage_on_hz − stage_off_hz`` is used.
"""

from __future__ import annotations

import math


def flow_gain_hz_per_m3h(f_max_hz: float, rated_flow_m3h: float) -> float:
    """Frequency per flow of one pump at its rated point, Hz per m³/h: ``f_max/(4·Q_n)``."""
    if rated_flow_m3h <= 0:
        raise ValueError("rated flow must be > 0")
    return f_max_hz / (4.0 * rated_flow_m3h)


def flow_gain_at(lead_hz: float, flow_m3h: float, n: int, f_max_hz: float,
                 rated_flow_m3h: float) -> float:  # fmt: skip
    """Lead frequency per m³/h of the *total* flow of ``n`` equal pumps at their operating point
    (``lead_hz``, ``flow_m3h``), Hz per m³/h, at constant head: each pump takes ``1/n`` of a
    change and ``ds/dq = q/(4·Q_n²·s)`` with ``q = flow/n``, so ``f_max·q/(4·Q_n²·s·n)``. It is
    ``f_max/(4·Q_n)/n`` at the rated point (:func:`flow_gain_hz_per_m3h`) and falls towards 0
    at low flow, where the flat curve moves much flow for little speed. 0 when nothing runs.
    Raises ValueError for a rated flow ≤ 0."""
    if rated_flow_m3h <= 0:
        raise ValueError("rated flow must be > 0")
    if n <= 0 or lead_hz <= 0 or flow_m3h <= 0:
        return 0.0
    s = max(lead_hz / f_max_hz, 0.3)  # below 30 % speed nothing runs: no division blow-up
    q = flow_m3h / n
    return f_max_hz * q / (4.0 * rated_flow_m3h**2 * s * n)


def head_fraction(lead_hz: float, flow_m3h: float, n: int, f_max_hz: float,
                  rated_flow_m3h: float) -> float:  # fmt: skip
    """Normalised head ``h = s² − (q/(2·Q_n))²`` of ``n`` pumps at ``lead_hz`` sharing
    ``flow_m3h`` (0 … 1.33²·… in practice 0.2–0.9)."""
    s = lead_hz / f_max_hz
    q = flow_m3h / max(n, 1)
    return max(s * s - (q / (2.0 * rated_flow_m3h)) ** 2, 0.0)


def equal_speed_hz(h: float, flow_m3h: float, n: int, f_max_hz: float,
                   rated_flow_m3h: float) -> float:  # fmt: skip
    """Speed (Hz) at which ``n`` equal pumps deliver ``flow_m3h`` against head ``h``."""
    q = flow_m3h / max(n, 1)
    return f_max_hz * math.sqrt(h + (q / (2.0 * rated_flow_m3h)) ** 2)


def startup_fraction(new_hz: float | None, lead_hz: float, h: float, f_max_hz: float) -> float:
    """How much of its share of the flow a starting pump already delivers (0–1): its flow at
    ``new_hz`` over its flow at ``lead_hz`` against head ``h``, ``√(s² − h)/√(s_lead² − h)`` —
    0 up to the shut-off speed ``√h``, then rising steeply (the square law); ``None`` (not
    polled yet) counts as 0."""
    if new_hz is None:
        return 0.0
    s_new, s_lead = new_hz / f_max_hz, lead_hz / f_max_hz
    full = s_lead * s_lead - h
    if full <= 1e-6:
        return 1.0 if new_hz >= lead_hz - 0.5 else 0.0
    return min(math.sqrt(max(s_new * s_new - h, 0.0) / full), 1.0)


def extrapolate_hz(prev: tuple[float, float] | None, last: tuple[float, float],
                   now_s: float, cap_hz: float) -> float:  # fmt: skip
    """A ramping drive's output frequency now, from its last two polled ``(time s, Hz)``
    readings (linear, rising only, at most ``cap_hz``): the drive is polled every 0.5–1 s while
    it ramps 5–10 Hz/s, so the last reading is several Hz behind."""
    t1, f1 = last
    if prev is None or t1 - prev[0] <= 1e-3:
        return min(f1, cap_hz)
    rate = max((f1 - prev[1]) / (t1 - prev[0]), 0.0)
    return min(f1 + rate * max(now_s - t1, 0.0), max(cap_hz, f1))
