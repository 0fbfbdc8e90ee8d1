"""``python -m models.training``: reproduce every shipped model from the data.

Options: ``--out DIR`` writes the models somewhere else (default: the ``models/`` folder);
``--check`` retrains into a
temporary folder and fails if the result differs from the committed files.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from models import MODELS_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.training", description=__doc__)
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="models folder to write")
    parser.add_argument("--reports", type=Path, default=None, help="reports folder")
    parser.add_argument(
        "--check",
        action="store_true",
        help="retrain into a temporary folder and compare with the committed models",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from models.training import pipeline
    from models.training.datasets import DataValidationError

    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp)
                pipeline.run(out, out / "reports")
                bad = []
                for name in ("valuation", "residual"):
                    for f in ("model.tflite", "manifest.json", "MODEL_CARD.md"):
                        if (out / name / f).read_bytes() != (MODELS_DIR / name / f).read_bytes():
                            bad.append(f"{name}/{f}")
                if bad:
                    print("differs from the committed files: " + ", ".join(bad))
                    return 1
                print("reproduced: committed models are byte-identical to a fresh training run")
                return 0
        reports = args.reports or (
            args.out / "training" / "reports" if args.out == MODELS_DIR else args.out / "reports"
        )
        val, res = pipeline.run(args.out, reports)
    except DataValidationError as exc:
        print(f"training data failed validation:\n{exc}", file=sys.stderr)
        return 2
    summary = {
        "valuation": {
            "version": val["version"],
            "size_bytes": val["size_bytes"],
            "heldout_internal": {
                k: val["metrics"]["heldout_internal"][k]["mape_pct"] for k in ("model", "reference")
            },
        },
        "residual": {"version": res["version"], "size_bytes": res["size_bytes"]},
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
