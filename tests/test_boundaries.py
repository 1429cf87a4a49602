"""The import boundaries of DESIGN.md, checked on the source: a layer that reaches above itself
fails here, naming the file, the line and the module it imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported module) for every absolute import under ``package``; every
    ``import x`` and ``from x import y`` counts, also those inside functions."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((str(path.relative_to(ROOT)), node.lineno, node.module))
    return found


def _top(module: str, depth: int) -> str:
    return ".".join(module.split(".")[:depth])


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        # the leaf imports nothing of ours but itself
        ("agent/core", {"agent.core"}),
        # drivers know protocols and the leaf, not the pipeline
        ("drivers", {"agent.core", "drivers"}),
        # the control law and loop see the leaf, config, the driver interface and themselves;
        # not the uplink, the store or the pollers
        ("agent/control", {"agent.core", "agent.config", "agent.control", "drivers"}),
        # the alarm evaluator and state machine see the leaf, config, the buffer and themselves
        ("agent/alarms", {"agent.core", "agent.config", "agent.alarms", "agent.store"}),
        # the simulator meets the agent only on the wire
        ("hil_sim", {"hil_sim"}),
    ],
)
def test_a_layer_imports_only_what_it_may(package: str, allowed: set[str]) -> None:
    ours = ("agent", "drivers", "hil_sim")
    bad = [
        f"{file}:{line}: imports {module}"
        for file, line, module in _imports(package)
        if module.split(".")[0] in ours
        and not any(module == a or module.startswith(a + ".") for a in allowed)
    ]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_violation() -> None:
    """The walk finds real imports (a checker that finds none would pass every layer)."""
    found = {m for _, _, m in _imports("drivers")}
    assert "agent.core.model" in found
