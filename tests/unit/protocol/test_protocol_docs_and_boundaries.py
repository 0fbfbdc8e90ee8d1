from __future__ import annotations

import ast
from pathlib import Path

import edge.protocol
from edge.protocol import SCHEMAS, json_schemas, protocol_markdown

ROOT = Path(__file__).resolve().parents[3]


def test_docs_protocol_md_matches_the_models() -> None:
    committed = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert committed == protocol_markdown(), "run `make protocol-docs` and commit docs/protocol.md"


def test_every_schema_exports_json_schema() -> None:
    schemas = json_schemas()
    assert set(schemas) == set(SCHEMAS)
    for schema in schemas.values():
        assert {"schema", "message_id", "kiosk_id", "created_at", "body"} <= set(
            schema["properties"]
        )


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_gateway_imports_only_the_protocol_from_edge() -> None:
    offenders = []
    for path in (ROOT / "gateway").rglob("*.py"):
        for name in _imports(path):
            if (name == "edge" or name.startswith("edge.")) and not (
                name == "edge.protocol" or name.startswith("edge.protocol.")
            ):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders


def test_protocol_imports_nothing_else_from_the_project() -> None:
    for path in Path(edge.protocol.__file__).parent.rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in {"gateway", "firmware_config", "kioskmatch", "models"}, path
            if top == "edge":
                assert name.startswith("edge.protocol"), f"{path} imports {name}"


def test_public_surface_is_declared() -> None:
    assert sorted(edge.protocol.__all__) == sorted(set(edge.protocol.__all__))
    for name in edge.protocol.__all__:
        assert hasattr(edge.protocol, name)
