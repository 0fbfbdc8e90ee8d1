"""Training smoke test: the whole pipeline with TensorFlow, into a temporary folder.

Skipped where TensorFlow is not installed (the kiosk and gateway environments); CI runs it in
its own environment with the ``train`` extra (``.ci/train-smoke.sh``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edge.inference import GuidebookRow, Valuator
from models import MODELS_DIR
from models.training import pipeline


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    pipeline.run(out, out / "reports")
    return out


def test_pipeline_writes_models_manifests_cards_and_report(trained: Path) -> None:
    for name in ("valuation", "residual"):
        for f in ("model.tflite", "manifest.json", "MODEL_CARD.md"):
            assert (trained / name / f).stat().st_size > 0
        m = json.loads((trained / name / "manifest.json").read_text(encoding="utf-8"))
        assert m["size_bytes"] <= 100 * 1024
    assert "kbb_gm_2005_train.csv" in (trained / "reports" / "data_validation.md").read_text(
        encoding="utf-8"
    )


def test_freshly_trained_models_load_and_agree_with_the_shipped_ones(trained: Path) -> None:
    fresh, shipped = Valuator.load(trained), Valuator.load(MODELS_DIR)
    rows = [
        GuidebookRow(e.make, e.model, e.trim, m, True, False, True)
        for e in shipped.catalogue.entries[::7]
        for m in (5_000.0, 25_000.0, 45_000.0)
    ]
    a = np.array([q.value_usd for q in fresh.quote(rows)], dtype=float)
    b = np.array([q.value_usd for q in shipped.quote(rows)], dtype=float)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_heldout_metrics_beat_the_reference(trained: Path) -> None:
    m = json.loads((trained / "valuation" / "manifest.json").read_text(encoding="utf-8"))
    h = m["metrics"]["heldout_internal"]
    assert h["model"]["mape_pct"] < h["reference"]["mape_pct"]
    assert h["model"]["binomial90"]["consistent_at_5pct"]
