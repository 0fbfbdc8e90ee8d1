"""The model manifest (``models/<name>/manifest.json``, schema ``kioskmatch.model/1``).

Written by ``models.training``; read here before a model is loaded. Unknown keys are refused so a
manifest from a newer pipeline is not half-understood.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.inference.errors import ManifestInvalidError, ModelNotFoundError

MANIFEST_SCHEMA = "kioskmatch.model/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    name: str
    tensor: str = Field(description="Tensor name inside the .tflite flatbuffer")
    dtype: Literal["float32", "int32"]
    shape: list[int] = Field(description="-1 marks the batch dimension")
    description: str = ""


class CatalogueItem(_Strict):
    index: int = Field(ge=0)
    make: str
    model: str
    trim: str
    body: str
    cylinders: int
    liters: float
    doors: int
    rows: int = Field(ge=1, description="Training rows behind this entry")
    miles_min: float
    miles_max: float


class IntervalScale(_Strict):
    """The ranges' log half-width is ``q * sqrt((usd / value)^2 + rel^2)`` (``q`` from
    ``interval_log_halfwidth``); the graph computes them, this documents how."""

    usd: float = Field(ge=0)
    rel: float = Field(ge=0)


class ValuationSpec(_Strict):
    currency: Literal["USD"]
    price_level_year: int
    catalogue_model_year: int
    reference_age_years: float = Field(ge=0)
    reference_miles: float = Field(ge=0)
    miles_scale: float = Field(gt=0)
    km_per_mile: float = Field(gt=0)
    miles_range: tuple[float, float]
    options: list[str]
    price_columns: list[str]
    interval_log_halfwidth: dict[str, float]
    interval_scale: IntervalScale | None = None  # absent: half-widths are the q themselves
    catalogue: list[CatalogueItem]


class ResidualSpec(_Strict):
    age_range_years: tuple[float, float]
    mileage_range_kmi: tuple[float, float]
    default_annual_kmi: float = Field(gt=0)
    annual_kmi_bounds: tuple[float, float]
    term_months: int = Field(ge=1, le=240)
    interval_log_halfwidth: dict[str, float]


class ModelManifest(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["kioskmatch.model/1"] = Field(alias="schema")
    name: str
    kind: Literal["valuation", "residual"]
    version: str
    file: str = "model.tflite"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    variant: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    valuation: ValuationSpec | None = None
    residual: ResidualSpec | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    variants: list[dict[str, Any]] = Field(default_factory=list)

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.name == name)


def read_manifest(model_dir: Path) -> ModelManifest:
    """Parse ``model_dir/manifest.json``; raises ModelNotFoundError or ManifestInvalidError."""
    path = model_dir / "manifest.json"
    if not path.is_file():
        raise ModelNotFoundError(
            model_dir, "manifest.json is missing; run `make train` or restore it"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalidError(model_dir, f"manifest.json is not readable JSON: {exc}") from exc
    try:
        return ModelManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ManifestInvalidError(
            model_dir, f"manifest.json does not match {MANIFEST_SCHEMA}: {where}: {first['msg']}"
        ) from exc
