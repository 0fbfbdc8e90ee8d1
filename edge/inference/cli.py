"""``kioskmatch valuation predict --csv IN --out OUT``: catalogue base prices for guidebook rows.

IN has the guidebook CSV's columns (``Make, Model, Trim, Mileage, Cruise, Sound, Leather``;
``Price``, ``Type`` and the engine columns may be present, ``Type`` is checked against the
catalogue's body). Mileage is in **miles**, as in the training data, written in plain decimal
digits (``8221`` or ``8221.5``: not ``1_000``, ``1e3`` or digits of other scripts). OUT has one
row per input row, in order: ``line, status, value, low, high, interval, low80, high80,
currency, model_version, flags, reason`` with money in **US dollars** (2 decimals, the unit of
the CSV's ``Price``) at the catalogue's 2005 price level. These rows carry no age, so the value
is step 1 of the composition (the catalogue base), computed by the TFLite model through the edge
runtime.

Exit status: 0 when every row was processed: a row outside the catalogue gets
``status=manual_appraisal_required`` and a reason, a row that cannot be read (not a number, a
short row...) gets ``status=invalid_input`` with the column and what is wrong, and the other rows
are valued all the same. 2 when IN is no use at all (unreadable, empty, a required column missing;
the message names file, line and column) or OUT cannot be written; 1 when the models or the
runtime cannot be loaded. Long files are read and valued in chunks, with progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edge.inference.errors import InferenceError, InputError
from edge.inference.valuator import INTERVAL, GuidebookRow, Quote, Valuator
from kioskmatch.progress import CliProgress

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
INVALID = "invalid_input"  # OUT status of a row that could not be read
CHUNK_ROWS = 4096
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}
# ASCII digits only: the regex class \d would also match Arabic-Indic and other digits. The sign
# is matched so that a negative mileage is named as such.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


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


def _open_rows(path: Path) -> tuple[TextIO, csv.DictReader[str]]:
    """Open IN and check its header; raises CsvInputError for a file that is no use at all."""
    name = str(path)
    try:
        # Bytes that are not UTF-8 spoil their row only (U+FFFD is refused per row below).
        fh = path.open(newline="", encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise CsvInputError(name, 0, None, f"cannot read the file: {exc.strerror}") from exc
    reader = csv.DictReader(fh)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        fh.close()
        raise CsvInputError(name, 1, None, f"not a CSV file: {exc}") from exc
    if not header:
        fh.close()
        raise CsvInputError(name, 1, None, "the file is empty (expected a header row)")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        fh.close()
        raise CsvInputError(
            name, 1, missing[0], "missing column (header has: " + ", ".join(header) + ")"
        )
    return fh, reader


def _parse_row(name: str, line: int, rec: dict[str | Any, Any]) -> GuidebookRow:
    if None in rec:
        raise CsvInputError(name, line, None, "more fields than the header")
    for c in REQUIRED:
        if rec.get(c) is None:
            raise CsvInputError(name, line, c, "missing value (short row)")
        if "\ufffd" in rec[c]:
            raise CsvInputError(name, line, c, "not UTF-8 text")
    for c in ("Make", "Model", "Trim"):
        if not rec[c].strip():
            raise CsvInputError(name, line, c, "empty")
    miles = _miles(name, line, rec["Mileage"])
    return GuidebookRow(
        make=rec["Make"],
        model=rec["Model"],
        trim=rec["Trim"],
        miles=miles,
        cruise=_flag(name, line, "Cruise", rec["Cruise"]),
        sound=_flag(name, line, "Sound", rec["Sound"]),
        leather=_flag(name, line, "Leather", rec["Leather"]),
        body=(rec.get("Type") or "").strip() or None,
    )


def _miles(name: str, line: int, text: str) -> float:
    """Mileage as plain decimal digits (``8221``, ``8221.5``; spaces around are fine).

    ``float()`` alone also reads ``1_000``, ``1e3``, ``nan`` and digits of other scripts
    (``٣٠٠٠`` is 3000): in a guidebook row those are typos or another system's export, so they
    are refused rather than guessed at.
    """
    plain = text.strip(" \t")
    if not _PLAIN_DECIMAL.fullmatch(plain):
        other_digits = any(c.isdigit() and not ("0" <= c <= "9") for c in plain)
        hint = "only the digits 0-9" if other_digits else "digits 0-9 and at most one '.'"
        raise CsvInputError(
            name,
            line,
            "Mileage",
            f"{text!r} is not a number of miles in plain decimal ({hint}, e.g. 8221 or 8221.5)",
        )
    miles = float(plain)
    if not math.isfinite(miles) or miles < 0:
        raise CsvInputError(
            name, line, "Mileage", f"{text!r} is not a non-negative number of miles"
        )
    return miles


def iter_rows(path: Path) -> Generator[tuple[int, GuidebookRow | CsvInputError]]:
    """Each data row of IN with its line number, parsed, or the error that row has.

    A bad row does not stop the others; a file that is no use at all (unreadable, empty, a
    required column missing) raises :class:`CsvInputError` here, before any row.
    """
    fh, reader = _open_rows(path)
    return _each_row(str(path), fh, reader)  # close() it if not read to the end


def _each_row(
    name: str, fh: TextIO, reader: csv.DictReader[str]
) -> Generator[tuple[int, GuidebookRow | CsvInputError]]:
    with fh:
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield (
                    reader.line_num,
                    CsvInputError(name, reader.line_num, None, f"malformed CSV: {exc}"),
                )
                continue
            line = reader.line_num
            try:
                yield line, _parse_row(name, line, rec)
            except CsvInputError as exc:
                yield line, exc


def read_rows(path: Path) -> list[tuple[int, GuidebookRow]]:
    """Parse the whole input CSV strictly: raises CsvInputError at the first bad row."""
    rows: list[tuple[int, GuidebookRow]] = []
    with closing(iter_rows(path)) as parsed:
        for line, row in parsed:
            if isinstance(row, CsvInputError):
                raise row
            rows.append((line, row))
    return rows


def count_rows(path: Path) -> int:
    """Data rows in IN, for progress (physical lines less the header; quoted newlines aside)."""
    with path.open("rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


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


def invalid_row(line: int, error: CsvInputError, model_version: str) -> dict[str, str]:
    """The OUT row of an input row that could not be read: kept in place, with why."""
    col = f"column {error.column}: " if error.column else ""
    return {
        **dict.fromkeys(OUT_COLUMNS, ""),
        "line": str(line),
        "status": INVALID,
        "currency": "USD",
        "model_version": model_version,
        "reason": f"{col}{error.message}",
    }


@contextmanager
def _atomic_writer(out: Path) -> Iterator[csv.DictWriter[str]]:
    """Rows written to a temporary file that replaces OUT only when all went well, so a
    half-written OUT never replaces a good one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=OUT_COLUMNS)
            writer.writeheader()
            yield writer
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_rows(out: Path, rows: list[dict[str, str]]) -> None:
    """Write OUT atomically."""
    with _atomic_writer(out) as writer:
        writer.writerows(rows)


