"""Reproduce every shipped model from the data: validate, select, fit, calibrate, export, document.

Writes, per model, ``models/<name>/model.tflite``, ``manifest.json`` and ``MODEL_CARD.md``, and
``models/training/reports/data_validation.md``. Seeds are fixed and the fits are closed-form least
squares, so a rerun on the same machine writes byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.training import datasets as ds
from models.training import residual_fit as rf
from models.training import valuation_fit as vf

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = "kioskmatch.model/1"
VALUATION_VERSION = "1.0.0"
RESIDUAL_VERSION = "1.0.0"
SEED = 2005
TEST_SHARE = 0.2
CV_SEEDS = (0, 1, 2, 3, 4)
KM_PER_MILE = 1.609344
# The guidebook prices are for model-year 2005 cars, read as about one year old at 2005 prices
# (their median mileage is about 20,000 miles, a year and a half at typical annual mileage).
CATALOGUE_PRICE_YEAR = 2005
CATALOGUE_MODEL_YEAR = 2005
REFERENCE_AGE_YEARS = 1.0
DEFAULT_ANNUAL_KMI = 12.0  # thousand miles a year when a car's own rate is unknown
ANNUAL_KMI_BOUNDS = (5.0, 30.0)
TERM_MONTHS = 84
COMMAND = "python -m models.training"
# A quantised variant ships only if it is smaller and loses no accuracy that matters.
MAX_VARIANT_MAPE_LOSS_PP = 0.02
MAX_VARIANT_REL_DIFF = 0.005


@dataclass
class Outputs:
    valuation_dir: Path
    residual_dir: Path
    reports_dir: Path


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _round(x: float, n: int = 6) -> float:
    return float(round(float(x), n))


def _tensor_specs(
    content: bytes, logical: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Input/output tensor names, dtypes and shapes as the converted flatbuffer has them."""
    from models.training.export import interpreter

    interp = interpreter(content)

    def spec(d: dict[str, Any]) -> dict[str, Any]:
        name = next((k for k in logical if k in d["name"]), d["name"])
        return {
            "name": name,
            "tensor": d["name"],
            "dtype": np.dtype(d["dtype"]).name,
            "shape": [int(v) for v in d["shape_signature"]],
            "description": logical.get(name, ""),
        }

    ins = [spec(d) for d in interp.get_input_details()]
    outs = [spec(d) for d in interp.get_output_details()]
    # Outputs have no meaningful tensor names; map them by the signature's output list.
    sig = interp.get_signature_list()["serving_default"]["outputs"]
    for o, name in zip(outs, sig, strict=True):
        o["name"], o["description"] = name, logical[name]
    for i in ins:
        if i["name"] not in logical:
            raise RuntimeError(f"unexpected input tensor {i['tensor']}")
    return sorted(ins, key=lambda s: s["name"]), outs


def _binomial(covered: int, n: int, p: float) -> dict[str, Any]:
    pv = vf.binomial_two_sided_p(covered, n, p)
    return {
        "covered": covered,
        "rows": n,
        "nominal": p,
        "p_value": _round(pv, 4),
        "consistent_at_5pct": pv >= 0.05,
    }


def evaluate_valuation(data: ds.KbbData, cat: vf.Catalogue, spec: vf.Spec) -> dict[str, Any]:
    """Internal held-out evaluation: fit + calibrate on ~80 % of each trim, score the rest."""
    test = vf.stratified_split(data, TEST_SHARE, SEED)
    train, held = data.subset(~test), data.subset(test)
    out: dict[str, Any] = {
        "split": {
            "seed": SEED,
            "test_share": TEST_SHARE,
            "train_rows": len(train),
            "test_rows": len(held),
        }
    }
    for key, s in (("model", spec), ("reference", vf.REFERENCE)):
        m = vf.fit_calibrated(s, train, cat, seed=SEED)
        sc = vf.score_model(m, held, cat)
        n = sc.rows
        out[key] = {
            "spec": s.name,
            **sc.as_dict(),
            "binomial80": _binomial(round(sc.coverage80 * n / 100), n, 0.8),
            "binomial90": _binomial(round(sc.coverage90 * n / 100), n, 0.9),
        }
    return out


