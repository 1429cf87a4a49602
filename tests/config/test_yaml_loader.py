"""The strict YAML loader: YAML 1.1 surprises stay strings; positions are exact."""

from __future__ import annotations

import math

import pytest

from agent.config.problems import ConfigError, Pos
from agent.config.yaml_loader import load_yaml, resolve_plain


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("No", "No"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("true", True),
        ("FALSE", False),
        ("010", "010"),
        ("0", 0),
        ("-7", -7),
        ("12:30", "12:30"),
        ("1_000", "1_000"),
        ("0x1010", 0x1010),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("-.5", -0.5),
        ("~", None),
        ("", None),
        ("null", None),
        ("3.1.1", "3.1.1"),
    ],
)
def test_plain_scalars(text: str, value: object) -> None:
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_inf_and_nan_are_floats() -> None:
    assert resolve_plain("-.inf") == -math.inf
    assert math.isnan(resolve_plain(".nan"))


def test_positions_of_keys_and_values_and_quoted_scalars() -> None:
    data, pos = load_yaml("a:\n  - name: x\n    v: 'yes'\n  - {name: y, v: 010}\n", "f.yaml")
    assert data == {"a": [{"name": "x", "v": "yes"}, {"name": "y", "v": "010"}]}
    assert pos.values[("a", 0, "v")] == Pos("f.yaml", 3, 8)
    assert pos.keys[("a", 0, "v")] == Pos("f.yaml", 3, 5)
    assert pos.values[("a", 1)] == Pos("f.yaml", 4, 5)
    assert pos.values[("a", 1, "v")] == Pos("f.yaml", 4, 18)
    assert ("a", 0, "v") not in pos.plain  # quoted: the author meant text
    assert ("a", 1, "v") in pos.plain


def test_merge_keys_and_aliases() -> None:
    text = "bus: &bus {port: /dev/ttyUSB0, baudrate: 9600}\ndev:\n  <<: *bus\n  baudrate: 19200\n"
    data, pos = load_yaml(text, "f.yaml")
    assert data["dev"] == {"baudrate": 19200, "port": "/dev/ttyUSB0"}
    assert pos.values[("dev", "port")] == Pos("f.yaml", 1, 18)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: 1\nb: 2\na: 3\n", "f.yaml:3:1: duplicate key 'a' (first at line 1)"),
        ("a:\n\tb: 1\n", "f.yaml:2:1: tab character in indentation: YAML needs spaces here"),
        ("a: b: c\n", "f.yaml:1:5: YAML syntax error: mapping values are not allowed here"),
        (
            "x: !!int '3'\n",
            "f.yaml:1:4: YAML tag 'tag:yaml.org,2002:int' is not supported here; remove it "
            "(quote text instead)",
        ),
        (
            "--- 1\n--- 2\n",
            "f.yaml:2:1: YAML syntax error: expected a single document in the "
            "stream, but found another document (started at line 1)",
        ),
    ],
)
def test_errors(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(text, "f.yaml")
    assert [str(p) for p in info.value.problems] == [problem]
