"""Problems found in a configuration, and where they are.

Every problem prints as one line ``FILE:LINE:COLUMN: message`` (1-based line and column), the
format compilers use, so editors and CI logs can jump to it. ``--set`` overrides print as
``--set:<n>:<column>`` where ``n`` is the override's 1-based position on the command line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Path_ = tuple[str | int, ...]
"""A path into the parsed YAML tree: mapping keys (str) and list indices (int)."""


EXIT_CONFIG = 2
"""Exit status for a configuration that cannot work (2: "incorrect usage", as click uses it).
``systemd/pumproom-agent.service`` has ``RestartPreventExitStatus=2``, so systemd does not
restart into the same error every few seconds. Used by :mod:`agent.cli` and
:func:`agent.app.run`."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a configuration.

    Attributes:
        file: the file name as given (e.g. ``"site.yaml"``), or ``"--set"`` for an override.
        line: 1-based line (for ``--set``: the override's 1-based position).
        column: 1-based column.
        message: what is wrong and what was expected, naming the key.
    """

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ConfigError(Exception):
    """The configuration is not valid. ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems, key=_order)
        super().__init__("\n".join(str(p) for p in self.problems))


def _order(p: Problem) -> tuple[bool, str, int, int]:
    return (p.file == "--set", p.file, p.line, p.column)


@dataclass(frozen=True, slots=True)
class Pos:
    """Where a YAML node starts: file name, 1-based line and column."""

    file: str
    line: int
    column: int

    def problem(self, message: str) -> Problem:
        """A :class:`Problem` at this position."""
        return Problem(self.file, self.line, self.column, message)

    def where(self) -> str:
        """Short human reference for messages, e.g. ``"line 12"`` or ``"--set 2"``."""
        if self.file == "--set":
            return f"--set {self.line}"
        return f"line {self.line}"


@dataclass(slots=True)
class Positions:
    """Positions of every key and value node of a parsed tree, keyed by their path.

    ``values[path]`` is where the value at ``path`` starts; ``keys[path]`` is where the mapping
    key whose value is at ``path`` starts (absent for list items and the root). ``plain`` holds
    the paths of unquoted scalars that stayed strings (``yes``, ``010``, ``12:30``), so messages
    can say "quote it" only where it helps.
    """

    values: dict[Path_, Pos] = field(default_factory=dict)
    keys: dict[Path_, Pos] = field(default_factory=dict)
    plain: set[Path_] = field(default_factory=set)
    unresolved: dict[int, str] = field(default_factory=dict)
    """Devices whose ``profile:`` could not be read (index in ``devices`` → their ``prefix``):
    their points are unknown, so the problems that follow from it (no ``points``, an alarm or
    control key naming one of their points) are not reported beside the profile's own."""

    def unresolved_name(self, name: str) -> bool:
        """Whether ``name`` may be a point of an unresolved device (its prefix matches)."""
        return any(name.startswith(prefix) for prefix in self.unresolved.values())

    def value(self, path: Path_) -> Pos:
        """Position of the value at ``path``, or of its nearest recorded ancestor."""
        return _nearest(self.values, path)

    def key(self, path: Path_) -> Pos:
        """Position of the key of ``path`` (falls back to the value, then to ancestors)."""
        if path in self.keys:
            return self.keys[path]
        return _nearest(self.values, path)

    def replace(self, prefix: Path_, other: Positions, key: Pos | None) -> None:
        """Drop everything under ``prefix`` and graft ``other`` (rooted at ``()``) there."""
        n = len(prefix)
        for table in (self.values, self.keys):
            for p in [p for p in table if p[:n] == prefix and p != prefix]:
                del table[p]
        self.plain -= {p for p in self.plain if p[:n] == prefix}
        self.plain |= {prefix + p for p in other.plain}
        for p, pos in other.values.items():
            self.values[prefix + p] = pos
        for p, pos in other.keys.items():
            self.keys[prefix + p] = pos
        if key is not None:
            self.keys[prefix] = key


def _nearest(table: dict[Path_, Pos], path: Path_) -> Pos:
    for i in range(len(path), -1, -1):
        if path[:i] in table:
            return table[path[:i]]
    return Pos("?", 1, 1)
