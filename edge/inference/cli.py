"""``kioskmatch valuation predict --csv IN --out OUT``: catalogue base prices for guidebook rows.

IN has the guidebook CSV's columns (``Make, Model, Trim, Mileage, Cruise, Sound, Leather``;
``Price``, ``Type`` and the engine columns may be present, ``Type`` is checked against the
catalogue's body). Mileage is in **miles**, as in the training data. OUT has one row per input row,
in order: ``line, status, value, low, high, interval, low80, high80, currency, model_version,
flags, reason`` with money in **US dollars** (2 decimals, the unit of the CSV's ``Price``) at the
catalogue's 2005 price level. These rows carry no age, so the value is step 1 of the composition
(the catalogue base), computed by the TFLite model through the edge runtime.

Exit status: 0 when every row was processed (a row outside the catalogue gets
``status=manual_appraisal_required`` and a reason), 2 for bad input (the message names file, line
and column), 1 when the models or the runtime cannot be loaded.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge.inference.errors import InferenceError, InputError
from edge.inference.valuator import INTERVAL, GuidebookRow, Quote, Valuator

logger = logging.getLogger(__name__)

REQUIRED = ("Make", "Model", "Trim", "Mileage", "Cruise", "Sound", "Leather")
OUT_COLUMNS = (
    "line",
    "status",
    "value",
    "low",
    "high",
    "interval",
    "low80",
    "high80",
    "currency",
    "model_version",
    "flags",
    "reason",
)
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


@dataclass(frozen=True)
class CsvInputError(Exception):
    """A bad input file, with where: file, line (1 = header) and column."""

    file: str
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        col = f": column {self.column}" if self.column else ""
        return f"{self.file}:{self.line}{col}: {self.message}"


def _flag(file: str, line: int, column: str, text: str) -> bool:
    t = text.strip().casefold()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise CsvInputError(file, line, column, f"{text!r} is not 0 or 1")


def read_rows(path: Path) -> list[tuple[int, GuidebookRow]]:
    """Parse the input CSV into rows with their line numbers; raises CsvInputError."""
    name = str(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvInputError(name, 0, None, f"cannot read the file: {exc.strerror}") from exc
    with fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CsvInputError(name, 1, None, f"not a CSV file: {exc}") from exc
        if not header:
            raise CsvInputError(name, 1, None, "the file is empty (expected a header row)")
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise CsvInputError(
                name, 1, missing[0], "missing column (header has: " + ", ".join(header) + ")"
            )
        rows: list[tuple[int, GuidebookRow]] = []
        try:
            for rec in reader:
                line = reader.line_num
                if None in rec:
                    raise CsvInputError(name, line, None, "more fields than the header")
                for c in REQUIRED:
                    if rec.get(c) is None:
                        raise CsvInputError(name, line, c, "missing value (short row)")
                for c in ("Make", "Model", "Trim"):
                    if not rec[c].strip():
                        raise CsvInputError(name, line, c, "empty")
                text = rec["Mileage"]
                try:
                    miles = float(text)
                except ValueError:
                    raise CsvInputError(
                        name, line, "Mileage", f"{text!r} is not a number (miles)"
                    ) from None
                if not math.isfinite(miles) or miles < 0:
                    raise CsvInputError(
                        name, line, "Mileage", f"{text!r} is not a non-negative number of miles"
                    )
                rows.append(
                    (
                        line,
                        GuidebookRow(
                            make=rec["Make"],
                            model=rec["Model"],
                            trim=rec["Trim"],
                            miles=miles,
                            cruise=_flag(name, line, "Cruise", rec["Cruise"]),
                            sound=_flag(name, line, "Sound", rec["Sound"]),
                            leather=_flag(name, line, "Leather", rec["Leather"]),
                            body=(rec.get("Type") or "").strip() or None,
                        ),
                    )
                )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CsvInputError(name, reader.line_num, None, f"malformed CSV: {exc}") from exc
    return rows


def _money(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def format_row(line: int, q: Quote) -> dict[str, str]:
    valued = q.value_usd is not None
    return {
        "line": str(line),
        "status": q.status.value,
        "value": _money(q.value_usd),
        "low": _money(q.low_usd),
        "high": _money(q.high_usd),
        "interval": f"{INTERVAL:g}" if valued else "",
        "low80": _money(q.low80_usd),
        "high80": _money(q.high80_usd),
        "currency": "USD",
        "model_version": q.model_version,
        "flags": "; ".join(q.flags),
        "reason": q.reason or "",
    }


def write_rows(out: Path, rows: list[dict[str, str]]) -> None:
    """Write atomically: a half-written OUT never replaces a good one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=OUT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def predict(args: argparse.Namespace) -> int:
    """Handler of ``valuation predict``."""
    try:
        rows = read_rows(args.csv)
    except CsvInputError as exc:
        logger.error("bad input: %s", exc)
        return 2
    try:
        valuator = Valuator.load(args.models_dir)
        quotes = valuator.quote([r for _, r in rows])
    except InputError as exc:
        logger.error("bad input in %s: %s", args.csv, exc)
        return 2
    except InferenceError as exc:
        logger.error("cannot value: %s", exc)
        return 1
    out_rows = [format_row(line, q) for (line, _), q in zip(rows, quotes, strict=True)]
    try:
        write_rows(args.out, out_rows)
    except OSError as exc:
        logger.error("cannot write %s: %s", args.out, exc)
        return 2
    valued = sum(1 for q in quotes if q.value_usd is not None)
    summary = {
        "rows": len(quotes),
        "valued": valued,
        "manual": len(quotes) - valued,
        "out": str(args.out),
        "model_version": valuator.model_version,
        "runtime": valuator.runtime,
    }
    logger.info(
        "valued %d of %d rows with %s (%s); wrote %s",
        valued,
        len(quotes),
        valuator.model_version,
        valuator.runtime,
        args.out,
    )
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``valuation predict`` to the ``kioskmatch`` command."""
    parser = subparsers.add_parser("valuation", help="on-device valuation models")
    sub = parser.add_subparsers(dest="valuation_command", metavar="ACTION", required=True)
    p = sub.add_parser(
        "predict",
        help="catalogue base prices for guidebook CSV rows",
        description="Value guidebook rows (mileage in miles) with the shipped TFLite model; "
        "OUT money is in US dollars at the catalogue's 2005 price level.",
    )
    p.add_argument(
        "--csv",
        type=Path,
        required=True,
        metavar="IN",
        help="input CSV with Make, Model, Trim, Mileage (miles), Cruise, Sound, Leather",
    )
    p.add_argument("--out", type=Path, required=True, metavar="OUT", help="output CSV")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="folder holding valuation/ and residual/ (default: the shipped models)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=predict)
