#!/usr/bin/env bash
# Run the inference tests as an older kiosk image would: tflite-runtime 2.14 with numpy<2 and
# pydantic, and no LiteRT, OpenCV or TensorFlow. edge.inference must import only edge.protocol
# (pure pydantic) and models/, so the source tree is used as is (no install of the project).
#
# Usage: .ci/inference-compat.sh        (venv at .venv-compat, override with COMPAT_VENV)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COMPAT_VENV:-$ROOT/.venv-compat}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"  # tflite-runtime 2.14: CPython <= 3.11

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "tflite-runtime==2.14.*" "numpy>=1.24,<2" "pydantic>=2.7,<3" \
  "pytest>=8" "pytest-timeout>=2.3" "hypothesis>=6.100"

cd "$ROOT"
export PYTHONPATH="$ROOT"
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
import numpy
assert numpy.__version__.startswith("1."), numpy.__version__
for absent in ("cv2", "ai_edge_litert", "tensorflow"):
    assert importlib.util.find_spec(absent) is None, f"{absent} must not be in the compat env"
from edge.inference import find_runtime
name = find_runtime().name
assert name == "tflite_runtime", name
print(f"compat env: python {sys.version.split()[0]}, numpy {numpy.__version__}, runtime {name}")
PY
# --noconftest: the suite's conftest serves other areas' services, not needed here.
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider --noconftest \
  tests/unit/inference tests/integration/inference
