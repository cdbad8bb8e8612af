"""The dependency rules of DESIGN.md, checked on the import statements of the tree:
stores know no services or business rules, and the pure packages import nothing of
the project but each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("homeserver", "client_api", "federation", "storage")


def project_imports(path: Path) -> set[str]:
    """The modules of the project that ``path`` imports (anywhere in the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PROJECT_PACKAGES)
    return found


def allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_project_imports_sees_imports() -> None:
    # the checker itself: it finds this test module's view of the rules
    imports = project_imports(ROOT / "storage" / "push_rules.py")
    assert "storage.database" in imports


@pytest.mark.parametrize("path", sorted((ROOT / "storage").glob("*.py")), ids=lambda p: p.name)
def test_stores_import_no_services(path: Path) -> None:
    """A store may use the pure event model, nothing else of ``homeserver``, and no
    handler package."""
    bad = {m for m in project_imports(path) if not allowed(m, ("storage", "homeserver.events"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("package", ["events", "state_res"])
def test_pure_packages_import_only_each_other(package: str) -> None:
    for path in sorted((ROOT / "homeserver" / package).rglob("*.py")):
        bad = {
            m
            for m in project_imports(path)
            if not allowed(m, ("homeserver.events", "homeserver.state_res"))
        }
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
