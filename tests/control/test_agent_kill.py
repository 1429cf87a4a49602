"""The agent killed while it closes the loop (direct mode): the drives' communication watchdog
acts, and the pressure recovers under the cabinet's own controller.

Real processes: a private Mosquitto, ``hil-sim run`` and ``pumproom-agent run`` on
``config/example.yaml`` plus a ``control:`` section, all on loopback (``tests/procs.py``). The
drives start with their default watchdog (60 s, continue at the last speed); the *agent* sets
each drive's communication-loss action and timeout (``control.comm_loss``: 3 s, hand back to
the cabinet; INVT P14.04/P14.05, Danfoss 8-03/8-04 [S29]) and takes control only once they read
back. The old agent did not, and the drives kept their last speed for ever.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import yaml

from hil_sim.plant import MODE_AUTO, MODE_BUS
from tests.control.rig import documented
from tests.procs import EXAMPLE, AgentProc, Mosquitto, Simulator, wait_for

pytestmark = pytest.mark.timeout(120)

TIMEOUT_S = 3.0
"""The drives' control timeout the agent sets (``control.comm_loss.timeout_s`` default)."""
DIP_FLOOR_MPA = 0.40 - 0.05
"""Lowest plant pressure allowed from the kill until the cabinet holds again: the setpoint 0.40
MPa less the loop's own under-pressure band (``interlocks.under_pressure_band_mpa``, 0.05 MPa):
a hand-over must not take the room into what the agent itself alarms as UNDER_PRESSURE. What
bounds the dip: the frozen drives deliver along their curve for at most the 3 s timeout while
+6 m³/h is drawn, then the cabinet's PI takes over bumplessly from their speeds. Measured
0.375–0.378 MPa (4 runs); the old test passed with a dip to 0.254 MPa."""


def _truth(sim: Simulator) -> dict:
    return sim.command({"cmd": "truth"})["values"]


def test_sigkill_in_direct_mode_hands_over_to_the_cabinet(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["control"]["mode"] = "direct"  # the documented configuration, direct mode
    documented(data)  # …with the outlet pressure polled every 0.2 s, as the example says
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    broker = Mosquitto(tmp_path).start()
    sim = Simulator(tmp_path).start()
    agent = AgentProc(tmp_path, broker.port, sim, "kill-site", config=config)
    try:
        sim.command({"cmd": "set", "name": "setpoint", "value": 0.40})
        wait_for(lambda: abs(_truth(sim)["p_out"] - 0.40) < 0.03, 30, "the cabinet's pressure")
        agent.start()
        wait_for(lambda: _truth(sim)["cabinet.mode"] == MODE_BUS, 30, "the agent's bus mode")
        values = _truth(sim)  # the agent set every drive's watchdog before it took control
        for n in (1, 2, 3):
            assert values[f"pump{n}.comm_action"] == 20, values
            assert values[f"pump{n}.comm_timeout"] == pytest.approx(TIMEOUT_S), values
        # the agent keeps the drives' watchdog fed: bus mode holds for well over the timeout
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2 * TIMEOUT_S:
            values = _truth(sim)
            assert values["cabinet.mode"] == MODE_BUS, "watchdog fired while the agent ran"
            time.sleep(0.2)
        # and it closes the loop: 2 s in a row within ±0.03 MPa (the take-over transient may
        # still be settling at this point on a loaded machine: 0.357 MPa was seen once)
        ours: list[float] = []

        def regulated() -> bool:
            values = _truth(sim)
            assert values["cabinet.mode"] == MODE_BUS, "watchdog fired while the agent ran"
            ours.append(values["p_out"])
            return len(ours) >= 10 and all(abs(p - 0.40) < 0.03 for p in ours[-10:])

        wait_for(regulated, 20, "pressure held at 0.40 MPa by the agent", step_s=0.2)

        agent.stop(signal.SIGKILL)  # no clean hand-back: only the drives' watchdog is left
        killed = time.monotonic()
        # more water drawn while nobody closes the loop (frozen speeds would sag)
        sim.command({"cmd": "set", "name": "leak_m3h", "value": 6.0})
        dip: list[float] = []
        time.sleep(TIMEOUT_S * 0.5)
        assert _truth(sim)["cabinet.mode"] == MODE_BUS  # still frozen: it is the watchdog…

        def handed_over() -> bool:
            values = _truth(sim)
            dip.append(values["p_out"])
            return values["cabinet.mode"] == MODE_AUTO

        wait_for(handed_over, 3 * TIMEOUT_S, "watchdog", step_s=0.1)
        took = time.monotonic() - killed
        # …after its timeout, counted from the agent's last write: with a steady output (a quiet
        # night's demand) that is the 1 s refresh, up to 1 s before the kill
        assert TIMEOUT_S - 1.0 - 0.2 <= took <= TIMEOUT_S + 2.0, took

        # the cabinet's own PI (with its own staging) brings the pressure back to its setpoint
        # and holds it: 3 s in a row within ±0.03 MPa, within 30 s of the hand-over
        series: list[float] = []

        def held() -> bool:
            series.append(_truth(sim)["p_out"])
            dip.append(series[-1])
            return len(series) >= 15 and all(abs(p - 0.40) < 0.03 for p in series[-15:])

        wait_for(held, 30, "pressure held at 0.40 MPa under the cabinet", step_s=0.2)
        print(f"recovered {time.monotonic() - killed:.1f} s after the kill; p_out {series[::5]};"
              f" lowest {min(dip):.3f} MPa")  # fmt: skip
        assert _truth(sim)["cabinet.mode"] == MODE_AUTO
        assert min(dip) >= DIP_FLOOR_MPA, f"hand-over dip to {min(dip):.3f} MPa"
    finally:
        agent.stop(signal.SIGKILL)
        sim.stop()
        broker.stop()
