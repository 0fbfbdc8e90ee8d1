"""The public surfaces stay deliberate, and the gateway's photo code imports nothing from edge."""

from __future__ import annotations

import ast
from pathlib import Path

import edge.camera
import gateway.photos

ROOT = Path(__file__).resolve().parents[3]


def test_every_exported_name_exists_once() -> None:
    for module in (edge.camera, gateway.photos):
        assert len(module.__all__) == len(set(module.__all__))
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)


def test_gateway_photos_imports_nothing_from_edge() -> None:
    for path in (ROOT / "gateway" / "photos").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("edge"), (path, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("edge") for a in node.names), path
