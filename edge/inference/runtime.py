"""TFLite runtime loading and the integrity-checked model wrapper.

The interpreter comes from the first importable of ``ai_edge_litert`` (LiteRT, the maintained
runtime), ``tflite_runtime`` (older kiosk images, numpy<2) and ``tensorflow`` (training machines).
A model is loaded only if its bytes hash to the manifest's sha256 and its tensors are the ones the
manifest declares; the bytes that were hashed are the bytes handed to the interpreter.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.inference.errors import (
    InputError,
    ModelIntegrityError,
    ModelNotFoundError,
    RuntimeUnavailableError,
)
from edge.inference.manifest import ModelManifest, read_manifest

logger = logging.getLogger(__name__)

RUNTIME_ORDER: tuple[str, ...] = ("ai_edge_litert", "tflite_runtime", "tensorflow")


@dataclass(frozen=True)
class Runtime:
    """An importable TFLite interpreter: its package name and Interpreter class."""

    name: str
    interpreter: Callable[..., Any]


def _import_runtime(name: str) -> Runtime:
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return Runtime(name, tf.lite.Interpreter)
    module = importlib.import_module(f"{name}.interpreter")
    return Runtime(name, module.Interpreter)


def find_runtime(order: Sequence[str] = RUNTIME_ORDER) -> Runtime:
    """The first importable runtime in ``order``; RuntimeUnavailableError names every failure."""
    tried = []
    for name in order:
        try:
            runtime = _import_runtime(name)
        except ImportError as exc:  # includes a runtime built against another numpy ABI
            tried.append(f"{name}: {exc}")
            continue
        logger.debug("TFLite runtime: %s", name)
        return runtime
    raise RuntimeUnavailableError(tried)


def sha256_bytes(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class TfliteModel:
    """One loaded model: its manifest and an interpreter with tensors allocated once.

    Not thread-safe (the interpreter's tensors are reused between calls); use one per thread.
    """

    def __init__(
        self, model_dir: Path, manifest: ModelManifest, interpreter: Any, runtime: str
    ) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self.runtime = runtime
        self._interp = interpreter
        by_name = {d["name"]: d for d in interpreter.get_input_details()}
        out_by_name = {d["name"]: d for d in interpreter.get_output_details()}
        self._inputs: dict[str, int] = {}
        self._outputs: dict[str, int] = {}
        for spec in manifest.inputs:
            self._inputs[spec.name] = self._check(by_name, spec.tensor, spec.dtype, spec.shape)
        for spec in manifest.outputs:
            self._outputs[spec.name] = self._check(out_by_name, spec.tensor, spec.dtype, spec.shape)
        if len(by_name) != len(manifest.inputs):
            raise ModelIntegrityError(model_dir, "the model has inputs the manifest does not list")
        self._shapes: dict[str, tuple[int, ...]] = {}

    def _check(self, details: dict[str, Any], tensor: str, dtype: str, shape: list[int]) -> int:
        d = details.get(tensor)
        if d is None:
            raise ModelIntegrityError(
                self.model_dir, f"tensor {tensor!r} named by the manifest is not in the model"
            )
        got_shape = [int(v) for v in d.get("shape_signature", d["shape"])]
        if np.dtype(d["dtype"]).name != dtype or got_shape != shape:
            raise ModelIntegrityError(
                self.model_dir,
                f"tensor {tensor!r} is {np.dtype(d['dtype']).name}{got_shape}, "
                f"the manifest says {dtype}{shape}",
            )
        return int(d["index"])

    @classmethod
    def load(cls, model_dir: Path, *, runtime: Runtime | None = None) -> TfliteModel:
        """Read the manifest, verify the file's sha256 and build the interpreter."""
        manifest = read_manifest(model_dir)
        path = model_dir / manifest.file
        try:
            content = path.read_bytes()
        except FileNotFoundError as exc:
            raise ModelNotFoundError(model_dir, f"{manifest.file} is missing") from exc
        digest = sha256_bytes(content)
        if digest != manifest.sha256:
            raise ModelIntegrityError(
                model_dir,
                f"{manifest.file} has sha256 {digest}, the manifest expects {manifest.sha256}; "
                "refusing to load it (restore the file or retrain with `make train`)",
            )
        runtime = runtime or find_runtime()
        with warnings.catch_warnings():
            # TensorFlow deprecates tf.lite.Interpreter in favour of LiteRT; as the last fallback
            # it is used knowingly, so its warning would only be noise.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            interpreter = runtime.interpreter(model_content=content, num_threads=1)
        logger.info("loaded %s (%s) with %s", manifest.version, model_dir, runtime.name)
        return cls(model_dir, manifest, interpreter, runtime.name)

    def prepare(self, **shapes: tuple[int, ...]) -> None:
        """Resize inputs (only when a shape changes) and allocate tensors."""
        if all(self._shapes.get(k) == v for k, v in shapes.items()) and self._shapes:
            return
        for name, shape in shapes.items():
            self._interp.resize_tensor_input(self._inputs[name], list(shape))
        self._interp.allocate_tensors()
        self._shapes.update(shapes)

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on named inputs (already of the manifest's dtype); outputs are copies."""
        if set(inputs) != set(self._inputs):
            raise InputError(f"expected inputs {sorted(self._inputs)}, got {sorted(inputs)}")
        self.prepare(**{k: v.shape for k, v in inputs.items()})
        for name, value in inputs.items():
            self._interp.set_tensor(self._inputs[name], value)
        self._interp.invoke()
        return {name: self._interp.get_tensor(i) for name, i in self._outputs.items()}
