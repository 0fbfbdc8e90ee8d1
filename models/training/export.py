"""Build the TensorFlow graphs for the fitted models and convert them to TFLite.

TensorFlow is imported inside the functions: the rest of ``models.training`` (fitting, reports)
runs without it, and so does the benchmark.

Graphs (the runtime in ``edge.inference`` depends on these names and shapes):

- valuation: inputs ``trim_index`` int32 [N] and ``features`` float32 [N, 4] =
  (miles / 1,000, cruise, sound, leather); output ``price`` float32 [N, 5] = point value,
  low 80 %, high 80 %, low 90 %, high 90 % in USD at the catalogue's price level (each range's
  log half-width is ``q * sqrt((usd / value)^2 + rel^2)``, see ``valuation_fit``). With a
  mileage table the graph floors the first feature to whole thousands and looks the step up.
- residual: input ``points`` float32 [N, 2] = (age in years, mileage in thousands of miles);
  output ``log_value`` float32 [N, 1], a log value index whose differences are log value ratios.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from models.training.residual_fit import FittedResidual
from models.training.valuation_fit import MILES_SCALE, FittedValuation


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.random.set_seed(0)
    return tf


def _valuation_module(model: FittedValuation) -> tuple[Any, Any]:
    tf = _tf()
    table = np.stack([model.intercept, model.slope], axis=1).astype(np.float32)
    knots = np.array([k / MILES_SCALE for k in model.spec.knots_miles], dtype=np.float32)
    knot_w = model.knot_weights.astype(np.float32)
    opt_w = model.option_weights.astype(np.float32).reshape(3, 1)
    bands = np.array([[0.0, -model.q80, model.q80, -model.q90, model.q90]], dtype=np.float32)
    center = np.float32(model.center)
    use_table = model.spec.mileage_table
    mtable = model.table.astype(np.float32) if use_table else np.zeros(1, np.float32)
    last = np.float32(len(mtable) - 1)
    tail = np.float32(model.tail_slope)
    usd2 = np.float32(model.scale_usd**2)
    rel2 = np.float32(model.scale_rel**2)

    class Valuation(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.table = tf.constant(table)
            self.opt_w = tf.constant(opt_w)
            self.bands = tf.constant(bands)
            self.mtable = tf.constant(mtable)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int32, name="trim_index"),
                tf.TensorSpec([None, 4], tf.float32, name="features"),
            ]
        )
        def serve(self, trim_index: Any, features: Any) -> dict[str, Any]:
            rows = tf.gather(self.table, trim_index)
            miles = features[:, 0:1]
            shared = tf.zeros_like(miles)
            if use_table:
                miles = tf.floor(miles)
                step = tf.cast(tf.clip_by_value(miles, 0.0, last), tf.int32)
                shared = tf.gather(self.mtable, step[:, 0])[:, None]
                shared = shared + tail * tf.nn.relu(miles - last)
            log_price = center + rows[:, 0:1] + rows[:, 1:2] * miles + shared
            for k, w in zip(knots, knot_w, strict=True):
                log_price = log_price + w * tf.nn.relu(miles - k)
            log_price = log_price + tf.matmul(features[:, 1:4], self.opt_w)
            # Interval scale s(P) = sqrt((usd / P)^2 + rel^2); half-widths are q * s(P).
            scale = tf.sqrt(usd2 * tf.exp(-2.0 * log_price) + rel2)
            return {"price": tf.exp(log_price + scale * self.bands)}

    mod = Valuation()
    return mod, mod.serve.get_concrete_function()


def _residual_module(model: FittedResidual) -> tuple[Any, Any]:
    tf = _tf()
    w = np.array([[model.beta_age], [model.beta_mileage]], dtype=np.float32)

    class Residual(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.constant(w)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="points")])
        def serve(self, points: Any) -> dict[str, Any]:
            return {"log_value": tf.matmul(points, self.w)}

    mod = Residual()
    return mod, mod.serve.get_concrete_function()


def _convert(
    module: Any, fn: Any, variant: str, representative: Iterator[list[np.ndarray]] | None = None
) -> bytes:
    tf = _tf()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    if variant == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        # Dynamic-range int8 weights, plus full-integer kernels where a representative data set
        # lets the converter calibrate activations; inputs and outputs stay float.
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:
            reps = list(representative)
            conv.representative_dataset = lambda: iter(reps)
    elif variant != "float32":
        raise ValueError(f"unknown variant {variant!r}")
    return bytes(conv.convert())


def export_valuation(
    model: FittedValuation, variant: str, representative: list[list[np.ndarray]] | None = None
) -> bytes:
    mod, fn = _valuation_module(model)
    return _convert(mod, fn, variant, iter(representative) if representative else None)


def export_residual(model: FittedResidual, variant: str = "float32") -> bytes:
    mod, fn = _residual_module(model)
    return _convert(mod, fn, variant)


def interpreter(content: bytes) -> Any:
    """TensorFlow's TFLite interpreter for training-side checks. TF deprecates it in favour of
    LiteRT, which the training environment need not have; the warning is expected here."""
    tf = _tf()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        return tf.lite.Interpreter(model_content=content)


def run_tflite(content: bytes, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a converted model with TensorFlow's interpreter (training-side checks only)."""
    interp = interpreter(content)
    details = {d["name"]: d for d in interp.get_input_details()}
    for name, value in inputs.items():
        d = next(v for k, v in details.items() if name in k)
        interp.resize_tensor_input(d["index"], list(value.shape))
    interp.allocate_tensors()
    details = {d["name"]: d for d in interp.get_input_details()}
    for name, value in inputs.items():
        d = next(v for k, v in details.items() if name in k)
        interp.set_tensor(d["index"], value.astype(d["dtype"]))
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
