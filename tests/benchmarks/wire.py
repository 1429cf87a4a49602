"""Bytes per value on the wire for the typical room at 1 s (issue 17): v1 JSON against the compact
encoding ``cbor-c1`` (agent/wire_cbor.py), each plain and with ``compression: zlib``.

* **agent**: the typical room (about 200 float32 points on 8 devices, 1 s polls) against the
  synthetic server, the agent as its own process, a private Mosquitto; figure = telemetry payload
  bytes published / samples published over the measured window (status counters
  ``uplink.bytes_published`` and ``samples_live + samples_backfill``), one run per encoding.
  The synthetic server's values are constant, which flatters compression.
* **noisy** (in process, no broker): the same room's points (8 devices, each polled at its own
  moment every second) in messages of 100 samples, as the agent batches the typical room
  (``wire_*_values_per_message``), with float32 values that wander with sensor noise every poll,
  so the mantissas do not repeat: the figure compression cannot flatter.
* **encode** (in process): CPU time of encoding those noisy messages, µs per value, per
  encoding (without compression).

``python -m tests.benchmarks --only wire`` (``--quick`` for short runs).
"""

from __future__ import annotations

import json
import random
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from agent import contract, wire_cbor
from agent.core.model import Quality, Sample
from tests.benchmarks.harness import BenchAgent, SynthServer, broker, write_config
from tests.benchmarks.loads import TYPICAL_SPEC, typical_devices

FORMATS = [("json", "none"), ("json", "zlib"), ("cbor-c1", "none"), ("cbor-c1", "zlib")]
"""(uplink.telemetry_format, uplink.compression) runs, each a figure."""
DEVICES = [("plc", 80), ("flow", 20), ("power", 40)] + [(f"vfd{k}", 12) for k in range(5)]
"""The typical room's devices and their point counts (tests.benchmarks.loads.typical_devices)."""


def _key(fmt: str, compression: str) -> str:
    name = "json" if fmt == "json" else "cbor"
    return f"wire_{name}{'_zlib' if compression == 'zlib' else ''}_bytes_per_value"


def run(workdir: Path, seconds: float) -> dict[str, Any]:
    """Every figure of the module docstring, by key ``wire_*``."""
    out = agent_figures(workdir, seconds)
    out.update(noisy_figures())
    return out


def agent_figures(workdir: Path, seconds: float) -> dict[str, Any]:
    """Payload bytes per published sample of the real agent, per encoding (see module doc)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    link = str(workdir / "ttyBENCH0")
    spec = {
        **TYPICAL_SPEC,
        "rtu": [{"link": link, "baudrate": 19200, "units": [11, 12, 13, 14, 15]}],
    }
    synth = SynthServer(workdir, spec).start()
    try:
        with broker(workdir) as mq:
            for fmt, compression in FORMATS:
                run_dir = workdir / f"{fmt}-{compression}"
                run_dir.mkdir()
                cfg = write_config(
                    run_dir, typical_devices(synth.tcp_ports, link), mq.port, "bench-wire",
                    uplink={"telemetry_format": fmt, "compression": compression},
                )  # fmt: skip
                agent = BenchAgent(run_dir, cfg).start()
                try:
                    agent.wait_status(
                        lambda s: s.get("store", {}).get("acked", 0) > 0, 30, "PUBACK"
                    )
                    time.sleep(2.0)
                    w = agent.measure(seconds)
                finally:
                    agent.stop()
                sent = w.delta("uplink", "samples_live") + w.delta("uplink", "samples_backfill")
                nbytes = w.delta("uplink", "bytes_published")
                messages = w.delta("uplink", "messages_published")
                out[_key(fmt, compression)] = round(nbytes / sent, 2) if sent else None
                out[_key(fmt, compression).replace("bytes_per_value", "values_per_message")] = (
                    round(sent / messages, 1) if messages else None
                )
    finally:
        synth.stop()
    return out


def noisy_figures(polls: int = 120, per_message: int = 100, seed: int = 17) -> dict[str, Any]:
    """Bytes per value of the typical room's telemetry with noisy float32 values, in process:
    each 1 s poll of the room's points (each device at its own moment) cut into messages of
    ``per_message`` samples, as the agent's live batches of the typical room are (see the
    ``wire_*_values_per_message`` figures of :func:`agent_figures`)."""
    rng = random.Random(seed)
    names = [f"{dev}.{i}" for dev, n in DEVICES for i in range(n)]
    units = dict.fromkeys(names, "MPa")
    table = wire_cbor.PointTable.of([{"name": n, "unit": "MPa"} for n in names])
    ident = contract.Identity("bench-wire", "gw-bench", 1)
    level = {n: rng.uniform(0.1, 500.0) for n in names}
    totals = dict.fromkeys(FORMATS, 0)
    cpu = {"json": 0.0, "cbor-c1": 0.0}  # process time spent encoding, s
    seq, t0, values = 1_733_000_000_000_000, 1_733_000_000_000, 0
    for j in range(polls):
        room = []
        for k, (dev, n) in enumerate(DEVICES):
            t = t0 + 1000 * j + 37 * k  # each device polled at its own moment
            for i in range(n):
                name = f"{dev}.{i}"
                level[name] *= 1 + rng.gauss(0, 0.002)
                value = struct.unpack(">f", struct.pack(">f", level[name]))[0]
                seq += 1
                room.append(Sample(seq, name, t, value, Quality.GOOD, None, True))
        for m in range(0, len(room), per_message):
            batch = room[m : m + per_message]
            values += len(batch)
            sent = batch[-1].ts_ms + 60
            c0 = time.process_time()
            as_json = contract.telemetry(ident, batch, units, hist=False, sent_ms=sent)
            c1 = time.process_time()
            as_cbor = wire_cbor.encode(ident, batch, units, table, hist=False, sent_ms=sent)
            cpu["json"] += c1 - c0
            cpu["cbor-c1"] += time.process_time() - c1
            plain = {"json": as_json, "cbor-c1": as_cbor}
            for fmt, compression in FORMATS:
                payload = plain[fmt]
                if compression == "zlib" and len(payload) > 256:  # agent.telemetry.COMPRESS_OVER
                    payload = zlib.compress(payload, 6)
                totals[(fmt, compression)] += len(payload)
    out: dict[str, Any] = {
        _key(fmt, c).replace("wire_", "wire_noisy_"): round(totals[(fmt, c)] / values, 2)
        for fmt, c in FORMATS
    }
    out["wire_encode_us_per_value_json"] = round(cpu["json"] / values * 1e6, 2)
    out["wire_encode_us_per_value_cbor"] = round(cpu["cbor-c1"] / values * 1e6, 2)
    return out


if __name__ == "__main__":
    print(json.dumps(noisy_figures(), indent=1))
