"""Errors raised by ``edge.inference``.

::

    InferenceError                  base; catch this to handle any inference failure
    ├── RuntimeUnavailableError          no TFLite interpreter importable (ai-edge-litert,
    │                               tflite-runtime, tensorflow); says what to install
    ├── ModelError                  a model cannot be used; carries the model folder
    │   ├── ModelNotFoundError           folder, manifest or .tflite missing
    │   ├── ManifestInvalidError         manifest.json unreadable or not this schema
    │   └── ModelIntegrityError     .tflite sha256 differs from the manifest, or its tensors
    │                               differ from what the manifest declares
    └── InputError (ValueError)     a request or input row is malformed (not: an unknown car,
                                    which is a result: "manual appraisal required")
"""

from __future__ import annotations

from pathlib import Path


class InferenceError(Exception):
    """Base class of every error raised by edge.inference."""


class RuntimeUnavailableError(InferenceError):
    """No TFLite interpreter could be imported."""

    def __init__(self, tried: list[str]) -> None:
        self.tried = tried
        super().__init__(
            "no TFLite runtime available (tried: " + "; ".join(tried) + "). Install "
            "ai-edge-litert (pip install ai-edge-litert), or on an older image tflite-runtime "
            "with numpy<2"
        )


class ModelError(InferenceError):
    """A model folder cannot be used."""

    def __init__(self, model_dir: Path, message: str) -> None:
        self.model_dir = model_dir
        super().__init__(f"{model_dir}: {message}")


class ModelNotFoundError(ModelError):
    """The model folder, its manifest or its .tflite file is missing."""


class ManifestInvalidError(ModelError):
    """manifest.json is not valid JSON or does not match the manifest schema."""


class ModelIntegrityError(ModelError):
    """The .tflite file is not the one the manifest describes (sha256 or tensors differ)."""


class InputError(InferenceError, ValueError):
    """A request value or input row is malformed."""