def _variant_report(
    model: vf.FittedValuation,
    data: ds.KbbData,
    cat: vf.Catalogue,
    eval_model: vf.FittedValuation,
    held: ds.KbbData,
) -> tuple[str, bytes, list[dict[str, Any]]]:
    from models.training import export

    t_all = cat.index_of(data).astype(np.int32)
    f_all = np.c_[data.miles / vf.MILES_SCALE, data.options].astype(np.float32)
    rep = [[t_all[i : i + 1], f_all[i : i + 1]] for i in range(0, len(data), 4)]
    t_h = cat.index_of(held).astype(np.int32)
    f_h = np.c_[held.miles / vf.MILES_SCALE, held.options].astype(np.float32)
    exact_h = np.exp(eval_model.predict_log(t_h.astype(np.int64), held.miles, held.options))
    rows, contents = [], {}
    for variant in ("float32", "float16", "int8"):
        content = export.export_valuation(model, variant, rep if variant == "int8" else None)
        eval_content = export.export_valuation(
            eval_model, variant, rep if variant == "int8" else None
        )
        pred = next(
            iter(export.run_tflite(eval_content, {"trim_index": t_h, "features": f_h}).values())
        )[:, 0]
        ape = np.abs(pred - held.price) / held.price
        rows.append(
            {
                "variant": variant,
                "size_bytes": len(content),
                "sha256": _sha(content),
                "heldout_mape_pct": _round(100 * ape.mean(), 3),
                "heldout_within_3_5_pct": _round(100 * np.mean(ape <= 0.035), 2),
                "max_rel_diff_vs_exact": _round(float(np.max(np.abs(pred / exact_h - 1))), 6),
            }
        )
        contents[variant] = content
    base = rows[0]
    chosen = "float32"
    for r in rows[1:]:
        ok = (
            r["heldout_mape_pct"] - base["heldout_mape_pct"] <= MAX_VARIANT_MAPE_LOSS_PP
            and r["max_rel_diff_vs_exact"] <= MAX_VARIANT_REL_DIFF
        )
        smaller = r["size_bytes"] < base["size_bytes"]
        r["accuracy_holds"] = ok
        if ok and smaller and r["size_bytes"] < len(contents[chosen]):
            chosen = r["variant"]
    base["accuracy_holds"] = True
    for r in rows:
        r["shipped"] = r["variant"] == chosen
    return chosen, contents[chosen], rows


