"""The simulator's raw-value test bench: served only when asked, all-or-nothing raw writes."""

from __future__ import annotations

import pytest

from hil_sim import commands
from hil_sim.sim import SimOptions, Simulator


def _sim(test_types: bool) -> Simulator:
    return Simulator(SimOptions(rtu_link=None, control_port=None, test_types=test_types), print)


def test_the_bench_is_not_part_of_the_pump_room_unless_asked() -> None:
    sim = _sim(False)
    assert 99 not in {d.unit_id for d in sim.tcp_devices}
    with pytest.raises(commands.CommandError, match="--test-types"):
        commands.execute(sim, {"cmd": "raw", "writes": []})
    with pytest.raises(commands.CommandError, match="--test-types"):
        commands.execute(sim, {"cmd": "raw_ua", "values": {"Gen": 1}})


def test_raw_writes_serve_exact_words_all_or_nothing() -> None:
    sim = _sim(True)
    assert sim.bench is not None and 99 in {d.unit_id for d in sim.tcp_devices}
    w = [{"table": "holding_register", "address": 60, "values": [0xFFFF, 0, 0x8000, 1]},
         {"table": "coil", "address": 15, "values": [True]}]  # fmt: skip
    commands.execute(sim, {"cmd": "raw", "writes": w})
    assert sim.bench.bank.read_registers("holding_register", 60, 4) == [0xFFFF, 0, 0x8000, 1]
    assert sim.bench.bank.read_bits("coil", 15, 1) == [True]
    bad = [{"table": "input_register", "address": 0, "values": [7]},
           {"table": "holding_register", "address": 63, "values": [1, 2]}]  # fmt: skip
    with pytest.raises(commands.CommandError):
        commands.execute(sim, {"cmd": "raw", "writes": bad})
    assert sim.bench.bank.read_registers("input_register", 0, 1) == [0]  # nothing was written
    commands.execute(sim, {"cmd": "raw_ua", "values": {"UInt64": (1 << 64) - 1, "Double": "nan"}})
    assert sim.opcua.test_values["UInt64"] == (1 << 64) - 1
    assert sim.opcua.test_values["Double"] != sim.opcua.test_values["Double"]  # NaN
