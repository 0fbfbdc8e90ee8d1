#!/usr/bin/env bash
# Training smoke test in its own environment with the `train` extra (TensorFlow): run the whole
# pipeline into a temporary folder, check the result loads and agrees with the shipped models,
# then check that retraining reproduces the committed files byte for byte.
#
# Usage: .ci/train-smoke.sh        (venv at .venv-train, override with TRAIN_VENV)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TRAIN_VENV:-$ROOT/.venv-train}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -e "$ROOT[train]" "pytest>=8" "pytest-timeout>=2.3" "hypothesis>=6.100"

cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=2
"$VENV/bin/python" -m pytest -q -p no:cacheprovider --noconftest tests/training
"$VENV/bin/python" -m models.training --check