def train_valuation(out_dir: Path, report: ds.ValidationReport, data: ds.KbbData) -> dict[str, Any]:
    from models.training import export

    cat = vf.Catalogue.from_data(data)
    seeds = CV_SEEDS
    selection = []
    for spec in vf.CANDIDATES:
        sc = vf.cross_validate(spec, data, cat, seeds=seeds)
        selection.append(
            {
                "spec": spec.name,
                "description": spec.describe(),
                "cv_mape_pct": _round(sc.mape, 3),
                "cv_within_3_5_pct": _round(sc.within_3_5, 2),
            }
        )
        log.info(
            "candidate %s: CV MAPE %.3f%%, within ±3.5%% %.1f%%", spec.name, sc.mape, sc.within_3_5
        )
    best = min(selection, key=lambda r: (r["cv_mape_pct"], -r["cv_within_3_5_pct"]))
    spec = next(s for s in vf.CANDIDATES if s.name == best["spec"])
    log.info("selected %s", spec.name)
    model = vf.fit_calibrated(spec, data, cat, seed=SEED)
    heldout = evaluate_valuation(data, cat, spec)
    test = vf.stratified_split(data, TEST_SHARE, SEED)
    eval_model = vf.fit_calibrated(spec, data.subset(~test), cat, seed=SEED)
    chosen, content, variants = _variant_report(model, data, cat, eval_model, data.subset(test))
    # The shipped file must reproduce the numpy model it was built from.
    t = cat.index_of(data).astype(np.int32)
    f = np.c_[data.miles / vf.MILES_SCALE, data.options].astype(np.float32)
    got = next(iter(export.run_tflite(content, {"trim_index": t, "features": f}).values()))
    exact = np.exp(model.predict_log(t.astype(np.int64), data.miles, data.options))
    parity = float(np.max(np.abs(got[:, 0] / exact - 1)))
    if parity > MAX_VARIANT_REL_DIFF:
        raise RuntimeError(f"exported valuation model differs from the fit by {parity:.2%}")
    insample = vf.score_model(model, data, cat)
    inputs, outputs = _tensor_specs(
        content,
        {
            "trim_index": "catalogue index (see catalogue[].index), int32 [N]",
            "features": f"float32 [N, 4]: miles / {vf.MILES_SCALE:,.0f}, "
            "cruise, sound, leather (0/1)",
            "price": "float32 [N, 5] USD at the catalogue price level: "
            "value, low80, high80, low90, high90",
        },
    )
    sha = _sha(content)
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "name": "valuation",
        "kind": "valuation",
        "version": f"valuation-{VALUATION_VERSION}+{sha[:8]}",
        "file": "model.tflite",
        "sha256": sha,
        "size_bytes": len(content),
        "variant": chosen,
        "inputs": inputs,
        "outputs": outputs,
        "valuation": {
            "currency": "USD",
            "price_level_year": CATALOGUE_PRICE_YEAR,
            "catalogue_model_year": CATALOGUE_MODEL_YEAR,
            "reference_age_years": REFERENCE_AGE_YEARS,
            "reference_miles": _round(float(np.median(data.miles)), 1),
            "miles_scale": vf.MILES_SCALE,
            "km_per_mile": KM_PER_MILE,
            "miles_range": [float(data.miles.min()), float(data.miles.max())],
            "options": ["cruise", "sound", "leather"],
            "price_columns": ["value", "low80", "high80", "low90", "high90"],
            "interval_log_halfwidth": {"0.8": _round(model.q80), "0.9": _round(model.q90)},
            "interval_scale": {"usd": _round(model.scale_usd, 3), "rel": _round(model.scale_rel)},
            "catalogue": [
                {
                    "index": i,
                    "make": e.make,
                    "model": e.model,
                    "trim": e.trim,
                    "body": e.body,
                    "cylinders": e.cylinders,
                    "liters": e.liters,
                    "doors": e.doors,
                    "rows": e.rows,
                    "miles_min": e.miles_min,
                    "miles_max": e.miles_max,
                }
                for i, e in enumerate(cat.entries)
            ],
        },
        "training": {
            "command": COMMAND,
            "seed": SEED,
            "data": [{"file": report.file, "sha256": report.sha256, "rows": report.rows}],
            "model": spec.describe(),
            "parameters": {
                "center_log_usd": _round(model.center),
                "knots_miles": list(spec.knots_miles),
                "knot_weights": [_round(w) for w in model.knot_weights],
                "mileage_table_log_per_1k_mi": [_round(h) for h in model.table],
                "option_log_weights": {
                    k: _round(w)
                    for k, w in zip(
                        ("cruise", "sound", "leather"), model.option_weights, strict=True
                    )
                },
                **{k: _round(v) for k, v in model.extras.items()},
            },
            "selection": selection,
            "validation_warnings": [i.message for i in report.warnings],
        },
        "metrics": {
            "heldout_internal": heldout,
            "in_sample_all_rows": insample.as_dict(),
            "tflite_vs_fit_max_rel_diff": _round(parity, 8),
        },
        "variants": variants,
    }
    _write_model(out_dir, content, manifest, valuation_card(manifest))
    return manifest


