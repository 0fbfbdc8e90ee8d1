"""``kioskmatch kiosk check-photo FILE [--json]``.

The lead's ``kiosk`` command group calls :func:`register_kiosk` with its sub-subparsers.
Exit status: 0 when the check ran (whatever the verdict), 2 when FILE cannot be read as an image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.camera.errors import ImageDecodeError
from edge.camera.pipeline import check_photo

__all__ = ["register_kiosk"]

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register_kiosk(kiosk_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``check-photo`` to the ``kiosk`` command group."""
    parser = kiosk_subparsers.add_parser(
        "check-photo",
        help="run the photo quality gates on an image file",
        description="Check an image against the kiosk's quality gates (sharpness, exposure, "
        "resolution, glare). Exit 0 when the check ran, whatever the verdict; 2 when the file "
        "cannot be read as an image.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="image file (JPEG, PNG, ...)")
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"passed": bool, "reasons": [...], "metrics": {...}} on stdout',
    )
    parser.set_defaults(func=_check_photo)


def _check_photo(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        result = check_photo(path)
    except ImageDecodeError as exc:
        sys.stderr.write(f"error: cannot read {path} as an image: {exc.why}\n")
        return EXIT_BAD_INPUT
    if args.json:
        sys.stdout.write(json.dumps(result.as_json(), sort_keys=True) + "\n")
        return EXIT_OK
    verdict = "passed" if result.passed else "failed: " + ", ".join(result.reasons)
    lines = [f"{path}: {verdict}"]
    lines += [f"  {name:<18} {value:g}" for name, value in result.metrics.items()]
    # stdout.write rather than print: the project lints print() out of library packages.
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK
