"""The shipped models through the real TFLite runtime: integrity checks, parity, composition."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.inference import (
    ModelIntegrityError,
    ModelNotFoundError,
    RuntimeUnavailableError,
    TfliteModel,
    ValuationRequest,
    Valuator,
    find_runtime,
)
from edge.inference.valuator import GuidebookRow
from edge.protocol import Condition, Dtc, ObdSummary, ValuationStatus, Vehicle
from models import MODELS_DIR, model_dir

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MALIBU = ValuationRequest(
    make="Chevrolet",
    model="Malibu",
    trim="LS",
    body="Sedan 4D",
    model_year=2019,
    odometer_km=60_000,
    options={"cruise": True},
)


@pytest.fixture(scope="module")
def valuator() -> Valuator:
    return Valuator.load()


def test_runtime_order_prefers_litert_and_reports_every_failure() -> None:
    assert find_runtime().name in ("ai_edge_litert", "tflite_runtime", "tensorflow")
    with pytest.raises(RuntimeUnavailableError) as err:
        find_runtime(("no_such_runtime_a", "no_such_runtime_b"))
    assert "no_such_runtime_a" in str(err.value) and "ai-edge-litert" in str(err.value)


def _copy_models(tmp_path: Path) -> Path:
    for name in ("valuation", "residual"):
        shutil.copytree(MODELS_DIR / name, tmp_path / name)
    return tmp_path


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    root = _copy_models(tmp_path)
    path = root / "valuation" / "model.tflite"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        Valuator.load(root)


def test_missing_model_file(tmp_path: Path) -> None:
    root = _copy_models(tmp_path)
    (root / "residual" / "model.tflite").unlink()
    with pytest.raises(ModelNotFoundError, match=r"model\.tflite is missing"):
        Valuator.load(root)


def test_manifest_tensors_must_match_the_model(tmp_path: Path) -> None:
    root = _copy_models(tmp_path)
    mpath = root / "residual" / "manifest.json"
    raw = json.loads(mpath.read_text(encoding="utf-8"))
    raw["inputs"][0]["shape"] = [-1, 3]
    mpath.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match="manifest says"):
        TfliteModel.load(root / "residual")


def test_ranges_follow_the_manifest_halfwidths(valuator: Valuator) -> None:
    m = json.loads((model_dir("valuation") / "manifest.json").read_text(encoding="utf-8"))
    last = m["valuation"]["catalogue"][-1]
    rows = [
        GuidebookRow("Buick", "Century", "Sedan 4D", 9135, True, True, False),
        GuidebookRow(last["make"], last["model"], last["trim"], 42000, True, False, True),
    ]
    quotes = valuator.quote(rows)
    assert all(q.value_usd is not None for q in quotes)
    assert len(m["training"]["parameters"]["mileage_table_log_per_1k_mi"]) > 40
    # Interval ends are the point value times exp(±q·s(value)), s as the manifest states it.
    for q in quotes:
        assert q.value_usd is not None
        h = _halfwidth(m, q.value_usd)
        assert q.low_usd == pytest.approx(q.value_usd * math.exp(-h), rel=1e-5)
        assert q.high_usd == pytest.approx(q.value_usd * math.exp(h), rel=1e-5)
    # The scatter is mostly dollars: the cheaper car's range is the wider in percent.
    cheap, dear = sorted(q.value_usd for q in quotes if q.value_usd is not None)
    assert cheap < dear and _halfwidth(m, cheap) > _halfwidth(m, dear)


def _halfwidth(manifest: dict[str, Any], value: float, coverage: str = "0.9") -> float:
    v = manifest["valuation"]
    scale = v["interval_scale"]
    return float(
        v["interval_log_halfwidth"][coverage]
        * math.sqrt((scale["usd"] / value) ** 2 + scale["rel"] ** 2)
    )


def test_guidebook_rows_are_priced_close_to_the_guidebook(valuator: Valuator) -> None:
    import csv

    from edge.inference.cli import read_rows

    path = MODELS_DIR / "training" / "data" / "kbb_gm_2005_train.csv"
    rows = [row for _, row in read_rows(path)]
    with path.open() as fh:
        data = list(csv.DictReader(fh))
    quotes = valuator.quote(rows)
    price = np.array([float(r["Price"]) for r in data])
    value = np.array([q.value_usd for q in quotes], dtype=float)
    assert np.mean(np.abs(value - price) / price) < 0.02  # in-sample; held-out is benchmarked


def test_more_miles_never_raise_the_guidebook_price(valuator: Valuator) -> None:
    miles = np.linspace(0, 60_000, 61)
    quotes = valuator.quote(
        [GuidebookRow("Chevrolet", "Malibu", "LS Sedan 4D", float(m)) for m in miles]
    )
    values = [q.value_usd for q in quotes]
    assert all(a >= b for a, b in itertools.pairwise(values))  # type: ignore[operator]


def test_mileage_beyond_the_data_widens_and_flags(valuator: Valuator) -> None:
    inside, beyond = valuator.quote(
        [
            GuidebookRow("Buick", "Century", "Sedan 4D", 40_000),
            GuidebookRow("Buick", "Century", "Sedan 4D", 90_000),
        ]
    )
    assert not inside.flags and beyond.flags and "beyond_data" in beyond.flags[0]
    assert inside.high_usd and inside.low_usd and beyond.high_usd and beyond.low_usd
    m = json.loads((model_dir("valuation") / "manifest.json").read_text(encoding="utf-8"))
    assert inside.value_usd and beyond.value_usd
    w_in = math.log(inside.high_usd / inside.low_usd) / 2
    w_beyond = math.log(beyond.high_usd / beyond.low_usd) / 2
    assert w_in == pytest.approx(_halfwidth(m, inside.value_usd), rel=1e-4)
    assert w_beyond == pytest.approx(1.5 * _halfwidth(m, beyond.value_usd), rel=1e-4)


def test_unknown_car_gets_no_number(valuator: Valuator) -> None:
    result = valuator.appraise(
        ValuationRequest(make="Ford", model="Focus", trim="SE", model_year=2018, odometer_km=1000),
        valued_at=NOW,
    )
    v = result.valuation
    assert v.status is ValuationStatus.MANUAL
    assert v.value_minor is None and v.low_minor is None and not v.factors
    assert v.reason and v.reason.startswith("manual appraisal required") and "Ford" in v.reason
    [q] = valuator.quote([GuidebookRow("Ford", "Focus", "SE", 1000)])
    assert q.value_usd is None and q.reason


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"model_year": None}, "model year unknown"),
        ({"odometer_km": None}, "odometer"),
        ({"model_year": 2031}, "after the valuation date"),
    ],
)
def test_missing_facts_mean_manual_appraisal(
    valuator: Valuator, change: dict[str, object], needle: str
) -> None:
    v = valuator.appraise(MALIBU.model_copy(update=change), valued_at=NOW).valuation
    assert v.status is ValuationStatus.MANUAL and v.reason and needle in v.reason


def test_malibu_2019_is_composed_factor_by_factor(valuator: Valuator) -> None:
    result = valuator.appraise(
        MALIBU.model_copy(
            update={
                "condition_grade": 4.0,
                "mil_on": True,
                "permanent_dtc_count": 1,
                "readiness_incomplete_count": 2,
            }
        ),
        valued_at=NOW,
    )
    v = result.valuation
    assert v.status is ValuationStatus.VALUED and v.currency == "USD" and v.interval == 0.9
    assert v.model_version == valuator.model_version
    codes = [f.code for f in v.factors]
    assert codes == [
        "catalogue_base",
        "ageing",
        "price_level",
        "condition",
        "obd_mil",
        "obd_permanent_dtc",
        "obd_readiness",
    ]
    running = v.factors[0].value_after_minor
    for f in v.factors[1:]:
        if f.ratio is not None:
            running = round(running * f.ratio)
        else:
            assert f.amount_minor is not None and f.amount_minor < 0
            running += f.amount_minor
        assert abs(f.value_after_minor - running) <= 2  # cents of rounding
    assert v.value_minor == v.factors[-1].value_after_minor
    assert v.low_minor is not None and v.high_minor is not None
    assert v.low_minor < v.value_minor < v.high_minor
    assert 5_000_00 < v.value_minor < 30_000_00  # a plausible 7-year-old mid-size sedan
    assert len(v.residual_curve) == 85 and v.residual_curve[0] == 1.0
    assert {f.code for f in result.flags} == {"valuation_model_year_approximated"}
    # The wire type round-trips.
    assert type(v).model_validate_json(v.model_dump_json()) == v


def test_request_from_report_parts() -> None:
    vehicle = Vehicle(
        make="Chevrolet",
        model="Malibu",
        trim="LS",
        body="Sedan 4D",
        model_year=2019,
        odometer_km=60_000,
        options={"cruise": True},
    )
    obd = ObdSummary(
        mil_on=True,
        dtcs=[Dtc(code="P0420", kind="permanent"), Dtc(code="P0171", kind="stored")],
        readiness={"catalyst": "incomplete", "misfire": "complete"},
    )
    req = ValuationRequest.from_report(vehicle, obd, Condition(grade=3.5))
    assert (req.mil_on, req.permanent_dtc_count, req.readiness_incomplete_count) == (True, 1, 1)
    assert req.condition_grade == 3.5 and req.odometer_km == 60_000


def test_old_high_mileage_car_is_valued_wider_and_flagged(valuator: Valuator) -> None:
    normal = valuator.appraise(MALIBU, valued_at=NOW).valuation
    old = valuator.appraise(
        MALIBU.model_copy(update={"model_year": 2005, "odometer_km": 420_000}), valued_at=NOW
    )
    v = old.valuation
    assert v.status is ValuationStatus.VALUED
    assert {"valuation_beyond_data", "residual_curve_extrapolated"} <= {f.code for f in old.flags}
    assert v.high_minor and v.low_minor and normal.high_minor and normal.low_minor
    assert math.log(v.high_minor / v.low_minor) > 1.4 * math.log(
        normal.high_minor / normal.low_minor
    )


@settings(max_examples=60, deadline=None)
@given(
    model_year=st.integers(1990, 2026),
    odometer_km=st.floats(0, 600_000, allow_nan=False),
    trim=st.sampled_from(["LS Sedan 4D", "LT Sedan 4D", "MAXX Hback 4D"]),
)
def test_residual_curve_never_rises(
    valuator: Valuator, model_year: int, odometer_km: float, trim: str
) -> None:
    req = ValuationRequest(
        make="Chevrolet", model="Malibu", trim=trim, model_year=model_year, odometer_km=odometer_km
    )
    v = valuator.appraise(req, valued_at=NOW).valuation
    c = v.residual_curve
    assert len(c) == 85 and c[0] == 1.0
    assert all(b <= a for a, b in itertools.pairwise(c))


@settings(max_examples=40, deadline=None)
@given(age=st.floats(0, 30), kmi=st.floats(0, 400), d_age=st.floats(0, 8), d_kmi=st.floats(0, 200))
def test_residual_model_output_is_non_increasing(
    age: float, kmi: float, d_age: float, d_kmi: float
) -> None:
    """The raw TFLite residual model: more age or mileage never raises the log value index."""
    model = _residual()
    pts = np.array([[age, kmi], [age + d_age, kmi + d_kmi]], dtype=np.float32)
    out = model.run(points=pts)["log_value"][:, 0]
    assert out[1] <= out[0] + 1e-6


_RESIDUAL: list[TfliteModel] = []


def _residual() -> TfliteModel:
    if not _RESIDUAL:
        _RESIDUAL.append(TfliteModel.load(model_dir("residual")))
    return _RESIDUAL[0]