def train_residual(
    out_dir: Path, report: ds.ValidationReport, data: ds.ThreeCarsData
) -> dict[str, Any]:
    from models.training import export

    model = rf.fit_residual_calibrated(data, seed=SEED)
    if model.beta_age > 0 or model.beta_mileage > 0:
        raise RuntimeError("residual slopes must be non-positive")
    content = export.export_residual(model)
    pts = np.c_[data.age_years, data.mileage_kmi].astype(np.float32)
    got = next(iter(export.run_tflite(content, {"points": pts}).values()))[:, 0]
    parity = float(np.max(np.abs(got - model.log_index(data.age_years, data.mileage_kmi))))
    if parity > 1e-4:
        raise RuntimeError(f"exported residual model differs from the fit by {parity}")
    inputs, outputs = _tensor_specs(
        content,
        {
            "points": "float32 [N, 2]: age in years, mileage in thousands of miles",
            "log_value": "float32 [N, 1]: log value index; exp(difference) is the value ratio",
        },
    )
    sha = _sha(content)
    ratio_1y = math.exp(model.beta_age)
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "name": "residual",
        "kind": "residual",
        "version": f"residual-{RESIDUAL_VERSION}+{sha[:8]}",
        "file": "model.tflite",
        "sha256": sha,
        "size_bytes": len(content),
        "variant": "float32",
        "inputs": inputs,
        "outputs": outputs,
        "residual": {
            "age_range_years": [float(data.age_years.min()), float(data.age_years.max())],
            "mileage_range_kmi": [float(data.mileage_kmi.min()), float(data.mileage_kmi.max())],
            "default_annual_kmi": DEFAULT_ANNUAL_KMI,
            "annual_kmi_bounds": list(ANNUAL_KMI_BOUNDS),
            "term_months": TERM_MONTHS,
            "interval_log_halfwidth": {"0.8": _round(model.q80), "0.9": _round(model.q90)},
        },
        "training": {
            "command": COMMAND,
            "seed": SEED,
            "data": [{"file": report.file, "sha256": report.sha256, "rows": report.rows}],
            "model": "log price = per-model intercept + beta_age·age + beta_mileage·mileage; "
            "slopes constrained <= 0; only the slopes ship",
            "parameters": {
                "beta_age_per_year": _round(model.beta_age),
                "beta_mileage_per_kmi": _round(model.beta_mileage),
                "intercepts_log_kusd": {k: _round(v) for k, v in model.intercepts.items()},
            },
            "selection_cv_rmse_log": {
                k: _round(v, 4) for k, v in rf.alternative_shapes_cv(data).items()
            },
            "validation_warnings": [i.message for i in report.warnings],
        },
        "metrics": {
            "cv_rmse_log_price": _round(model.rmse_cv, 4),
            "value_ratio_per_year": _round(ratio_1y, 4),
            "value_ratio_per_10k_miles": _round(math.exp(10 * model.beta_mileage), 4),
            "tflite_vs_fit_max_abs_diff": _round(parity, 8),
        },
        "variants": [
            {
                "variant": "float32",
                "size_bytes": len(content),
                "sha256": sha,
                "shipped": True,
                "accuracy_holds": True,
            }
        ],
    }
    _write_model(out_dir, content, manifest, residual_card(manifest))
    return manifest


