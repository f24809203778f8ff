"""Data flows one way: the pure core imports none of the edges, and the web layer never reaches past the board."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "backup_glance"
FORBIDDEN = {
    "schedule": {"sources", "collector", "history", "web", "health", "config", "simulators"},
    "health": {"sources", "collector", "history", "web", "config", "simulators"},
    "web": {"sources", "collector", "history", "health", "simulators"},
    "sources": {"health", "web", "collector", "history", "simulators"},
    "config": {"sources", "collector", "history", "web", "health", "simulators"},
}


def imported_modules(path: Path) -> set[str]:
    """The backup_glance subpackages a file imports, resolving relative imports."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                parts = [*base, *(node.module.split(".") if node.module else [])]
            else:
                parts = (node.module or "").split(".")
            if parts[:1] == ["backup_glance"] and len(parts) > 1:
                found.add(parts[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "backup_glance" and len(parts) > 1:
                    found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_downstream_of_it(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    offenders = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in files
        for name in imported_modules(path) & FORBIDDEN[layer]
    }
    assert not offenders, sorted(offenders)


def test_no_file_cites_a_folder_outside_the_repository() -> None:
    """Someone who clones the project must be able to follow every reference: cite upstream, not a local path."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "/work/" in path.read_text() or "../shared" in path.read_text()
    ]
    assert not offenders
