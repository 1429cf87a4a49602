"""The real agent behind a simulated Modbus TCP/RTU gateway whose unit 2 is dead.

The gateway answers 0x0B (gateway target device failed to respond, Modbus Application Protocol
V1.1b3 §7) for unit 2 after 0.8 s, its own serial timeout. The flow meter's samples must say
comm-fail (never bad-value), the cabinet (unit 1, same gateway) must keep its poll period, and the
flow meter must be back within one slow-probe interval of the unit answering again. The figures
print (``-s``); ``python -m tests.benchmarks.gateway`` measures more cases.
"""

from __future__ import annotations

from drivers.modbus.health import OFFLINE_AFTER, PROBE_INTERVAL_S
from tests.faults_field.gateway_rig import POLL_S, TIMEOUT_S, run


def test_gateway_dead_unit_is_comm_fail_and_does_not_slow_the_live_unit(tmp_path):
    got = run(tmp_path, {"gateway_error": 11, "delay_s": 0.8}, fault_s=8.0)
    print(got)
    assert got["dead_qualities"] and set(got["dead_qualities"]) == {"c"}, got
    assert set(got["dead_reasons"]) <= {"modbus:exception:11", "offline"}, got
    assert got["healthy_period_median_s"] <= 1.2 * POLL_S, got
    # each of the OFFLINE_AFTER reads before the unit is offline, then one probe of the dead
    # unit (one late 0x0B) per PROBE_INTERVAL_S may cost the live unit one poll; no other may
    allowed = OFFLINE_AFTER + got["fault_s"] / PROBE_INTERVAL_S + 1
    assert got["healthy_gaps_over_1_5x"] <= allowed, got
    assert got["recovery_s"] <= PROBE_INTERVAL_S + POLL_S + TIMEOUT_S + 2.0, got
