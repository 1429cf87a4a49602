"""``SiteConfig.connections()`` and ``catalogue()``: grouping, merging, PDU addresses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent.config import SiteConfig, pdu_address
from drivers.specs import (
    DataType,
    ModbusLimits,
    ModbusPoint,
    ModbusRtuConnection,
    ModbusTcpConnection,
    OpcUaConnection,
    OpcUaPoint,
    Order,
    Table,
)
from tests.config.conftest import CABINET

RTU_BUS = """\
- name: vfd1
  transport: modbus-rtu
  port: /dev/ttyUSB0
  baudrate: 19200
  parity: E
  unit_id: 1
  timeout_s: 0.3
  max_read_registers: 16
  poll_interval_s: 0.5
  points:
    - {name: vfd1.freq, register: holding, address: 0, type: uint16, scale: 0.01}
    - {name: vfd1.power, register: holding, address: 4, type: float32, poll_interval_s: 5}
- name: meter
  transport: modbus-rtu
  port: /dev/ttyUSB0
  baudrate: 19200
  parity: E
  unit_id: 7
  addressing: register-number
  points:
    - {name: flow, register: input, address: 30001, type: float32, word_order: little}
    - {name: total, register: holding, address: 400011, type: uint32}
    - {name: alarm, register: holding, address: 3, type: bool, bit: 2}
    - {name: pump_on, register: coil, address: 1, type: bool, writable: true}
- name: vfd3
  transport: modbus-rtu
  port: /dev/ttyUSB1
  unit_id: 1
  points:
    - {name: vfd3.freq, register: holding, address: 0, type: uint16}
"""


def test_rtu_devices_on_one_port_are_one_connection(load: Callable[..., SiteConfig]) -> None:
    plans = load(RTU_BUS).connections()
    assert [p.spec for p in plans] == [
        ModbusRtuConnection(
            name="rtu:/dev/ttyUSB0",
            port="/dev/ttyUSB0",
            baudrate=19200,
            parity="E",
            stopbits=1,
            bytesize=8,
            timeout_s=1.0,  # the longest of the bus's devices (meter: default 1.0)
            limits=((1, ModbusLimits(16, 2000, 10)), (7, ModbusLimits(125, 2000, 10))),
        ),
        ModbusRtuConnection(
            name="rtu:/dev/ttyUSB1", port="/dev/ttyUSB1", limits=((1, ModbusLimits()),)
        ),
    ]


def test_points_grouped_by_poll_interval(load: Callable[..., SiteConfig]) -> None:
    groups = load(RTU_BUS).connections()[0].groups
    assert list(groups) == [0.5, 1.0, 5.0]
    assert [p.name for p in groups[0.5]] == ["vfd1.freq"]
    assert [p.name for p in groups[1.0]] == ["flow", "total", "alarm", "pump_on"]
    assert [p.name for p in groups[5.0]] == ["vfd1.power"]


def test_register_numbers_become_pdu_addresses(load: Callable[..., SiteConfig]) -> None:
    points = {p.name: p for g in load(RTU_BUS).connections()[0].groups.values() for p in g}
    assert points["flow"] == ModbusPoint(
        name="flow",
        device="meter",
        unit_id=7,
        table=Table.INPUT_REGISTER,
        address=0,
        dtype=DataType.FLOAT32,
        word_order=Order.LITTLE,
    )
    assert isinstance(points["total"], ModbusPoint) and points["total"].address == 10
    assert isinstance(points["alarm"], ModbusPoint)
    assert (points["alarm"].address, points["alarm"].bit) == (2, 2)
    assert isinstance(points["pump_on"], ModbusPoint)
    assert (points["pump_on"].table, points["pump_on"].address) == (Table.COIL, 0)
    assert points["pump_on"].writable
    assert isinstance(points["vfd1.freq"], ModbusPoint) and points["vfd1.freq"].scale == 0.01


@pytest.mark.parametrize(
    ("register", "address", "addressing", "pdu"),
    [
        ("holding", 0, "pdu", 0),
        ("holding", 65535, "pdu", 65535),
        ("holding", 1, "register-number", 0),
        ("holding", 9999, "register-number", 9998),
        ("holding", 40001, "register-number", 0),
        ("holding", 49999, "register-number", 9998),
        ("holding", 400001, "register-number", 0),
        ("holding", 465536, "register-number", 65535),
        ("holding", 50000, "register-number", 49999),  # Danfoss: 50000 sent as 49999
        ("input", 30001, "register-number", 0),
        ("input", 300010, "register-number", 9),
        ("discrete_input", 10001, "register-number", 0),
        ("coil", 1, "register-number", 0),
    ],
)
def test_pdu_address(register: str, address: int, addressing: str, pdu: int) -> None:
    assert pdu_address(register, address, addressing) == pdu


@pytest.mark.parametrize(
    ("register", "address", "addressing", "fragment"),
    [
        ("holding", 65536, "pdu", "beyond 65535"),
        ("holding", 0, "register-number", "start at 1"),
        ("holding", 30001, "register-number", "input table"),
        ("input", 40001, "register-number", "holding table"),
        ("coil", 10001, "register-number", "discrete input table"),
        ("holding", 40000, "register-number", "out of range"),
        ("holding", 470000, "register-number", "out of range"),
        ("holding", 700000, "register-number", "beyond 65536"),
    ],
)
def test_pdu_address_errors(register: str, address: int, addressing: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        pdu_address(register, address, addressing)


def test_tcp_and_opcua_connections_and_catalogue(load: Callable[..., SiteConfig]) -> None:
    devices = (
        CABINET
        + """\
  - name: cabinet-io
    transport: modbus-tcp
    host: 127.0.0.1
    port: 15020
    unit_id: 2
    timeout_s: 2
    points:
      - {name: door_open, register: discrete_input, address: 3, type: bool}
  - name: analyser
    transport: opcua
    endpoint: opc.tcp://127.0.0.1:4840/pumproom
    timeout_s: 2.5
    poll_interval_s: 10
    points:
      - name: turbidity
        node_id: ns=2;s=Analyser.Turbidity
        namespace_uri: urn:pumproom:analyser
        unit: NTU
        valid_min: 0
        valid_max: 100
        description: outlet turbidity
