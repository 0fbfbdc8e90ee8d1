"""Load and validate the training data sets (numpy only; no TensorFlow).

Validation runs before any fit: schema (columns, types), ranges, duplicates and price outliers
against a robust per-trim log-linear fit. Errors stop the run; warnings go into the report and the
model cards. The files' sha256 are pinned in ``data/README.md`` and here, so a changed file is
noticed rather than silently trained on.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
KBB_FILE = "kbb_gm_2005_train.csv"
THREE_CARS_FILE = "three_cars_2017.csv"

PINNED_SHA256 = {
    KBB_FILE: "db0476631015a9003bfef1b755d668047d214334cc703662f218a8ade20502ee",
    THREE_CARS_FILE: "bc10431a38b83b4a0edb71eea98e6af23d47f19c5ecfc85256e95426dea64d37",
}

KBB_COLUMNS = (
    "Price",
    "Mileage",
    "Make",
    "Model",
    "Trim",
    "Type",
    "Cylinder",
    "Liter",
    "Doors",
    "Cruise",
    "Sound",
    "Leather",
)
THREE_CARS_COLUMNS = ("CarType", "Age", "Price", "Mileage", "Mazda6", "Accord", "Maxima")
OPTION_COLUMNS = ("Cruise", "Sound", "Leather")


class DataValidationError(Exception):
    """The training data failed validation; the message lists every error."""


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Issue:
    level: str  # "error" | "warning" | "info"
    check: str
    message: str


@dataclass
class ValidationReport:
    file: str
    sha256: str
    rows: int
    issues: list[Issue] = field(default_factory=list)
    stats: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    def add(self, level: str, check: str, message: str) -> None:
        self.issues.append(Issue(level, check, message))

    def markdown(self) -> str:
        lines = [f"## `{self.file}`", "", f"- sha256: `{self.sha256}`", f"- rows: {self.rows}"]
        lines += [f"- {k}: {v}" for k, v in self.stats.items()]
        lines.append("")
        if not self.issues:
            lines.append("No issues.")
        else:
            lines += ["| level | check | message |", "|---|---|---|"]
            lines += [f"| {i.level} | {i.check} | {i.message} |" for i in self.issues]
        lines.append("")
        return "\n".join(lines)


@dataclass(frozen=True)
class KbbData:
    """The guidebook rows as arrays; ``keys`` are (make, model, trim) per row."""

    price: np.ndarray  # USD, float64
    miles: np.ndarray  # miles, float64
    options: np.ndarray  # [n, 3] float64 0/1: cruise, sound, leather
    keys: list[tuple[str, str, str]]
    body: list[str]
    cylinders: np.ndarray
    liters: np.ndarray
    doors: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, mask: np.ndarray) -> KbbData:
        idx = np.flatnonzero(mask)
        return KbbData(
            price=self.price[idx],
            miles=self.miles[idx],
            options=self.options[idx],
            keys=[self.keys[i] for i in idx],
            body=[self.body[i] for i in idx],
            cylinders=self.cylinders[idx],
            liters=self.liters[idx],
            doors=self.doors[idx],
        )


@dataclass(frozen=True)
class ThreeCarsData:
    car_type: list[str]
    age_years: np.ndarray
    price_kusd: np.ndarray
    mileage_kmi: np.ndarray  # thousands of miles

    def __len__(self) -> int:
        return len(self.car_type)


def _read_csv(
    path: Path, columns: tuple[str, ...], report: ValidationReport
) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = tuple(reader.fieldnames or ())
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        if missing:
            report.add("error", "schema", f"missing columns: {', '.join(missing)}")
        if extra:
            report.add("warning", "schema", f"unexpected columns ignored: {', '.join(extra)}")
        return list(reader)


def _number(
    report: ValidationReport, line: int, column: str, text: str, lo: float, hi: float
) -> float:
    try:
        value = float(text)
    except ValueError:
        report.add("error", "type", f"line {line}, {column}: {text!r} is not a number")
        return float("nan")
    if not np.isfinite(value) or not lo <= value <= hi:
        report.add("error", "range", f"line {line}, {column}: {value} outside [{lo}, {hi}]")
    return value


def _check_hash(path: Path, report: ValidationReport, pinned: bool) -> None:
    expected = PINNED_SHA256.get(path.name)
    if pinned and expected is not None and report.sha256 != expected:
        report.add(
            "error",
            "provenance",
            f"sha256 {report.sha256} differs from the pinned {expected}; "
            "update models/training/data/README.md and datasets.PINNED_SHA256 on purpose",
        )


def load_kbb(path: Path | None = None, *, pinned: bool = True) -> tuple[KbbData, ValidationReport]:
    """Read and validate the guidebook CSV. Raises DataValidationError on any error."""
    path = path or DATA_DIR / KBB_FILE
    report = ValidationReport(file=path.name, sha256=sha256_file(path), rows=0)
    _check_hash(path, report, pinned)
    raw = _read_csv(path, KBB_COLUMNS, report)
    report.rows = len(raw)
    if report.errors:
        raise DataValidationError(report.markdown())
    price, miles, opts, cyl, lit, doors = [], [], [], [], [], []
    keys: list[tuple[str, str, str]] = []
    body: list[str] = []
    for i, row in enumerate(raw, start=2):  # line 1 is the header
        price.append(_number(report, i, "Price", row["Price"], 500.0, 250_000.0))
        miles.append(_number(report, i, "Mileage", row["Mileage"], 0.0, 500_000.0))
        opts.append([_number(report, i, c, row[c], 0.0, 1.0) for c in OPTION_COLUMNS])
        for c in OPTION_COLUMNS:
            if row[c] not in ("0", "1"):
                report.add("error", "type", f"line {i}, {c}: {row[c]!r} is not 0 or 1")
        cyl.append(_number(report, i, "Cylinder", row["Cylinder"], 2.0, 16.0))
        lit.append(_number(report, i, "Liter", row["Liter"], 0.5, 10.0))
        doors.append(_number(report, i, "Doors", row["Doors"], 2.0, 5.0))
        key = (row["Make"].strip(), row["Model"].strip(), row["Trim"].strip())
        if not all(key):
            report.add("error", "schema", f"line {i}: empty Make/Model/Trim")
        keys.append(key)
        body.append(row["Type"].strip())
    data = KbbData(
        price=np.array(price),
        miles=np.array(miles),
        options=np.array(opts),
        keys=keys,
        body=body,
        cylinders=np.array(cyl),
        liters=np.array(lit),
        doors=np.array(doors),
    )
    _kbb_checks(raw, data, report)
    if report.errors:
        raise DataValidationError(report.markdown())
    return data, report


def _kbb_checks(raw: list[dict[str, str]], data: KbbData, report: ValidationReport) -> None:
    dup = Counter(tuple(r[c] for c in KBB_COLUMNS) for r in raw)
    n_dup = sum(v - 1 for v in dup.values() if v > 1)
    if n_dup:
        report.add(
            "warning", "duplicates", f"{n_dup} exact duplicate rows (kept: guidebook repeats)"
        )
    # One catalogue entry must have one body/engine description.
    attrs: dict[tuple[str, str, str], set[tuple[str, float, float, float]]] = {}
    for k, b, c, lit, d in zip(
        data.keys, data.body, data.cylinders, data.liters, data.doors, strict=True
    ):
        attrs.setdefault(k, set()).add((b, c, lit, d))
    for k, s in attrs.items():
        if len(s) > 1:
            report.add(
                "error", "catalogue", f"{'|'.join(k)} has conflicting attributes {sorted(s)}"
            )
    per_key = Counter(data.keys)
    small = [f"{'|'.join(k)} ({n})" for k, n in per_key.items() if n < 5]
    if small:
        report.add("warning", "coverage", "few rows for: " + ", ".join(small))
    large = [f"{'|'.join(k)} ({n})" for k, n in per_key.items() if n > 10]
    if large:
        report.add(
            "warning",
            "coverage",
            "more rows than the usual 8 (likely several real trims under one label, so a wider "
            "spread): " + ", ".join(large),
        )
    # Price outliers: robust residuals of the log-linear reference fit.
    from models.training.valuation_fit import Catalogue, fit_reference

    cat = Catalogue.from_data(data)
    ref = fit_reference(data, cat)
    resid = np.log(data.price) - np.log(ref.predict(data, cat))
    mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
    z = np.abs(resid) / mad
    for i in np.flatnonzero(z > 4.0):
        report.add(
            "warning",
            "outlier",
            f"line {i + 2}: {'|'.join(data.keys[i])} at {data.miles[i]:.0f} mi priced "
            f"{data.price[i]:.0f} USD is {100 * resid[i]:+.1f}% from the reference fit "
            f"({z[i]:.1f} robust sd); kept",
        )
    report.stats.update(
        {
            "catalogue entries (make|model|trim)": str(len(per_key)),
            "price range (USD)": f"{data.price.min():.0f} – {data.price.max():.0f}",
            "mileage range (miles)": f"{data.miles.min():.0f} – {data.miles.max():.0f}",
            "robust residual sd of log price (reference fit)": f"{100 * mad:.2f}%",
        }
    )


def load_three_cars(
    path: Path | None = None, *, pinned: bool = True
) -> tuple[ThreeCarsData, ValidationReport]:
    """Read and validate the 2017 listings. Raises DataValidationError on any error."""
    path = path or DATA_DIR / THREE_CARS_FILE
    report = ValidationReport(file=path.name, sha256=sha256_file(path), rows=0)
    _check_hash(path, report, pinned)
    raw = _read_csv(path, THREE_CARS_COLUMNS, report)
    report.rows = len(raw)
    if report.errors:
        raise DataValidationError(report.markdown())
    types, age, price, mileage = [], [], [], []
    for i, row in enumerate(raw, start=2):
        t = row["CarType"].strip()
        if t not in ("Mazda6", "Accord", "Maxima"):
            report.add("error", "schema", f"line {i}, CarType: unknown {t!r}")
        if row.get(t) != "1":
            report.add("error", "schema", f"line {i}: one-hot column {t} is not 1")
        types.append(t)
        age.append(_number(report, i, "Age", row["Age"], 0.0, 40.0))
        price.append(_number(report, i, "Price", row["Price"], 0.2, 200.0))
        mileage.append(_number(report, i, "Mileage", row["Mileage"], 0.0, 400.0))
    data = ThreeCarsData(types, np.array(age), np.array(price), np.array(mileage))
    dup = Counter(tuple(r[c] for c in THREE_CARS_COLUMNS) for r in raw)
    n_dup = sum(v - 1 for v in dup.values() if v > 1)
    if n_dup:
        report.add("warning", "duplicates", f"{n_dup} exact duplicate rows (kept)")
    if not report.errors:
        from models.training.residual_fit import fit_residual

        fit = fit_residual(data)
        resid = np.log(data.price_kusd) - fit.predict_log(data)
        mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
        for i in np.flatnonzero(np.abs(resid) > 4.0 * mad):
            report.add(
                "warning",
                "outlier",
                f"line {i + 2}: {data.car_type[i]} age {data.age_years[i]:.0f} at "
                f"{data.mileage_kmi[i]:.1f}k mi priced {data.price_kusd[i]:.1f}k USD is "
                f"{100 * resid[i]:+.0f}% from the fit; kept",
            )
        report.stats.update(
            {
                "age range (years)": f"{data.age_years.min():.0f} – {data.age_years.max():.0f}",
                "mileage range (thousand miles)": f"{data.mileage_kmi.min():.1f} – "
                f"{data.mileage_kmi.max():.1f}",
                "price range (thousand USD)": f"{data.price_kusd.min():.1f} – "
                f"{data.price_kusd.max():.1f}",
            }
        )
    if report.errors:
        raise DataValidationError(report.markdown())
    return data, report
