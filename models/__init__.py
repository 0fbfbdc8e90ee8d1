"""Shipped on-device models: one folder per model with ``model.tflite``, ``manifest.json`` and
``MODEL_CARD.md``. ``models/training`` reproduces them (``python -m models.training``).
"""

from __future__ import annotations

from pathlib import Path

MODELS_DIR: Path = Path(__file__).resolve().parent
VALUATION_MODEL = "valuation"
RESIDUAL_MODEL = "residual"


def model_dir(name: str) -> Path:
    """The folder of a shipped model (it may not exist if the model was never trained)."""
    return MODELS_DIR / name


__all__ = ["MODELS_DIR", "RESIDUAL_MODEL", "VALUATION_MODEL", "model_dir"]
