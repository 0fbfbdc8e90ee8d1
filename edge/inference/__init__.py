"""On-device valuation: TFLite runtime loading, model manifests, pre/post-processing and the
composition of a kiosk value (catalogue base, ageing, price level, deductions).

Imports neither OpenCV nor the rest of the kiosk (only ``edge.protocol``), so it runs on an older
image with ``tflite-runtime`` and numpy<2. Errors: see ``edge.inference.errors``.
"""

from edge.inference.compose import DeductionPolicy
from edge.inference.errors import (
    InferenceError,
    InputError,
    ManifestInvalidError,
    ModelError,
    ModelIntegrityError,
    ModelNotFoundError,
    RuntimeUnavailableError,
)
from edge.inference.manifest import ModelManifest, read_manifest
from edge.inference.runtime import RUNTIME_ORDER, Runtime, TfliteModel, find_runtime
from edge.inference.valuator import (
    GuidebookRow,
    Quote,
    ValuationRequest,
    ValuationResult,
    Valuator,
)

__all__ = [
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
