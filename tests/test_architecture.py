"""The shape docs/architecture.md promises: no import circles in hub/ (type-only imports
included), rooms of bounded size, and the import contracts of pyproject.toml."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
HUB = ROOT / "hub"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250
MAX_HUB_CLASS_LINES = 150


def hub_graph() -> grimp.ImportGraph:
    return grimp.build_graph("hub", include_external_packages=False, exclude_type_checking_imports=False, cache_dir=None)


def import_circles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    circles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                circles.append((importer, *back))
    return circles


def test_no_import_circle_in_the_hub() -> None:
    assert import_circles(hub_graph()) == []


def test_the_circle_check_sees_a_circle() -> None:
    graph = hub_graph()
    graph.add_import(importer="hub.store.models", imported="hub.core.hub")
    assert any(c[0] == "hub.core.hub" or c[-1] == "hub.core.hub" for c in import_circles(graph))


def sources() -> list[Path]:
    return sorted(p for p in HUB.rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_rooms_stay_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: split it by what its parts own"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            limit = MAX_HUB_CLASS_LINES if (path.name, node.name) == ("hub.py", "Hub") else MAX_CLASS_LINES
            assert size <= limit, f"{path.name}: class {node.name} has {size} lines (at most {limit})"


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def imported_modules(path: Path) -> set[str]:
    """Every module a file of hub/ imports, relative imports resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_the_hub_never_imports_its_own_deprecated_paths() -> None:
    # The old flat paths still import (hub/_aliases.py), so nothing else would notice.
    from hub._aliases import MOVED

    offenders = {
        f"{p.relative_to(ROOT)}: {name}" for p in sources() if p.name != "_aliases.py" for name in imported_modules(p) if name in MOVED
    }
    assert offenders == set()


@pytest.mark.parametrize("old", ["hub.service", "hub.plugins", "hub.config", "hub.bootstrap", "hub.crypto", "hub.auth", "hub.db", "hub.models"])
def test_the_old_flat_paths_still_import_with_a_warning(old: str) -> None:
    """docs/plugins.md once showed plugin tests importing these: they keep working until 0.4."""
    import importlib

    from hub._aliases import MOVED

    sys.modules.pop(old, None)
    try:
        with pytest.warns(DeprecationWarning, match=MOVED[old].replace(".", r"\.")):
            module = importlib.import_module(old)
        assert module is importlib.import_module(MOVED[old])
        assert module.__spec__.name == MOVED[old]  # the real module keeps its own identity
    finally:
        sys.modules.pop(old, None)