def predict(args: argparse.Namespace) -> int:
    """Handler of ``valuation predict``."""
    try:
        valuator = Valuator.load(args.models_dir)
    except InferenceError as exc:
        logger.error("cannot value: %s", exc)
        return 1
    try:
        rows = iter_rows(args.csv)
        total = count_rows(args.csv)
    except CsvInputError as exc:
        logger.error("bad input: %s", exc)
        return 2
    counts = {"rows": 0, "valued": 0, "manual": 0, "invalid": 0}
    invalid_examples: list[str] = []
    try:
        with (
            closing(rows),
            _atomic_writer(args.out) as writer,
            CliProgress(total, "rows valued", logger) as progress,
        ):
            # Chunks keep memory bounded on long files and still give TFLite real batches.
            for chunk in _chunks(rows, CHUNK_ROWS):
                good = [(line, r) for line, r in chunk if not isinstance(r, CsvInputError)]
                quotes = iter(valuator.quote([r for _, r in good]))
                for line, row in chunk:
                    if isinstance(row, CsvInputError):
                        counts["invalid"] += 1
                        if len(invalid_examples) < 5:
                            invalid_examples.append(str(row))
                        writer.writerow(invalid_row(line, row, valuator.model_version))
                        continue
                    quote = next(quotes)
                    counts["valued" if quote.value_usd is not None else "manual"] += 1
                    writer.writerow(format_row(line, quote))
                counts["rows"] += len(chunk)
                progress.update(counts["rows"])
    except InputError as exc:
        logger.error("bad input in %s: %s", args.csv, exc)
        return 2
    except InferenceError as exc:
        logger.error("cannot value: %s", exc)
        return 1
    except OSError as exc:
        logger.error("cannot write %s: %s", args.out, exc)
        return 2
    if counts["invalid"]:
        logger.warning(
            "%d of %d rows could not be read (status %s in %s), e.g. %s",
            counts["invalid"],
            counts["rows"],
            INVALID,
            args.out,
            "; ".join(invalid_examples),
        )
    logger.info(
        "valued %d of %d rows with %s (%s); wrote %s",
        counts["valued"],
        counts["rows"],
        valuator.model_version,
        valuator.runtime,
        args.out,
    )
    if args.json:
        summary = {
            **counts,
            "out": str(args.out),
            "model_version": valuator.model_version,
            "runtime": valuator.runtime,
        }
        sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def _chunks(
    rows: Iterator[tuple[int, GuidebookRow | CsvInputError]], size: int
) -> Iterator[list[tuple[int, GuidebookRow | CsvInputError]]]:
    chunk: list[tuple[int, GuidebookRow | CsvInputError]] = []
    for item in rows:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