def _write_model(out_dir: Path, content: bytes, manifest: dict[str, Any], card: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.tflite").write_bytes(content)
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out_dir / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    log.info(
        "wrote %s (%d bytes, sha256 %s)", out_dir / "model.tflite", len(content), manifest["sha256"]
    )


def run(models_dir: Path, reports_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate the data, train, export and document both models."""
    kbb, kbb_report = ds.load_kbb()
    cars, cars_report = ds.load_three_cars()
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "data_validation.md").write_text(
        "# Training data validation\n\nWritten by `python -m models.training`.\n\n"
        + kbb_report.markdown()
        + "\n"
        + cars_report.markdown(),
        encoding="utf-8",
    )
    val = train_valuation(models_dir / "valuation", kbb_report, kbb)
    res = train_residual(models_dir / "residual", cars_report, cars)
    return val, res


# --- model cards -------------------------------------------------------------------------------


def _md_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


_METRIC_COLS = [
    "model",
    "MAPE %",
    "within ±3.5 %",
    "80 % range covers %",
    "90 % range covers %",
    "binomial p (90 %)",
]
_VARIANT_COLS = [
    "variant",
    "size_bytes",
    "heldout_mape_pct",
    "heldout_within_3_5_pct",
    "max_rel_diff_vs_exact",
    "accuracy_holds",
    "shipped",
]


def _metric_row(label: str, r: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": label,
        "MAPE %": f"{r['mape_pct']:.3f}",
        "within ±3.5 %": f"{r['within_3_5_pct']:.1f}",
        "80 % range covers %": f"{r['coverage80_pct']:.1f}",
        "90 % range covers %": f"{r['coverage90_pct']:.1f}",
        "binomial p (90 %)": r["binomial90"]["p_value"],
    }


def _pct(log_halfwidth: float) -> str:
    return f"{100 * (math.exp(log_halfwidth) - 1):.2f}"


def _interval_examples(v: dict[str, Any]) -> list[dict[str, Any]]:
    usd, rel = v["interval_scale"]["usd"], v["interval_scale"]["rel"]
    rows = []
    for value in (12_000, 20_000, 30_000, 45_000):
        s = math.sqrt((usd / value) ** 2 + rel**2)
        rows.append(
            {
                "value": f"${value:,}",
                "80 % range": f"±{_pct(v['interval_log_halfwidth']['0.8'] * s)} %",
                "90 % range": f"±{_pct(v['interval_log_halfwidth']['0.9'] * s)} %",
            }
        )
    return rows


def valuation_card(m: dict[str, Any]) -> str:
    h = m["metrics"]["heldout_internal"]
    mo, ref = h["model"], h["reference"]
    v = m["valuation"]
    warnings = "\n".join(f"- {w}" for w in m["training"]["validation_warnings"]) or "- none"
    return f"""# Model card: catalogue valuation (`{m["version"]}`)

*Generated by `{m["training"]["command"]}`; do not edit by hand.*

## What it does
Given a catalogued 2005 General Motors car (make | model | trim), its mileage and three options
(cruise control, upgraded sound, leather), it returns the Kelley Blue Book 2005 retail price the
guidebook would give, with calibrated 80 % and 90 % ranges. This is step 1 of a kiosk valuation
("catalogue base"); the kiosk then ages the value with the residual-value model, moves it to
today's price level (US CPI-U) and applies condition and OBD deductions (see `docs/valuation.md`).

- Model: {m["training"]["model"]} (chosen by repeated stratified 5-fold cross-validation, table
  below). Fitted by least squares on log price (bounded, so the mileage table never rises);
  exported as a {m["variant"]} TFLite
  graph of {m["size_bytes"]:,} bytes (sha256 `{m["sha256"]}`).
- Inputs: catalogue index, miles / {v["miles_scale"]:,.0f} and the three options. **Units**: the
  data is in miles and US dollars; the kiosk works in km and cents, so the runtime converts
  km → miles (÷ {v["km_per_mile"]}) before the model and dollars → cents after it.
- Catalogue: {len(v["catalogue"])} make/model/trim entries (listed in `manifest.json`, with body,
  doors, cylinders and litres). A car outside it gets no number: "manual appraisal required".
- Mileage range of the data: {v["miles_range"][0]:,.0f}–{v["miles_range"][1]:,.0f} miles. Beyond
  it the value is given with a wider range (×1.5) and a flag.

## Intended use
An on-device first estimate of collateral value for inspection kiosks, reviewed by a licensed
appraiser before a lender funds against it. Not a substitute for a market valuation.

## Limits — read before relying on a number
- The data is a **guidebook replica for model-year 2005 cars**: it teaches the guidebook's
  structure (trim levels, mileage adjustment, options), not today's market.
- Pricing a **newer model year of a catalogued nameplate** (for example a 2019 Chevrolet Malibu LS)
  reuses the 2005 trim's price, ages it with the residual-value model and moves it by CPI-U. That is
  an **approximation, untested against real sales**. Lenders should retrain on their own sales data
  with the same pipeline (same CSV columns, `python -m models.training`) before relying on it.
- Several catalogue labels cover more than one real trim (Saturn Ion Sedan 4D, Quad Coupe 2D):
  their prices spread more than the ranges suggest for the average car.
- The ranges are calibrated for the guidebook rows (step 1). The kiosk widens them for ageing with
  the residual model's own out-of-fold error; that combination is an approximation.
- Condition: the guidebook prices assume a car in excellent condition; deductions are policy, not
  learned.

## Metrics on rows the model did not see
The project owner holds back about a fifth of the original data; this repository does not have
it. The figures below come from an internal stratified split of the training file
({h["split"]["train_rows"]} rows to fit and calibrate, {h["split"]["test_rows"]} held out, seed
{h["split"]["seed"]}); the shipped model is then refitted on all rows the same way.
`benchmarks/valuation.py` reproduces them and, given the held-back file, scores the shipped model.

{_md_table([_metric_row("this model", mo), _metric_row("reference", ref)], _METRIC_COLS)}

Goal from the brief: MAPE ≤ 1.9 % and ≥ 85 % within ±3.5 %. Near-identical cars in this data
(same trim and options, under 2,000 miles apart) differ by about 2.6 % per row, so that goal sits at
the data's noise floor; see `docs/valuation.md` for the analysis.

Intervals: normalised split-conformal, from out-of-fold errors (each training row scored by a
model that did not see it). The scatter around the guidebook is mostly a dollar amount, so a
range is wider in percent for a cheaper car: its log half-width is
q × √((usd / value)² + rel²) with usd = {v["interval_scale"]["usd"]:,.0f}, rel =
{v["interval_scale"]["rel"]:.4f}, q = {v["interval_log_halfwidth"]["0.8"]:.3f} (80 %) and
{v["interval_log_halfwidth"]["0.9"]:.3f} (90 %):

{_md_table(_interval_examples(v), ["value", "80 % range", "90 % range"])}

### Model selection (repeated stratified 5-fold CV on the training file)
{_md_table(m["training"]["selection"], ["spec", "cv_mape_pct", "cv_within_3_5_pct", "description"])}

### Quantised variants (held-out rows of the internal split)
{_md_table(m["variants"], _VARIANT_COLS)}

A variant ships only if it is smaller than float32 and loses at most
{MAX_VARIANT_MAPE_LOSS_PP} pp MAPE and {MAX_VARIANT_REL_DIFF:.1%} on any row. The model is a few
kilobytes; float16 adds dequantise ops and grows it, full-integer int8 loses accuracy on the
intercept table.

## Training data
`{m["training"]["data"][0]["file"]}` ({m["training"]["data"][0]["rows"]} rows, sha256
`{m["training"]["data"][0]["sha256"]}`): see `models/training/data/README.md` for source,
citation and licence. Validation warnings:
{warnings}

## Reproduce
`{m["training"]["command"]}` (TensorFlow from the `train` extra), seed {m["training"]["seed"]}.
"""


def residual_card(m: dict[str, Any]) -> str:
    r = m["residual"]
    p = m["training"]["parameters"]
    sel = [
        {"shape": k, "cv_rmse_log": v} for k, v in m["training"]["selection_cv_rmse_log"].items()
    ]
    warnings = "\n".join(f"- {w}" for w in m["training"]["validation_warnings"]) or "- none"
    return f"""# Model card: residual value (`{m["version"]}`)

*Generated by `{m["training"]["command"]}`; do not edit by hand.*

## What it does
A log value index
`f(age, mileage) = {p["beta_age_per_year"]}·age + {p["beta_mileage_per_kmi"]}·mileage`
(age in years, mileage in thousands of miles). The ratio of a car's value between two
points is
`exp(f(p2) − f(p1))`: about ×{m["metrics"]["value_ratio_per_year"]} per year and
×{m["metrics"]["value_ratio_per_10k_miles"]} per 10,000 miles. The kiosk uses it twice:
- ageing: from the catalogue's reference point (1 year old, its median mileage) to the car's
  age and mileage;
- the residual-value curve: the ratio at months 0–{r["term_months"]} of a loan term to today's
  value, with mileage accruing at the car's own annual rate (odometer ÷ age, bounded to
  {r["annual_kmi_bounds"][0]:.0f}–{r["annual_kmi_bounds"][1]:.0f} thousand miles a year) or
  {r["default_annual_kmi"]:.0f} thousand miles a year when the car is under a year old.

Both slopes are constrained to be ≤ 0, so the curve is non-increasing month by month (a property
test checks it on the shipped file). TFLite float32, {m["size_bytes"]:,} bytes,
sha256 `{m["sha256"]}`.

## Intended use and limits
- Fitted on 90 listings of three mid-size 2017 sedans (Mazda6, Accord, Maxima), ages
  {r["age_range_years"][0]:.0f}–{r["age_range_years"][1]:.0f} years and
  {r["mileage_range_kmi"][0]:.0f}–{r["mileage_range_kmi"][1]:.0f} thousand miles. Other segments
  (trucks, luxury cars) depreciate differently; the curve is an approximation for them.
- Beyond the data's age or mileage the kiosk gives a value with a wider range and a flag.
- The curve is in real terms (today's prices): it does not forecast inflation.
- Out-of-fold RMSE of log price is {m["metrics"]["cv_rmse_log_price"]} (listing-to-listing spread at
  the same age and mileage); the kiosk uses its conformal quantiles
  (80 %: {r["interval_log_halfwidth"]["0.8"]}, 90 %: {r["interval_log_halfwidth"]["0.9"]} in log) to
  widen the value's range once ageing applies.

## Model selection (repeated 5-fold CV, RMSE of log price)
{_md_table(sel, ["shape", "cv_rmse_log"])}

## Training data
`{m["training"]["data"][0]["file"]}` ({m["training"]["data"][0]["rows"]} rows, sha256
`{m["training"]["data"][0]["sha256"]}`), see `models/training/data/README.md`. Validation warnings:
{warnings}

## Reproduce
`{m["training"]["command"]}`, seed {m["training"]["seed"]}.
"""