"""
    )
    config = load(devices)
    plans = config.connections()
    assert [p.spec for p in plans] == [
        ModbusTcpConnection(
            name="tcp:127.0.0.1:15020",
            host="127.0.0.1",
            port=15020,
            timeout_s=2.0,
            connect_timeout_s=3.0,
            limits=((1, ModbusLimits()), (2, ModbusLimits())),
        ),
        OpcUaConnection(
            name="analyser",
            endpoint="opc.tcp://127.0.0.1:4840/pumproom",
            timeout_s=2.5,
            connect_timeout_s=5.0,
            application_uri="urn:pumproom-edge:demo",  # the site default
        ),
    ]
    assert plans[1].groups == {
        10.0: [
            OpcUaPoint(
                name="turbidity",
                device="analyser",
                node_id="ns=2;s=Analyser.Turbidity",
                namespace_uri="urn:pumproom:analyser",
                valid_min=0,
                valid_max=100,
            )
        ]
    }
    sources = {i.name: i.source for i in config.catalogue()}
    assert sources == {
        "p_out": "modbus-tcp 127.0.0.1:15020 unit 1 holding 0",
        "pump1.freq": "modbus-tcp 127.0.0.1:15020 unit 1 holding 2",
        "door_open": "modbus-tcp 127.0.0.1:15020 unit 2 discrete_input 3",
        "turbidity": "opcua ns=2;s=Analyser.Turbidity",
    }
    turbidity = config.catalogue()[-1]
    assert (turbidity.unit, turbidity.valid_max, turbidity.description) == (
        "NTU",
        100,
        "outlet turbidity",
    )


def test_rtu_catalogue_names_bit(load: Callable[..., SiteConfig]) -> None:
    sources = {i.name: i.source for i in load(RTU_BUS).catalogue()}
    assert sources["alarm"] == "modbus-rtu /dev/ttyUSB0 unit 7 holding 2 bit 2"
