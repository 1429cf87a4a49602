"""A strict YAML loader that remembers where every key and value came from.

Built on PyYAML's scanner, parser and composer, with our own construction of plain Python data
(``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``). It avoids the YAML 1.1
surprises that bite technicians (see the YAML 1.2 spec, §10.3 "Core Schema", which dropped them):

* only ``true``/``false`` (any case variant the Core Schema allows) are booleans; ``yes``, ``no``,
  ``on``, ``off``, ``y``, ``n`` stay strings (YAML 1.1 §"bool" type would make them booleans);
* ``010`` stays the string ``"010"`` (YAML 1.1 reads it as octal 8); the schema then says
  "leading zero";
* ``12:30`` stays a string (YAML 1.1 reads base-60 integers: 750);
* ``0x1A`` is an integer (hex register addresses are common in device manuals);
* a key repeated in one mapping is an error at the second key (YAML 1.2 §3.2.1.1 requires
  unique keys; PyYAML silently keeps the last one);
* tabs in indentation and syntax errors become one :class:`Problem` with line and column.

Merge keys (``<<: *anchor``) and aliases are supported; an aliased node is copied, and its
positions are those of the anchored node.

An ordinary document (no anchor, alias, merge key or tag; no error) is built straight from
libyaml's events by :mod:`agent.config.yaml_events`, with the same data and positions; the rest
goes through the nodes composed here.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from agent.config import yaml_events
from agent.config.problems import ConfigError, Path_, Pos, Positions, Problem

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|(0|[1-9][0-9]*)(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_PLAIN = "?plain"
_DEFAULT_TAGS = {
    _PLAIN,
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "!",
}


class _Loader(Reader, Scanner, Parser, Composer, BaseResolver):
    """PyYAML's pure-Python front end with no implicit resolvers: every scalar gets the default
    tag and we resolve plain scalars ourselves (:func:`resolve_plain`). Used for the error text of
    a document libyaml refuses, and where PyYAML was built without libyaml."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        BaseResolver.__init__(self)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """Tag plain (unquoted, untagged) scalars ``_PLAIN`` so construction can resolve them."""
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return BaseResolver.resolve(self, kind, value, implicit)


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _FastLoader(CParser, BaseResolver):
        """libyaml's scanner, parser and composer (PyYAML's C binding, ~5x faster than
        :class:`_Loader`), with the same resolution: libyaml calls our :meth:`resolve` for every
        node, so the nodes, tags and marks (0-based line and column, in characters) are the ones
        :class:`_Loader` makes."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            BaseResolver.__init__(self)

        resolve = _Loader.resolve

else:  # pragma: no cover - PyYAML without libyaml
    _FastLoader = _Loader  # type: ignore[misc,assignment]


@functools.lru_cache(maxsize=8192)  # point lists repeat the same words: holding, float32, MPa
def resolve_plain(text: str) -> Any:
    """Resolve an unquoted scalar the YAML 1.2 Core Schema way (plus ``0x`` hex ints).

    Returns ``None``, ``bool``, ``int``, ``float`` or, for anything else, the text unchanged.
    """
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _HEX.fullmatch(text):
        return int(text, 16)
    if _FLOAT.fullmatch(text) and any(c in text for c in ".eE"):
        return float(text)
    if _INF.fullmatch(text):
        return float("-inf") if text.startswith("-") else float("inf")
    if _NAN.fullmatch(text):
        return float("nan")
    return text


def load_yaml(text: str, file: str, line: int = 0, column: int = 0) -> tuple[Any, Positions]:
    """Parse one YAML document into plain data and the positions of its nodes.

    Args:
        text: the YAML source.
        file: name used in problems (the path as given, or ``"--set"``).
        line: added to every 0-based line (for ``--set``, the override's 1-based index minus 1).
        column: added to every 0-based column (offset of ``text`` inside a longer string).

    Returns:
        ``(data, positions)``; ``data`` is ``None`` for an empty document.

    Raises:
        ConfigError: a syntax error, a tab in indentation, a duplicate key, an unsupported tag.
    """
    built = yaml_events.build(text, file, line, column, resolve_plain)
    if built is not None:
        return built
    builder = _Builder(file, line, column)
    try:
        node = _compose(_FastLoader, text)
    except yaml.YAMLError:
        node = None  # libyaml refused it: PyYAML's own parser words the error (or accepts it)
    else:
        return _built(builder, node, file, line, column)
    try:
        node = _compose(_Loader, text)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([builder.syntax_problem(exc)]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, at its place
        raise ConfigError([_reader_problem(exc, text, file, line, column)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, line + 1, column + 1, f"YAML error: {exc}")]) from None
    return _built(builder, node, file, line, column)


