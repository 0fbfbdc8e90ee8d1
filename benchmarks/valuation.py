"""Valuation benchmark: the shipped approach against the log-linear least-squares reference.

Prints, side by side and from one run: MAPE, share within ±3.5 %, 80 %/90 % range coverage with
an exact binomial test at 5 %, p50 latency per vehicle through the edge runtime (pre- and
post-processing included), model file size, and the command that reproduces the models.

Rows scored:
- default: the pipeline's internal held-out split of the training file (stratified by trim,
  seed 2005). The approach and the reference are both fitted and calibrated on the other rows
  (numpy, same code as training), so neither saw the scored rows; then 20 more random splits for
  stability. The shipped .tflite was fitted on every training row, so it is timed, not scored.
- ``--holdout FILE``: rows with ``Price`` the shipped model never saw (such as the project owner's
  held-back fifth of the guidebook): the shipped .tflite through the edge runtime against the
  reference fitted on the whole training file.

Usage: ``.venv/bin/python benchmarks/valuation.py [--holdout FILE] [--repeats N] [--floor N]
[--bands N]``
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge.inference import GuidebookRow, TfliteModel, ValuationRequest, Valuator  # noqa: E402
from edge.inference.cli import read_rows  # noqa: E402
from models import MODELS_DIR  # noqa: E402
from models.training import datasets as ds  # noqa: E402
from models.training import pipeline  # noqa: E402
from models.training import valuation_fit as vf  # noqa: E402

REPRODUCE = "make train  (= .venv-train/bin/python -m models.training; --check verifies bytes)"


def _fmt_cov(covered: float | None, n: int, nominal: float) -> str:
    if covered is None:
        return "n/a"
    k = round(covered * n / 100)
    p = vf.binomial_two_sided_p(k, n, nominal)
    verdict = "ok" if p >= 0.05 else "REJECTED"
    return f"{covered:5.1f} % (p={p:.3f} {verdict})"


def _table(title: str, rows: list[tuple[str, vf.Scores]]) -> None:
    print(f"\n{title}")
    print(f"  {'':48s} {'MAPE':>8s} {'±3.5 %':>8s}   {'80 % range covers':26s} 90 % range covers")
    for name, s in rows:
        print(
            f"  {name:48s} {s.mape:7.3f}% {s.within_3_5:7.1f}%   "
            f"{_fmt_cov(s.coverage80, s.rows, 0.8):26s} {_fmt_cov(s.coverage90, s.rows, 0.9)}"
        )


def internal(repeats: int) -> None:
    data, _ = ds.load_kbb()
    cat = vf.Catalogue.from_data(data)
    spec = _shipped_spec()
    test = vf.stratified_split(data, pipeline.TEST_SHARE, pipeline.SEED)
    train, held = data.subset(~test), data.subset(test)
    rows = []
    for name, s in (
        (f"shipped approach ({spec.name})", spec),
        ("reference (log-linear LS)", vf.REFERENCE),
    ):
        model = vf.fit_calibrated(s, train, cat, seed=pipeline.SEED)
        rows.append((name, vf.score_model(model, held, cat)))
    _table(
        f"Internal held-out split: {len(train)} rows fit + calibrate, {len(held)} scored "
        f"(seed {pipeline.SEED})",
        rows,
    )
    wins_mape = wins_within = 0
    agg: dict[str, list[tuple[float, float, float]]] = {"model": [], "reference": []}
    # 90 % coverage by guidebook price, with the dollar-aware interval scale and with one
    # constant width: (price, covered) per scored row.
    by_price: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"dollar": [], "constant": []}
    for r in range(repeats):
        test = vf.stratified_split(data, pipeline.TEST_SHARE, 10_000 + r)
        train, held = data.subset(~test), data.subset(test)
        got = {}
        for key, s in (("model", spec), ("reference", vf.REFERENCE)):
            sc = vf.score_model(vf.fit_calibrated(s, train, cat, seed=r), held, cat)
            got[key] = sc
            agg[key].append((sc.mape, sc.within_3_5, sc.coverage90 or 0.0))
        wins_mape += got["model"].mape < got["reference"].mape
        wins_within += got["model"].within_3_5 >= got["reference"].within_3_5
        for key, dollar in (("dollar", True), ("constant", False)):
            m = vf.fit_calibrated(spec, train, cat, seed=r, dollar_scale=dollar)
            lp = m.predict_log(cat.index_of(held), held.miles, held.options)
            covered = np.abs(np.log(held.price) - lp) <= m.q90 * m.interval_scale(lp)
            by_price[key].append((held.price, covered))
    if repeats:
        print(f"\n{repeats} further random stratified 80/20 splits (mean):")
        for key in ("model", "reference"):
            a = np.array(agg[key])
            print(
                f"  {key:48s} MAPE {a[:, 0].mean():.3f}%  within ±3.5 % {a[:, 1].mean():.1f}%  "
                f"90 % covers {a[:, 2].mean():.1f}%"
            )
        print(
            f"  model better MAPE in {wins_mape}/{repeats} splits, within ±3.5 % at least as "
            f"good in {wins_within}/{repeats}"
        )
        print("  90 % range coverage by guidebook price (same splits):")
        bands = ((0, 14_000), (14_000, 18_000), (18_000, 25_000), (25_000, 35_000), (35_000, 1e9))
        for key, label in (("dollar", "dollar-aware scale (shipped)"), ("constant", "one width")):
            price = np.concatenate([p for p, _ in by_price[key]])
            covered = np.concatenate([c for _, c in by_price[key]])
            cells = [
                f"{100 * covered[(price >= lo) & (price < hi)].mean():5.1f}%" for lo, hi in bands
            ]
            print(f"    {label:30s} " + "  ".join(cells) + f"   all {100 * covered.mean():.1f}%")
        print("    (bands: under $14k, $14-18k, $18-25k, $25-35k, over $35k)")


def noise_floor(repeats: int) -> None:
    """How low can MAPE go on this data? Take the shipped shape, fitted on every row, as the
    exact guidebook formula; fit the rows' scatter as (a + b * price) dollars; simulate prices
    for these same cars and mileages; score the exact formula, the shipped approach and the
    reference on stratified 80/20 splits of the simulated rows."""
    data, _ = ds.load_kbb()
    cat = vf.Catalogue.from_data(data)
    spec = _shipped_spec()
    truth = vf.fit(spec, data, cat).predict(data, cat)
    resid = data.price - truth
    a, b = np.linalg.lstsq(np.c_[np.ones(len(data)), truth], np.abs(resid), rcond=None)[0]
    a, b = a * math.sqrt(math.pi / 2), b * math.sqrt(math.pi / 2)  # E|N(0, s)| = s·√(2/π)
    rng = np.random.default_rng(2005)
    got: dict[str, list[tuple[float, float]]] = {"exact": [], "model": [], "reference": []}
    for r in range(repeats):
        sim = replace(data, price=truth + rng.normal(0.0, 1.0, len(data)) * (a + b * truth))
        test = vf.stratified_split(sim, pipeline.TEST_SHARE, 20_000 + r)
        train, held = sim.subset(~test), sim.subset(test)
        preds = {
            "exact": truth[test],
            "model": vf.fit(spec, train, cat).predict(held, cat),
            "reference": vf.fit(vf.REFERENCE, train, cat).predict(held, cat),
        }
        for key, pred in preds.items():
            sc = vf.score(held.price, pred)
            got[key].append((sc.mape, sc.within_3_5))
    print(
        f"\nNoise floor: scatter ${a:,.0f} + {100 * b:.2f} % of the price per row; "
        f"{repeats} simulated 80/20 splits (mean):"
    )
    for key, label in (
        ("exact", "the exact formula (no estimation error)"),
        ("model", f"shipped approach ({spec.name})"),
        ("reference", "reference (log-linear LS)"),
    ):
        arr = np.array(got[key])
        print(f"  {label:48s} MAPE {arr[:, 0].mean():.3f}%  within ±3.5 % {arr[:, 1].mean():.1f}%")


def band_widths(seeds: int) -> None:
    """Why steps of 1,000 miles: cross-validated error of the piecewise + price-level shape on
    mileage floored to steps of other widths and offsets (raw mileage first)."""
    data, _ = ds.load_kbb()
    cat = vf.Catalogue.from_data(data)
    spec = next(s for s in vf.CANDIDATES if s.knots_miles and s.price_level_slope)
    print(f"\nMileage floored to steps ({spec.name}, repeated 5-fold CV, {seeds} seeds):")
    cases: list[tuple[str, np.ndarray]] = [("raw mileage", data.miles)]
    for width in (500, 900, 1_000, 1_100, 1_250, 2_000):
        cases.append((f"steps of {width:,}", np.floor(data.miles / width) * width))
    for offset in (250, 500, 750):
        floored = np.floor((data.miles - offset) / 1_000) * 1_000 + offset
        cases.append((f"steps of 1,000 from {offset}", floored))
    for label, miles in cases:
        sc = vf.cross_validate(spec, replace(data, miles=miles), cat, seeds=tuple(range(seeds)))
        print(f"  {label:28s} MAPE {sc.mape:.3f}%  within ±3.5 % {sc.within_3_5:.1f}%")


def _shipped_spec() -> vf.Spec:
    manifest = TfliteModel.load(MODELS_DIR / "valuation").manifest
    spec_name = manifest.metrics["heldout_internal"]["model"]["spec"]
    return next(s for s in vf.CANDIDATES if s.name == spec_name)


def holdout(path: Path, valuator: Valuator) -> None:
    # The CLI's reader: a malformed hold-out file gets the same file/line/column errors.
    rows = [row for _, row in read_rows(path)]
    with path.open(newline="", encoding="utf-8-sig") as fh:
        recs = list(csv.DictReader(fh))
    price = np.array([float(r["Price"]) for r in recs])
    quotes = valuator.quote(rows)
    known = np.array([q.value_usd is not None for q in quotes])
    if not known.all():
        print(f"  {int((~known).sum())} rows outside the catalogue (manual appraisal) not scored")
    qk = [q for q in quotes if q.value_usd is not None]
    arr = {
        k: np.array([getattr(q, k) for q in qk], dtype=float)
        for k in ("value_usd", "low80_usd", "high80_usd", "low_usd", "high_usd")
    }
    shipped = vf.score(
        price[known],
        arr["value_usd"],
        arr["low80_usd"],
        arr["high80_usd"],
        arr["low_usd"],
        arr["high_usd"],
    )
    train, _ = ds.load_kbb()
    cat = vf.Catalogue.from_data(train)
    ref = vf.fit_calibrated(vf.REFERENCE, train, cat, seed=pipeline.SEED)
    lookup = {(e.make, e.model, e.trim): i for i, e in enumerate(cat.entries)}
    idx = np.array([lookup.get((r.make, r.model, r.trim), -1) for r in rows])
    ok = known & (idx >= 0)
    lp = ref.predict_log(
        idx[ok],
        np.array([r.miles for r in rows])[ok],
        np.array([[r.cruise, r.sound, r.leather] for r in rows], dtype=float)[ok],
    )
    scale = ref.interval_scale(lp)
    refs = vf.score(
        price[ok],
        np.exp(lp),
        np.exp(lp - ref.q80 * scale),
        np.exp(lp + ref.q80 * scale),
        np.exp(lp - ref.q90 * scale),
        np.exp(lp + ref.q90 * scale),
    )
    _table(
        f"Held-out file {path} ({int(known.sum())} rows scored)",
        [
            (f"shipped {valuator.model_version} (TFLite)", shipped),
            ("reference (log-linear LS, all training rows)", refs),
        ],
    )


def latency(valuator: Valuator, n: int = 3000) -> None:
    row = [GuidebookRow("Chevrolet", "Malibu", "LS Sedan 4D", 24_000, True, False, True)]
    req = ValuationRequest(
        make="Chevrolet",
        model="Malibu",
        trim="LS",
        body="Sedan 4D",
        model_year=2019,
        odometer_km=62_000,
        options={"cruise": True},
        condition_grade=4,
        mil_on=True,
        readiness_incomplete_count=1,
    )
    now = datetime.now(UTC)
    for _ in range(200):  # warm up
        valuator.quote(row)
        valuator.appraise(req, valued_at=now)

    def p50(fn: object) -> float:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    q = p50(lambda: valuator.quote(row))
    a = p50(lambda: valuator.appraise(req, valued_at=now))
    vsize = (MODELS_DIR / "valuation" / "model.tflite").stat().st_size
    rsize = (MODELS_DIR / "residual" / "model.tflite").stat().st_size
    print(f"\nLatency per vehicle, runtime {valuator.runtime}, p50 of {n} (budget 0.2 ms):")
    print(f"  catalogue base (lookup + features + TFLite + range)  {q:.4f} ms")
    print(f"  full appraisal (base + residual curve + CPI + deductions + wire model)  {a:.4f} ms")
    print("  reference: numpy closed form, not a deployed model (no latency figure)")
    print(
        f"\nModel files: valuation {vsize:,} bytes, residual {rsize:,} bytes (budget 100 KB each)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--holdout", type=Path, help="CSV with Price the shipped model never saw")
    parser.add_argument("--repeats", type=int, default=20, help="extra random splits")
    parser.add_argument(
        "--floor", type=int, default=0, metavar="N", help="also simulate the noise floor (N splits)"
    )
    parser.add_argument(
        "--bands",
        type=int,
        default=0,
        metavar="N",
        help="also compare mileage step widths and offsets (N CV seeds)",
    )
    args = parser.parse_args()
    valuator = Valuator.load()
    print(
        f"kioskmatch valuation benchmark — {valuator.model_version}, "
        f"{valuator.residual_model_version}"
    )
    if args.holdout:
        holdout(args.holdout, valuator)
    internal(args.repeats)
    if args.floor:
        noise_floor(args.floor)
    if args.bands:
        band_widths(args.bands)
    latency(valuator)
    print(f"\nReproduce the models: {REPRODUCE}")
    print(
        "Reproduce this report: .venv/bin/python benchmarks/valuation.py"
        + (f" --holdout {args.holdout}" if args.holdout else "")
        + (f" --floor {args.floor}" if args.floor else "")
        + (f" --bands {args.bands}" if args.bands else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
