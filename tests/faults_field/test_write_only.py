"""Write-only points (a drive's command word and frequency reference on drives that cannot read
them back): never polled, never bridged by a read, written, and shown as such in ``meta``."""

from __future__ import annotations

import json

import pytest

from agent import contract, schemas
from agent.catalogue import point_meta
from agent.config import load_config
from agent.core.model import Quality, WriteError
from drivers import create
from drivers.specs import DataType
from hil_sim.modbus import Faults, ModbusTcpServer, RegisterBank, RequestCounters
from tests.drivers.conftest import HR, mp
from tests.faults_field.conftest import tcp_spec


@pytest.fixture
async def drive():
    """Unit 1: status words at HR 0..3, command word (write-only) at 4, frequency reference
    (write-only) at 5, output frequency at 6: reads of 4 or 5 answer exception 2."""
    bank = RegisterBank(1)
    bank.define("holding_register", 0, [11, 12, 13, 14])
    bank.define("holding_register", 4, [0, 0], write_only=True)
    bank.define("holding_register", 6, [4990])
    server = ModbusTcpServer("127.0.0.1", 0, {1: bank}, Faults(), RequestCounters())
    await server.start()
    yield server, bank
    await server.stop()


async def test_write_only_points_are_never_read_but_written(drive):
    server, bank = drive
    status = [mp(f"st{a}", 1, HR, a, DataType.UINT16) for a in range(4)]
    cmd = mp("cmd", 1, HR, 4, DataType.UINT16, write_only=True)
    ref = mp("freq_ref", 1, HR, 5, DataType.UINT16, scale=0.01, write_only=True)
    out = mp("freq", 1, HR, 6, DataType.UINT16, scale=0.01)
    drv = create(tcp_spec(server))
    await drv.connect()
    try:
        plan = drv.plan([*status, cmd, ref, out])
        assert [p.name for p in plan.points] == ["st0", "st1", "st2", "st3", "freq"]
        # the planner does not bridge the two write-only registers (max_gap 10 would)
        assert [(r.address, r.count) for r in plan.requests] == [(0, 4), (6, 1)]
        for _ in range(2):
            got = await drv.read(plan)
            assert all(r.quality is Quality.GOOD for r in got), got
        c = drv.counters()
        assert c["exceptions"] == {} and c["unreadable_points"] == 0
        assert server.counters.snapshot()["tcp"][1] == {3: 4}  # 2 requests × 2 reads
        await drv.write(cmd, 1)
        await drv.write(ref, 48.5)
        assert bank.get("holding_register", 4, 2) == [1, 4850]
        bit = mp("cmd.bit0", 1, HR, 4, DataType.BOOL, bit=0, write_only=True)
        with pytest.raises(WriteError):  # would need a read-modify-write
            await drv.write(bit, True)
    finally:
        await drv.close()


SITE = """\
site: {{id: wo}}
devices:
  - name: vfd1
    transport: modbus-rtu
    port: {tty}
    unit_id: 1
    points:
      - {{name: vfd1.cmd, register: holding, address: 8192, type: uint16, write_only: true}}
      - {{name: vfd1.freq_ref, register: holding, address: 8193, type: uint16, scale: 0.01,
          unit: Hz, write_only: true}}
      - {{name: vfd1.freq, register: holding, address: 12288, type: uint16, scale: 0.01,
          unit: Hz}}
  - name: analyser
    transport: opcua
    endpoint: opc.tcp://127.0.0.1:4840/
    points:
      - {{name: wq.reset, node_id: "ns=2;s=Analyser.Reset", write_only: true}}
      - {{name: wq.ph, node_id: "ns=2;s=Analyser.pH"}}
uplink: {{broker: "mqtt://127.0.0.1:1883"}}
buffer: {{path: {buf}}}
"""


def test_write_only_in_config_plans_and_meta(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(tty=tmp_path / "tty", buf=tmp_path / "b.sqlite"))
    cfg = load_config(path)
    polled, written = set(), set()
    for cp in cfg.connections():
        drv = create(cp.spec)
        for points in cp.groups.values():
            written |= {p.name for p in points if p.writable}
            polled |= {p.name for p in drv.plan(points).points}
    assert polled == {"vfd1.freq", "wq.ph"}
    assert written == {"vfd1.cmd", "vfd1.freq_ref", "wq.reset"}  # write_only implies writable
    points = [point_meta(p) for p in cfg.catalogue()]
    meta = json.loads(contract.meta(contract.Identity("s", "g", 1), points, ts_ms=1))
    schemas.validate("meta", meta)
    flags = {p["name"]: (p["writable"], p.get("write_only")) for p in meta["points"]}
    assert flags["vfd1.freq_ref"] == (True, True)
    assert flags["vfd1.freq"] == (False, None)  # the key is only present when true
