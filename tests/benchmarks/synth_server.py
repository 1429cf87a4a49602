"""Benchmark-only Modbus server process: synthetic register banks, no plant.

Run as a subprocess (so its CPU is not counted as the agent's)::

    python -m tests.benchmarks.synth_server SPEC.json

``SPEC.json``::

    {"tcp": [{"units": [1, 2]}, ...],          # one ModbusTcpServer per entry, port picked freely
     "rtu": [{"link": "/tmp/x/ttyRTU0", "baudrate": 9600, "turnaround_s": 0.002,
              "units": [11, 12]}],
     "registers": 2000,                        # holding registers 0..registers-1 on every unit
     "ticker": {"server": 0, "unit": 1, "address": 0, "period_s": 0.37},   # optional
     "control": {"server": 0, "unit": 1, "pv": 180, "setpoint": 182,       # optional
                 "initial_mpa": 0.40, "tau_s": 0.5},
     "ready": "/tmp/x/ready.json",             # written once listening: {"tcp_ports": [...]}
     "changes": "/tmp/x/changes.txt",          # ticker log: "<value> <wall time s>" per change
     "writes": "/tmp/x/writes.txt"}            # master writes: "<wall time s> <unit> <addr> <values>"

Every holding register is writable. Registers hold float32 values (big word order, ABCD) of
``1000 + unit + address / 2``, so decoded readings are finite and distinct. The *ticker* register
(a uint16) is set to 1, 2, 3, ... every ``period_s`` seconds and each change is logged with its
wall-clock time, for the value-change → subscriber latency benchmark.

The optional *control* section is a minimal constant-pressure plant for the agent's control loop
(cabinet mode): ``setpoint`` is the cabinet's setpoint register (float32, MPa), which the agent
writes, and ``pv`` its outlet pressure (float32, MPa), which follows the setpoint as a first-order
lag of ``tau_s`` seconds, updated every 50 ms. Both start at ``initial_mpa``.

Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import struct
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from hil_sim.modbus import Faults, ModbusRtuServer, ModbusTcpServer, RegisterBank, RequestCounters

HOLDING = "holding_register"


def float_words(value: float) -> list[int]:
    """float32 ``value`` as two registers, big word order (ABCD)."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def make_bank(unit: int, registers: int, on_write: Any) -> RegisterBank:
    """A bank with ``registers`` writable holding registers of float32 values (see module doc)."""
    bank = RegisterBank(unit)
    words: list[int] = []
    for address in range(0, registers - 1, 2):
        words += float_words(1000.0 + unit + address / 2)
    words += [0] * (registers - len(words))
    bank.define(HOLDING, 0, words, writable=True)
    bank.on_write = on_write
    return bank


async def serve(spec: dict[str, Any], writes: TextIO, changes: TextIO) -> None:
    """Start every server in ``spec``, write the ready file, tick, stop on a signal.

    ``writes`` and ``changes`` are the open log files (line-buffered)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    registers = int(spec.get("registers", 100))

    def logger(unit: int) -> Any:
        def on_write(table: str, address: int, values: list) -> None:
            writes.write(f"{time.time():.6f} {unit} {address} {values}\n")

        return on_write

    faults, counters = Faults(), RequestCounters()
    tcp: list[ModbusTcpServer] = []
    banks: list[dict[int, RegisterBank]] = []
    for entry in spec.get("tcp", []):
        units = {u: make_bank(u, registers, logger(u)) for u in entry["units"]}
        server = ModbusTcpServer("127.0.0.1", 0, units, faults, counters)
        await server.start()
        tcp.append(server)
        banks.append(units)
    rtu: list[ModbusRtuServer] = []
    for entry in spec.get("rtu", []):
        units = {u: make_bank(u, registers, logger(u)) for u in entry["units"]}
        server_rtu = ModbusRtuServer(
            entry["link"],
            units,
            faults,
            counters,
            baudrate=int(entry.get("baudrate", 19200)),
            parity="N",
            turnaround_s=float(entry.get("turnaround_s", 0.002)),
        )
        await server_rtu.start()
        rtu.append(server_rtu)
        banks.append(units)
    tasks = []
    if spec.get("ticker"):
        tasks.append(asyncio.create_task(_tick(spec["ticker"], banks, changes)))
    if spec.get("control"):
        tasks.append(asyncio.create_task(_pressure(spec["control"], banks)))
    _write_ready(spec["ready"], [s.port for s in tcp])
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in tcp:
            await s.stop()
        for r in rtu:
            await r.stop()


def _write_ready(path: str, ports: list[int]) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps({"tcp_ports": ports}))
    tmp.replace(path)


async def _tick(ticker: dict[str, Any], banks: list[dict[int, RegisterBank]], log: TextIO) -> None:
    bank = banks[int(ticker.get("server", 0))][int(ticker["unit"])]
    address, period = int(ticker.get("address", 0)), float(ticker["period_s"])
    value = 0
    while True:
        await asyncio.sleep(period)
        value = value % 65535 + 1
        bank.set(HOLDING, address, value)
        log.write(f"{value} {time.time():.6f}\n")


async def _pressure(control: dict[str, Any], banks: list[dict[int, RegisterBank]]) -> None:
    """The *control* plant (see the module docstring): the PV register lags the setpoint."""
    bank = banks[int(control.get("server", 0))][int(control["unit"])]
    pv_at, sp_at = int(control["pv"]), int(control["setpoint"])
    pv = float(control.get("initial_mpa", 0.40))
    bank.set(HOLDING, pv_at, float_words(pv))
    bank.set(HOLDING, sp_at, float_words(pv))
    step_s = 0.05
    gain = 1.0 - math.exp(-step_s / float(control.get("tau_s", 0.5)))
    while True:
        await asyncio.sleep(step_s)
        hi, lo = bank.get(HOLDING, sp_at, 2)
        (sp,) = struct.unpack(">f", struct.pack(">HH", hi, lo))
        if math.isfinite(sp):
            pv += (sp - pv) * gain
            bank.set(HOLDING, pv_at, float_words(pv))


def main() -> None:
    """Entry point: ``python -m tests.benchmarks.synth_server SPEC.json``."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    with (
        open(spec["writes"], "a", buffering=1) as writes,
        open(spec["changes"], "a", buffering=1) as changes,
    ):
        asyncio.run(serve(spec, writes, changes))


if __name__ == "__main__":
    main()
