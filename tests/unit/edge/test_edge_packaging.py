"""What a role's code imports is what installing that role brings (``pip install .[edge]``).

A kiosk is installed with the ``edge`` extra only: an import it does not declare works in the
development environment (where every extra is installed) and fails on the kiosk.
"""

from __future__ import annotations

import ast
import contextlib
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
OURS = {"edge", "gateway", "firmware_config", "models", "provisioning", "kioskmatch", "__future__"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_by(declared: list[str]) -> set[str]:
    """The distributions ``declared`` brings, with everything they require in turn."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in declared]
    while todo:
        req = todo.pop()
        name = _normal(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        # Not installed: declared for another platform or Python; not ours to check here.
        with contextlib.suppress(PackageNotFoundError):
            todo += [Requirement(r) for r in requires(req.name) or []]
    return seen


def _optional(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside ``try: ... except ImportError`` (fallbacks, optional)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
            for h in node.handlers
        ):
            lines |= {
                n.lineno for stmt in node.body for n in ast.walk(stmt) if hasattr(n, "lineno")
            }
    return lines


def _imports(package: str) -> dict[str, str]:
    """Third-party top-level modules imported under ``package``, each with a file that does."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        optional = _optional(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in OURS or node.lineno in optional:
                    continue
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("role", ["edge", "gateway"])
def test_every_import_is_declared_for_its_role(role: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _installed_by(project["dependencies"] + project["optional-dependencies"][role])
    providers = packages_distributions()
    missing = {
        module: where
        for module, where in _imports(role).items()
        if not {_normal(d) for d in providers.get(module, [module])} & installed
    }
    assert not missing, f"imported by {role}/ but not brought by the {role!r} extra: {missing}"
