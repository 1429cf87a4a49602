"""Buffer and uplink benchmark (not a test): ``python -m tests.benchmarks.buffer [--quick] [--json PATH]``.

Prints:

* samples/s the buffer (``agent.store.Store``, synchronous=full, WAL) ingests, in appends of
  1000 samples (25 polls of 40 points, what a busy ingest transaction holds);
* bytes on disk per buffered sample (pages in use, and the file);
* samples/s the backlog drains to a private Mosquitto on loopback while live data flows (the
  agent as a process, polling the simulator's cabinet every 0.1 s, with a prefilled backlog);
* bytes on the wire per telemetry sample and per second, with the cabinet polled every 1 s:
  plain JSON, zlib, a 1 % deadband (10 s heartbeat), and both;
* the duplicate ratio of the fault suite (``tests/faults_uplink``), read from its report file
  when it has been run (``python -m pytest tests/faults_uplink``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml

from agent.core.model import Reading
from agent.store import Poll, Store
from tests.faults_uplink.conftest import REPORT
from tests.procs import EXAMPLE, AgentProc, Mosquitto, Simulator, Subscriber, wait_for


def ingest_rate(workdir: Path, samples: int) -> dict[str, float]:
    """Append ``samples`` through the Store; samples/s and bytes per buffered sample."""
    path = workdir / "ingest.sqlite"

    async def run() -> dict[str, float]:
        store = await Store.open(path, 1 << 30)
        polls_per_append, per_poll = 25, 40
        t0 = time.perf_counter()
        done = 0
        while done < samples:
            polls = [
                Poll(
                    [Reading(f"p{k}", 0.4 + done * 1e-6 + k) for k in range(per_poll)],
                    1_700_000_000_000 + done + j,
                    True,
                )
                for j in range(polls_per_append)
            ]
            await store.append(polls)
            done += polls_per_append * per_poll
        dt = time.perf_counter() - t0
        await store.close()
        import sqlite3

        db = sqlite3.connect(path)
        pages, free, size = (
            db.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_count", "freelist_count", "page_size")
        )
        db.close()
        return {
            "ingest_samples_per_s": round(done / dt),
            "disk_bytes_per_sample_pages": round((pages - free) * size / done, 1),
            "disk_bytes_per_sample_file": round(path.stat().st_size / done, 1),
        }

    return asyncio.run(run())


def _cabinet_config(workdir: Path, sim: Simulator, poll_s: float, **point_extra: Any) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    cab = next(d for d in doc["devices"] if d["name"] == "cabinet")
    cab.update(port=sim.tcp_port, poll_interval_s=poll_s, timeout_s=0.5)
    if point_extra:
        from agent.config import profiles

        for p in cab["points"]:
            if p.get("type") != "bool" and "bit" not in p:
                p.update(point_extra)
        overrides = cab.setdefault("overrides", {})
        for p in profiles.load(cab["profile"]).points:  # the profile's points alike
            if p.get("type") != "bool" and "bit" not in p:
                overrides.setdefault(p["name"], {}).update(point_extra)
    doc["devices"] = [cab]
    doc.pop("alarms", None)  # its rules name points of the devices left out
    path = workdir / f"cabinet-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


class WireCounter:
    """Counts telemetry payload bytes and samples on ``{prefix}/{site}/+/telemetry[/backfill]``."""

    def __init__(self, port: int, site: str) -> None:
        self.bytes = self.samples = self.messages = 0
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"wire-{site}")
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"pumproom/v1/{site}/+/telemetry/#", qos=1)
        self.client.subscribe(f"pumproom/v1/{site}/+/telemetry", qos=1)
        self.client.loop_start()

    def _on(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        raw = msg.payload
        body = json.loads(zlib.decompress(raw) if raw[:1] == b"\x78" else raw)
        n = sum(len(s["s"]) for s in body["series"].values())
        with self.lock:
            self.bytes += len(raw)
            self.samples += n
            self.messages += 1

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def drain_rate(workdir: Path, sim: Simulator, backlog: int) -> dict[str, float]:
    """Prefill a backlog, start the agent (polling every 0.1 s): backlog samples/s to Mosquitto."""
    from tests.faults_uplink.test_buffer_full import _prefill

    site = "bench-" + uuid.uuid4().hex[:6]
    broker = Mosquitto(workdir).start()
    sub = Subscriber(broker.port, site).start()
    agent = AgentProc(
        workdir, broker.port, sim, site, config=_cabinet_config(workdir, sim, 0.1), device_sets=[]
    )
    try:
        _prefill(agent.buffer, backlog)
        agent.start()
        wait_for(lambda: any(s[6] for s in sub.samples()), 30, "first backfill")
        t0 = time.monotonic()
        wait_for(
            lambda: len({s[0] for s in sub.samples() if s[0] <= backlog}) >= backlog,
            120,
            "drain",
            0.1,
        )
        dt = time.monotonic() - t0
        live = sum(1 for s in sub.samples() if not s[6])
        return {
            "drain_samples_per_s": round(backlog / dt),
            "live_samples_meanwhile": live,
            "drain_s": round(dt, 2),
        }
    finally:
        agent.stop()
        sub.stop()
        broker.stop()


def wire_bytes(workdir: Path, sim: Simulator, seconds: float) -> dict[str, dict[str, float]]:
    """Bytes on the wire per telemetry sample and per second, cabinet polled every 1 s."""
    variants: dict[str, tuple[dict[str, Any], list[str]]] = {
        "plain": ({}, []),
        "zlib": ({}, ["uplink.compression=zlib"]),
        "deadband_1pct": ({"deadband_pct": 1.0, "heartbeat_s": 10.0}, []),
        "deadband_1pct+zlib": (
            {"deadband_pct": 1.0, "heartbeat_s": 10.0},
            ["uplink.compression=zlib"],
        ),
    }
    out = {}
    for name, (extra, sets) in variants.items():
        site = "wire-" + uuid.uuid4().hex[:6]
        d = workdir / site
        d.mkdir()
        broker = Mosquitto(d).start()
        counter = WireCounter(broker.port, site)
        agent = AgentProc(
            d,
            broker.port,
            sim,
            site,
            config=_cabinet_config(d, sim, 1.0, **extra),
            device_sets=[],
            extra=sets,
        )
        try:
            agent.start()
            wait_for(lambda c=counter: c.messages, 30, "telemetry")
            with counter.lock:
                b0, s0 = counter.bytes, counter.samples
            time.sleep(seconds)
            with counter.lock:
                b, s = counter.bytes - b0, counter.samples - s0
            out[name] = {
                "bytes_per_sample": round(b / max(s, 1), 1),
                "bytes_per_s": round(b / seconds, 1),
                "samples_per_s": round(s / seconds, 1),
            }
        finally:
            agent.stop()
            counter.stop()
            broker.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-buffer-") as tmp:
        work = Path(tmp)
        figures["ingest"] = ingest_rate(work, 50_000 if args.quick else 300_000)
        print("buffer ingest:", figures["ingest"], flush=True)
        (work / "sim").mkdir()
        (work / "drain").mkdir()
        sim = Simulator(work / "sim").start()
        try:
            backlog = 30_000 if args.quick else 150_000
            figures["drain"] = drain_rate(work / "drain", sim, backlog)
            print("backlog drain while live flows:", figures["drain"], flush=True)
            figures["wire"] = wire_bytes(work, sim, 10.0 if args.quick else 30.0)
            for k, v in figures["wire"].items():
                print(f"wire {k}:", v, flush=True)
        finally:
            sim.stop()
    try:
        faults = json.loads(REPORT.read_text())
        figures["faults"] = {
            k: {
                "duplicates": v["duplicates"],
                "duplicate_ratio": v["duplicate_ratio"],
                "lost": v["lost"],
            }
            for k, v in faults.items()
        }
        for k, v in figures["faults"].items():
            print(f"fault suite {k}:", v)
    except (OSError, ValueError):
        print(
            f"fault suite: no report at {REPORT} (run python -m pytest tests/faults_uplink first)"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
