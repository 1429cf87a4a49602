"""``python -m tests.benchmarks.gateway [--fault-s S]``: a Modbus TCP gateway with a dead unit.

The simulator plays a TCP/RTU gateway with the cabinet (unit 1, healthy) and the flow meter
(unit 2) behind it; the real agent polls both every 0.5 s (timeout 1 s). Three cases for unit 2:
the gateway answers 0x0B after its own 0.8 s serial timeout, answers 0x0A at once, or the unit
is silent (no answer at all). Prints, per case, the healthy unit's sample spacing (median, max,
spacings over 1.5 poll intervals), the dead unit's sample qualities and reasons, and the time from
the unit answering again to its first good sample. See tests/faults_field/gateway_rig.py.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tests.faults_field.gateway_rig import run

CASES = {
    "0x0B after 0.8 s": {"gateway_error": 11, "delay_s": 0.8},
    "0x0A at once": {"gateway_error": 10},
    "silent": {"silent": True},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fault-s", type=float, default=15.0, help="seconds unit 2 stays dead")
    args = ap.parse_args()
    for name, fault in CASES.items():
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as d:
            got = run(Path(d), fault, args.fault_s)
        print(f"{name:>18}: {json.dumps(got)}", flush=True)


if __name__ == "__main__":
    main()
