"""The fast path of :func:`agent.config.yaml_loader.load_yaml`: plain data and positions built
straight from libyaml's event stream, without composing a node tree.

Composing nodes costs a Python call per node (PyYAML's resolver hooks) and a node object per
key and value; a 10,000-point site spent most of its load time there (issue 17). This walk
reads the events of PyYAML's C binding (``yaml._yaml.CParser.get_event``) once and builds the
same ``dict``/``list``/scalar data, the same :class:`~agent.config.problems.Positions` (a value
position for every node, a key position for every mapping key, the plain-scalar paths) as the
node path of :mod:`agent.config.yaml_loader`.

It covers the documents a point list is made of: one document of mappings, sequences and
untagged scalars. Anything else (an anchor, an alias, a ``<<`` merge key, an explicit tag, a
duplicate or non-scalar key, a second document, a syntax error) makes :func:`build` return
``None`` and the node path handles the document and words its problems, so every message and
position stays the node path's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from agent.config.problems import Path_, Pos, Positions

_NODES = (ScalarEvent, MappingStartEvent, SequenceStartEvent)


class _Unusual(Exception):
    """The document needs the node path (see the module docstring)."""


def build(
    text: str, file: str, line: int, column: int, resolve: Callable[[str], Any]
) -> tuple[Any, Positions] | None:
    """Parse one YAML document with libyaml's events into ``(data, positions)``.

    Args:
        text: the YAML source.
        file, line, column: as in :func:`agent.config.yaml_loader.load_yaml` (added to
            libyaml's 0-based marks, which count characters).
        resolve: the plain-scalar resolution (:func:`~agent.config.yaml_loader.resolve_plain`).

    Returns:
        ``(data, positions)`` exactly as the node path builds them, or ``None`` when the
        document needs the node path (PyYAML without libyaml, or anything listed in the module
        docstring). Raises nothing of its own: every refusal is a ``None``.
    """
    if not yaml.__with_libyaml__:  # pragma: no cover - PyYAML without libyaml
        return None
    from yaml._yaml import CParser

    parser = CParser(text)
    try:
        return _walk(parser.get_event, file, line, column, resolve)
    except (yaml.YAMLError, _Unusual, RecursionError):
        return None
    finally:
        parser.dispose()


def _walk(
    get: Callable[[], Any], file: str, line: int, column: int, resolve: Callable[[str], Any]
) -> tuple[Any, Positions]:
    get()  # StreamStartEvent
    if type(get()) is StreamEndEvent:  # no document at all
        return None, Positions(values={(): Pos(file, line + 1, column + 1)})
    walker = _Walker(get, file, line, column, resolve)
    data = walker.node(get(), ())  # after the DocumentStartEvent
    if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
        raise _Unusual  # a second document: the node path words the error
    return data, walker.positions


class _Walker:
    """Builds one document's data and positions; a class, not a recursive closure, so that no
    reference cycle keeps the positions alive for the cyclic GC (paused during a load)."""

    def __init__(
        self,
        get: Callable[[], Any],
        file: str,
        line: int,
        column: int,
        resolve: Callable[[str], Any],
    ) -> None:
        self.get = get
        self.file = file
        self.line = line + 1  # marks are 0-based, positions 1-based
        self.column = column + 1
        self.resolve = resolve
        self.positions = Positions()

    def node(self, ev: Any, path: Path_) -> Any:
        """The value that starts with event ``ev``, at ``path``; its events consumed."""
        kind = type(ev)
        if kind not in _NODES or ev.anchor is not None or ev.tag is not None:
            raise _Unusual  # an alias, an anchor, a tag
        mark: Any = ev.start_mark
        self.positions.values[path] = Pos(
            self.file, self.line + mark.line, self.column + mark.column
        )
        if kind is ScalarEvent:
            if ev.implicit[0]:  # plain (unquoted): Core Schema resolution
                value = self.resolve(ev.value)
                if type(value) is str:
                    self.positions.plain.add(path)
                return value
            return ev.value
        get = self.get
        if kind is MappingStartEvent:
            file, line, column, keys = self.file, self.line, self.column, self.positions.keys
            result: dict[str, Any] = {}
            ev = get()
            while type(ev) is not MappingEndEvent:
                if type(ev) is not ScalarEvent or ev.anchor is not None or ev.tag is not None:
                    raise _Unusual
                key = ev.value
                if key in result or (key == "<<" and not ev.style):
                    raise _Unusual  # a duplicate (an error) or a merge key (plain "<<")
                mark = ev.start_mark
                sub = (*path, key)
                keys[sub] = Pos(file, line + mark.line, column + mark.column)
                result[key] = self.node(get(), sub)
                ev = get()
            return result
        items: list[Any] = []  # a SequenceStartEvent
        ev = get()
        while type(ev) is not SequenceEndEvent:
            items.append(self.node(ev, (*path, len(items))))
            ev = get()
        return items
