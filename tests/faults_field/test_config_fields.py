"""The config fields of the field-hardening options reach the connection specs."""

from __future__ import annotations

import pytest

from agent.config import ConfigError, load_config
from drivers.specs import ModbusRtuConnection, ModbusTcpConnection, OpcUaConnection
from tests.faults_field.pki import client_certificate

BASE = """\
site: {{id: demo}}
devices:
{devices}
uplink: {{broker: "mqtt://127.0.0.1:1883"}}
buffer: {{path: /tmp/buffer.sqlite}}
"""

DEVICES = """\
  - name: meter
    transport: modbus-tcp
    host: 127.0.0.1
    unit_id: 2
    connection_mode: per-poll
    lenient_tid: true
    points:
      - {name: flow, register: input, address: 30001, type: float32}
    addressing: register-number
  - name: vfd1
    transport: modbus-rtu
    port: /dev/ttyUSB0
    unit_id: 11
    local_echo: true
    guard_s: 0.2
    points:
      - {name: vfd1.freq, register: holding, address: 0, type: uint16}
  - name: analyser
    transport: opcua
    endpoint: opc.tcp://127.0.0.1:4840/
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    certificate: {cert}
    private_key: {key}
    username: op
    password: secret
    session_timeout_s: 30
    points:
      - {name: wq.turbidity, node_id: "ns=2;s=Analyser.Turbidity", mode: subscribe}
      - {name: wq.ph, node_id: "ns=2;s=Analyser.pH"}
"""


def load(tmp_path, devices):
    path = tmp_path / "site.yaml"
    path.write_text(BASE.format(devices=devices), encoding="utf-8")
    return load_config(path, ())


def test_fields_reach_the_specs(tmp_path):
    cert, key = client_certificate(tmp_path, "urn:pumproom-edge:demo")
    cfg = load(tmp_path, DEVICES.replace("{cert}", cert).replace("{key}", key))
    specs = {type(c.spec): c for c in cfg.connections()}
    tcp = specs[ModbusTcpConnection]
    assert (tcp.spec.connection_mode, tcp.spec.lenient_tid) == ("per-poll", True)
    [flow] = [p for ps in tcp.groups.values() for p in ps]
    assert flow.address == 0  # 30001 in reference notation → PDU address 0
    rtu = specs[ModbusRtuConnection].spec
    assert (rtu.local_echo, rtu.guard_s) == (True, 0.2)
    ua = specs[OpcUaConnection]
    assert (ua.spec.security_policy, ua.spec.security_mode) == ("Basic256Sha256", "SignAndEncrypt")
    assert (ua.spec.username, ua.spec.session_timeout_s) == ("op", 30)
    assert ua.spec.application_uri == "urn:pumproom-edge:demo"  # the site default
    modes = {p.name: p.mode for ps in ua.groups.values() for p in ps}
    assert modes == {"wq.turbidity": "subscribe", "wq.ph": "poll"}


@pytest.mark.parametrize(
    "bad",
    [
        "security_mode: Sign",  # without a policy
        "security_policy: Basic256Sha256\n    security_mode: Sign",  # without certificate
        "connection_mode: sometimes",
    ],
)
def test_inconsistent_security_is_refused(tmp_path, bad):
    if "connection_mode" in bad:
        devices = DEVICES.replace("connection_mode: per-poll", bad)
    else:
        devices = (
            "  - name: a\n    transport: opcua\n    endpoint: opc.tcp://127.0.0.1:4840/\n"
            f'    {bad}\n    points:\n      - {{name: x, node_id: "ns=2;s=X"}}\n'
        )
    with pytest.raises(ConfigError):
        load(tmp_path, devices)


def test_devices_sharing_a_gateway_get_the_most_cautious_connection_mode(tmp_path):
    devices = "".join(
        f"  - name: d{u}\n    transport: modbus-tcp\n    host: 127.0.0.1\n    unit_id: {u}\n"
        f"    connection_mode: {mode}\n"
        f"    points:\n      - {{name: p{u}, register: holding, address: 0, type: uint16}}\n"
        for u, mode in ((1, "persistent"), (2, "per-request"), (3, "per-poll"))
    )
    (conn,) = load(tmp_path, devices).connections()
    assert conn.spec.connection_mode == "per-request"
