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


_TRICKY = [
    "bus: &bus {port: /dev/ttyUSB0, baudrate: 9600}\ndev:\n  <<: *bus\n  baudrate: 19200\n",
    'a: b\n"<<": {x: 1}\n',
    "k: 'single' \nq: \"dbl\\tq\"\nlist: [1, 2.5, yes, 010, 0x1A, .inf, -.Inf, .nan, ~]\n",
    "multi: |\n  line 1\n  line 2\nfolded: >\n  a\n  b\n",
    "ünïcode: 'ölçü'\n\N{CJK UNIFIED IDEOGRAPH-6C34}: 泵房\n",
    "a: 1\na: 2\n",
    "x: !!str 5\n",
    "",
    "# only a comment\n",
]


@pytest.mark.parametrize("text", _TRICKY)
def test_libyaml_and_pure_python_front_ends_agree(text: str) -> None:
    """The fast path (libyaml) builds exactly what PyYAML's pure-Python parser builds: data,
    types, positions, plain-scalar paths and problems."""
    from agent.config import yaml_loader as y

    def outcome(loader: object) -> object:
        builder = y._Builder("f.yaml", 0, 0)
        try:
            data, pos = y._built(builder, y._compose(loader, text), "f.yaml", 0, 0)
        except ConfigError as exc:
            return [str(p) for p in exc.problems]
        return repr(data), pos.values, pos.keys, pos.plain

    assert outcome(y._FastLoader) == outcome(y._Loader)


def test_every_shipped_yaml_loads_the_same_with_both_front_ends() -> None:
    from pathlib import Path

    from agent.config import yaml_loader as y

    root = Path(__file__).resolve().parents[2]
    files = [*root.glob("config/**/*.yaml"), *root.glob("tests/config/cases/**/*.yaml")]
    assert len(files) > 10
    for f in files:
        text = f.read_text(encoding="utf-8")
        results = []
        for loader in (y._FastLoader, y._Loader):
            try:
                node = y._compose(loader, text)
            except Exception as exc:  # compared, not swallowed: both must refuse alike
                results.append(type(exc).__name__)
                continue
            builder = y._Builder(str(f), 0, 0)
            try:
                data, pos = y._built(builder, node, str(f), 0, 0)
                results.append((repr(data), pos.values, pos.keys, pos.plain))
            except ConfigError as exc:
                results.append([str(p) for p in exc.problems])
        if results[0] != "ScannerError" and results[0] != "ParserError":
            assert results[0] == results[1], f
