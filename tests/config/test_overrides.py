"""``--set`` overrides: strict value parsing, list items by name or index, bad key paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import ConfigError, ModbusTcpDevice, SiteConfig, load_config
from tests.config.conftest import CABINET


def problems(path: Path, *overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return [str(p) for p in info.value.problems]


def test_value_is_parsed_as_a_strict_yaml_scalar(load: Callable[..., SiteConfig]) -> None:
    config = load(CABINET, "devices.cabinet.port=15021", "devices.cabinet.timeout_s=0.5")
    device = config.devices[0]
    assert isinstance(device, ModbusTcpDevice)
    assert (device.port, device.timeout_s) == (15021, 0.5)


def test_list_items_by_name_even_with_dots_and_by_index(load: Callable[..., SiteConfig]) -> None:
    config = load(
        CABINET,
        "devices.cabinet.points.pump1.freq.scale=0.1",
        "devices.0.points.0.unit=kPa",
        "site.name=Block 7 pump room",
    )
    points = config.devices[0].points
    assert points[1].scale == 0.1
    assert points[0].unit == "kPa"
    assert config.site.name == "Block 7 pump room"


def test_override_creates_missing_nested_keys(load: Callable[..., SiteConfig]) -> None:
    config = load(CABINET, "uplink.tls.ca_file=/etc/ssl/ca.pem", "uplink.broker=mqtts://[::1]")
    assert config.uplink.tls is not None and config.uplink.tls.ca_file == "/etc/ssl/ca.pem"
    assert (config.uplink.broker_host, config.uplink.broker_port) == ("::1", 8883)


def test_quoted_number_in_an_override_is_a_string(write: Callable[[str], Path]) -> None:
    assert problems(write(CABINET), "devices.cabinet.port='15021'") == [
        "--set:1:22: devices.cabinet.port: expected an integer, got the string '15021' "
        "(remove the quotes)"
    ]


def test_yes_in_an_override_is_not_a_boolean(write: Callable[[str], Path]) -> None:
    assert problems(write(CABINET), "devices.cabinet.points.p_out.writable=yes") == [
        "--set:1:39: devices.cabinet.points.p_out.writable: expected a boolean: write true or "
        "false, not 'yes' (yes/no/on/off are text in YAML 1.2, not booleans)"
    ]


def test_bad_key_paths(write: Callable[[str], Path]) -> None:
    path = write(CABINET)
    assert problems(path, "devices.cabinet.prot=15021") == [
        "--set:1:17: devices.cabinet: unknown key 'prot' (did you mean 'port'?)"
    ]
    assert problems(path, "devices.7.port=1") == [
        "--set:1:9: no item named '7' in devices (address list items by name or by index 0..0)"
    ]
    assert problems(path, "devices.cabinet.port.x=1") == [
        "--set:1:17: devices.cabinet.port is not a mapping or list; cannot set 'x' inside it"
    ]
    assert problems(path, "devices.cabinet.port") == [
        "--set:1:1: expected KEY=VALUE (e.g. devices.cabinet.port=15021), got "
        "'devices.cabinet.port'"
    ]
    assert problems(path, "devices..port=1") == [
        "--set:1:9: empty key in 'devices..port' (keys are separated by single dots)"
    ]


def test_override_yaml_syntax_error(write: Callable[[str], Path]) -> None:
    assert problems(write(CABINET), "site.id=[a") == [
        "--set:1:11: YAML syntax error: expected ',' or ']', but got '<stream end>', while "
        "parsing a flow sequence (started at --set 1)"
    ]


def test_problems_from_file_and_overrides_come_together(write: Callable[[str], Path]) -> None:
    path = write(CABINET.replace("unit_id: 1", "unit_id: 300"))
    assert problems(path, "buffer.max_bytes=1") == [
        f"{path}:8:14: devices.cabinet.unit_id: must be ≤ 247, got 300",
        "--set:1:18: buffer.max_bytes: must be ≥ 1048576, got 1",
    ]


def test_a_fixed_override_makes_a_bad_file_good(write: Callable[[str], Path]) -> None:
    path = write(CABINET.replace("unit_id: 1", "unit_id: 300"))
    config = load_config(path, ["devices.cabinet.unit_id=7"])
    assert config.connections()[0].spec.limits[0][0] == 7  # type: ignore[union-attr]
