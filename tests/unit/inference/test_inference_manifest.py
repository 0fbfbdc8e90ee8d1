"""Manifest parsing and its errors; the package's public face and import boundary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import edge.inference
from edge.inference import ManifestInvalidError, ModelNotFoundError, read_manifest
from models import model_dir


def test_shipped_manifests_parse() -> None:
    v = read_manifest(model_dir("valuation"))
    r = read_manifest(model_dir("residual"))
    assert v.kind == "valuation" and v.valuation is not None
    assert r.kind == "residual" and r.residual is not None
    assert v.size_bytes <= 100 * 1024 and r.size_bytes <= 100 * 1024
    assert v.version.startswith("valuation-") and v.sha256[:8] in v.version


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"manifest\.json is missing"):
        read_manifest(tmp_path)


def test_broken_json(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(ManifestInvalidError, match="not readable JSON"):
        read_manifest(tmp_path)


def test_wrong_schema_names_the_field(tmp_path: Path) -> None:
    raw = json.loads((model_dir("residual") / "manifest.json").read_text(encoding="utf-8"))
    raw["sha256"] = "not-a-hash"
    (tmp_path / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ManifestInvalidError, match="sha256"):
        read_manifest(tmp_path)


def test_public_surface_is_deliberate() -> None:
    assert sorted(edge.inference.__all__) == sorted(
        [
            "RUNTIME_ORDER",
            "DeductionPolicy",
            "GuidebookRow",
            "InferenceError",
            "InputError",
            "ManifestInvalidError",
            "ModelError",
            "ModelIntegrityError",
            "ModelManifest",
            "ModelNotFoundError",
            "Quote",
            "Runtime",
            "RuntimeUnavailableError",
            "TfliteModel",
            "ValuationRequest",
            "ValuationResult",
            "Valuator",
            "find_runtime",
            "read_manifest",
        ]
    )
    for name in edge.inference.__all__:
        assert hasattr(edge.inference, name)


def test_inference_imports_neither_opencv_nor_the_rest_of_the_kiosk() -> None:
    code = (
        "import sys, edge.inference, edge.inference.cli\n"
        "bad = sorted(m for m in sys.modules if m == 'cv2' or (m.startswith('edge.') and not "
        "(m.startswith('edge.inference') or m.startswith('edge.protocol'))) or m == 'tensorflow')\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
