"""The event path of the YAML loader (issue 17) builds exactly what the node path builds, and
hands every unusual document to the node path; a config load leaves the garbage collector as
it found it."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.config import yaml_events as events
from agent.config import yaml_loader as y
from tests.benchmarks.config_load import write_site

ROOT = Path(__file__).resolve().parents[2]


def _node_path(text: str, file: str, line: int = 0, column: int = 0) -> object:
    """What the node path (libyaml composing nodes, then :class:`_Builder`) builds."""
    builder = y._Builder(file, line, column)
    data, pos = y._built(builder, y._compose(y._FastLoader, text), file, line, column)
    return repr(data), pos.values, pos.keys, pos.plain


def _event_path(text: str, file: str, line: int = 0, column: int = 0) -> object:
    built = events.build(text, file, line, column, y.resolve_plain)
    assert built is not None, "the event path refused an ordinary document"
    data, pos = built
    return repr(data), pos.values, pos.keys, pos.plain


_ORDINARY = [
    "k: 'single' \nq: \"dbl\\tq\"\nlist: [1, 2.5, yes, 010, 0x1A, .inf, -.Inf, .nan, ~]\n",
    "multi: |\n  line 1\n  line 2\nfolded: >\n  a\n  b\n",
    "ünïcode: 'ölçü'\n\N{CJK UNIFIED IDEOGRAPH-6C34}: 泵房\n",
    "a:\n  - name: x\n    v: 'yes'\n  - {name: y, v: 010}\n  -\n  - [[], {}]\n",
    "\"<<\": {x: 1}\n'quoted key': 2\n1: 3\n",
    "---\nplain scalar\n...\n",
    "---\n",
    "",
    "# only a comment\n",
    "[1, 2, {a: b}]\n",
]


@pytest.mark.parametrize("text", _ORDINARY)
def test_event_path_builds_what_the_node_path_builds(text: str) -> None:
    assert _event_path(text, "f.yaml") == _node_path(text, "f.yaml")
    assert _event_path(text, "--set", 2, 7) == _node_path(text, "--set", 2, 7)


_UNUSUAL = [
    "bus: &bus {port: /dev/ttyUSB0, baudrate: 9600}\ndev:\n  <<: *bus\n  baudrate: 19200\n",
    "a: &x 1\nb: *x\n",
    "x: !!str 5\n",
    "x: !!int '3'\n",
    "a: 1\nb: 2\na: 3\n",
    "? [a, b]\n: 1\n",
    "--- 1\n--- 2\n",
    "a: b: c\n",
    "a:\n\tb: 1\n",
]


@pytest.mark.parametrize("text", _UNUSUAL)
def test_unusual_documents_go_to_the_node_path(text: str) -> None:
    """Anchors, aliases, merge keys, tags, duplicate or complex keys, several documents and
    syntax errors: the event path declines, and load_yaml answers as the node path does."""
    assert events.build(text, "f.yaml", 0, 0, y.resolve_plain) is None
    try:
        data, pos = y.load_yaml(text, "f.yaml")
        got: object = (repr(data), pos.values, pos.keys, pos.plain)
    except ConfigError as exc:
        got = [str(p) for p in exc.problems]
    try:
        want: object = _node_path(text, "f.yaml")
    except ConfigError as exc:
        want = [str(p) for p in exc.problems]
    except Exception:  # libyaml refuses it: the pure parser words it
        want = got if isinstance(got, list) else "the pure parser accepted what libyaml refused"
    assert got == want


def test_every_shipped_yaml_builds_the_same_on_the_event_path() -> None:
    files = [*ROOT.glob("config/**/*.yaml"), *ROOT.glob("tests/config/cases/**/*.yaml")]
    assert len(files) > 10
    taken = 0
    for f in files:
        text = f.read_text(encoding="utf-8")
        built = events.build(text, str(f), 0, 0, y.resolve_plain)
        if built is None:
            continue  # unusual: the node path builds it (covered by test_yaml_loader)
        taken += 1
        data, pos = built
        assert (repr(data), pos.values, pos.keys, pos.plain) == _node_path(text, str(f)), f
    assert taken > 10


def test_a_large_point_list_takes_the_event_path(tmp_path: Path) -> None:
    """The shape the load benchmark measures (issue 17): flow-style points in block lists."""
    site = tmp_path / "site.yaml"
    write_site(site, devices=3, points_per_device=40)
    text = site.read_text(encoding="utf-8")
    assert _event_path(text, str(site)) == _node_path(text, str(site))


def test_load_config_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    write_site(site, devices=1, points_per_device=3)
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: [\n", encoding="utf-8")
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            assert load_config(site).point_count == 3
            assert gc.isenabled() is enabled
            with pytest.raises(ConfigError):
                load_config(bad)
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