def _compose(loader_class: Any, text: str) -> Node | None:
    loader = loader_class(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _built(
    builder: _Builder, node: Node | None, file: str, line: int, column: int
) -> tuple[Any, Positions]:
    if node is None:
        return None, Positions(values={(): Pos(file, line + 1, column + 1)})
    data = builder.build(node, ())
    if builder.problems:
        raise ConfigError(builder.problems)
    return data, builder.positions


def _reader_problem(
    exc: yaml.reader.ReaderError, text: str, file: str, line: int, column: int
) -> Problem:
    """A character YAML does not allow in a file (YAML 1.1 §5.1: C0/C1 controls but tab and
    newlines, U+FFFE/U+FFFF), at its line and column."""
    before = text[: exc.position]
    row = before.count("\n")
    col = exc.position - (before.rfind("\n") + 1)
    char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return Problem(
        file,
        line + row + 1,
        (column if row == 0 else 0) + col + 1,
        f"character U+{char:04X} is not allowed in a YAML file (a control character?)",
    )


class _Builder:
    def __init__(self, file: str, line: int, column: int) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.positions = Positions()
        self.problems: list[Problem] = []

    def pos(self, mark: Any) -> Pos:
        return Pos(self.file, self.line + mark.line + 1, self.column + mark.column + 1)

    def syntax_problem(self, exc: yaml.MarkedYAMLError) -> Problem:
        mark = exc.problem_mark or exc.context_mark
        pos = self.pos(mark) if mark is not None else Pos(self.file, self.line + 1, 1)
        problem = (exc.problem or "").replace("\n", " ")
        if "'\\t'" in problem or "\t" in problem:
            return pos.problem("tab character in indentation: YAML needs spaces here")
        if not exc.context:
            return pos.problem(f"YAML syntax error: {problem}")
        context = exc.context.replace("\n", " ")
        started = ""
        if exc.context_mark is not None and exc.context_mark is not mark:
            started = f" (started at {self.pos(exc.context_mark).where()})"
        if problem.startswith("but "):  # e.g. "expected a single document…, but found another"
            return pos.problem(f"YAML syntax error: {context}, {problem}{started}")
        return pos.problem(f"YAML syntax error: {problem}, {context}{started}")

    def build(self, node: Node, path: Path_) -> Any:
        mark = node.start_mark
        self.positions.values[path] = Pos(
            self.file, self.line + mark.line + 1, self.column + mark.column + 1
        )
        tag = node.tag
        if tag == _PLAIN:  # the common case first: an unquoted scalar
            value = resolve_plain(node.value)
            if type(value) is str:
                self.positions.plain.add(path)
            return value
        if tag not in _DEFAULT_TAGS:
            self.problems.append(
                self.pos(mark).problem(
                    f"YAML tag {tag!r} is not supported here; remove it (quote text instead)"
                )
            )
            return None
        if isinstance(node, ScalarNode):
            return node.value
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        return self.build_mapping(node, path)

    def build_mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, Pos] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            key_pos = self.pos(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self.problems.append(key_pos.problem("a key must be a plain name, not a list/map"))
                continue
            key = key_node.value
            if key == "<<" and not key_node.style:  # plain: None (PyYAML) or "" (libyaml)
                merges.extend(
                    value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                )
                continue
            if key in seen:
                self.problems.append(
                    key_pos.problem(f"duplicate key '{key}' (first at {seen[key].where()})")
                )
                continue
            seen[key] = key_pos
            sub = (*path, key)
            self.positions.keys[sub] = key_pos
            result[key] = self.build(value_node, sub)
        for merge in merges:
            if not isinstance(merge, MappingNode):
                self.problems.append(
                    self.pos(merge.start_mark).problem("'<<' merges only mappings (use an anchor)")
                )
                continue
            for key_node, value_node in merge.value:
                key = key_node.value
                if isinstance(key_node, ScalarNode) and key not in result:
                    self.positions.keys[(*path, key)] = self.pos(key_node.start_mark)
                    result[key] = self.build(value_node, (*path, key))
        return result
