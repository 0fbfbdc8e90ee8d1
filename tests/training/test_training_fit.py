"""Training pipeline pieces that need numpy only: validation, fits, calibration, selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.training import datasets as ds
from models.training import residual_fit as rf
from models.training import valuation_fit as vf


@pytest.fixture(scope="module")
def kbb() -> ds.KbbData:
    return ds.load_kbb()[0]


def test_shipped_data_validates_with_warnings_only() -> None:
    data, report = ds.load_kbb()
    assert len(data) == 644 and not report.errors
    assert any(i.check == "outlier" for i in report.warnings)
    cars, report2 = ds.load_three_cars()
    assert len(cars) == 90 and not report2.errors


def test_bad_row_is_named_by_line_and_column(tmp_path: Path) -> None:
    src = ds.DATA_DIR / ds.KBB_FILE
    lines = src.read_text(encoding="utf-8").splitlines()
    lines[9] = lines[9].replace(lines[9].split(",")[1], "-40", 1)
    bad = tmp_path / ds.KBB_FILE
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ds.DataValidationError) as err:
        ds.load_kbb(bad, pinned=False)
    assert "line 10, Mileage" in str(err.value)


def test_changed_file_fails_the_pinned_hash(tmp_path: Path) -> None:
    bad = tmp_path / ds.THREE_CARS_FILE
    shutil.copy(ds.DATA_DIR / ds.THREE_CARS_FILE, bad)
    with bad.open("a", encoding="utf-8") as fh:
        fh.write("Accord,3,15.0,30.0,0,1,0\n")
    with pytest.raises(ds.DataValidationError, match="pinned"):
        ds.load_three_cars(bad)


def test_stratified_split_keeps_every_trim_in_training(kbb: ds.KbbData) -> None:
    test = vf.stratified_split(kbb, 0.2, 2005)
    train_keys = {k for k, t in zip(kbb.keys, test, strict=True) if not t}
    assert train_keys == set(kbb.keys)
    assert 0.18 < test.mean() < 0.27


@given(st.lists(st.floats(0, 1), min_size=5, max_size=200), st.sampled_from([0.8, 0.9]))
def test_conformal_quantile_covers_at_least_nominal(scores: list[float], cov: float) -> None:
    q = vf.conformal_quantile(np.array(scores), cov)
    assert np.mean(np.array(scores) <= q) >= min(1.0, cov)


def test_selected_model_beats_the_reference_in_cross_validation(kbb: ds.KbbData) -> None:
    cat = vf.Catalogue.from_data(kbb)
    ref = vf.cross_validate(vf.REFERENCE, kbb, cat, seeds=(0, 1))
    best = vf.cross_validate(vf.CANDIDATES[-1], kbb, cat, seeds=(0, 1))
    assert best.mape < ref.mape


def test_fit_is_deterministic(kbb: ds.KbbData) -> None:
    cat = vf.Catalogue.from_data(kbb)
    a = vf.fit_calibrated(vf.CANDIDATES[-1], kbb, cat, seed=1)
    b = vf.fit_calibrated(vf.CANDIDATES[-1], kbb, cat, seed=1)
    assert np.array_equal(a.intercept, b.intercept) and a.q90 == b.q90
    assert a.scale_usd == b.scale_usd and a.scale_rel == b.scale_rel
    half = a.q90 * a.interval_scale(np.log(np.array([11_000.0, 45_000.0])))
    assert 0 < a.q80 < a.q90 and 0 < half[1] < half[0] < 0.1  # wider in % for a cheaper car


def test_residual_slopes_are_non_positive() -> None:
    cars = ds.load_three_cars()[0]
    fit = rf.fit_residual_calibrated(cars)
    assert fit.beta_age < 0 and fit.beta_mileage <= 0
    assert 0 < fit.q80 < fit.q90


def test_binomial_test() -> None:
    assert vf.binomial_two_sided_p(5, 10, 0.5) == pytest.approx(1.0)
    assert vf.binomial_two_sided_p(0, 50, 0.9) < 1e-10
    assert vf.binomial_two_sided_p(143, 159, 0.9) > 0.05
