"""The residual-value (depreciation) model, fitted in closed form (numpy only).

Model, fitted on the 2017 listings (``Price`` thousands of USD, ``Age`` years, ``Mileage``
thousands of miles)::

    log P = c_car + beta_age * age + beta_mileage * mileage

Only the two slopes ship: the ratio of a car's value between two (age, mileage) points is
``exp(f(p2) - f(p1))`` with ``f = beta_age * age + beta_mileage * mileage``; the per-model
intercepts ``c_car`` cancel. Both slopes are constrained to be <= 0 (a slope that fits positive is
dropped and the rest refitted), so value never rises with age or mileage and any curve built with
non-negative mileage accrual is non-increasing month by month.

Repeated 5-fold cross-validation picked this shape over an age hinge, age², mileage² and age-only
or mileage-only fits (see the model card's table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.training.datasets import ThreeCarsData
from models.training.valuation_fit import conformal_quantile


@dataclass(frozen=True)
class FittedResidual:
    beta_age: float  # log value per year
    beta_mileage: float  # log value per thousand miles
    intercepts: dict[str, float]
    q80: float = 0.0  # out-of-fold |log residual| quantiles (price level, all noise included)
    q90: float = 0.0
    rmse_cv: float = 0.0

    def predict_log(self, data: ThreeCarsData) -> np.ndarray:
        c = np.array([self.intercepts[t] for t in data.car_type])
        return c + self.beta_age * data.age_years + self.beta_mileage * data.mileage_kmi

    def log_index(self, age_years: np.ndarray, mileage_kmi: np.ndarray) -> np.ndarray:
        return self.beta_age * age_years + self.beta_mileage * mileage_kmi


def _design(data: ThreeCarsData, types: list[str], use: tuple[bool, bool]) -> np.ndarray:
    onehot = np.array([[1.0 if t == u else 0.0 for u in types] for t in data.car_type])
    cols = [onehot]
    if use[0]:
        cols.append(data.age_years[:, None])
    if use[1]:
        cols.append(data.mileage_kmi[:, None])
    return np.hstack(cols)


def fit_residual(data: ThreeCarsData) -> FittedResidual:
    """Least squares with both slopes constrained to be non-positive."""
    types = sorted(set(data.car_type))
    y = np.log(data.price_kusd)
    use = (True, True)
    while True:
        coef, *_ = np.linalg.lstsq(_design(data, types, use), y, rcond=None)
        slopes = list(coef[len(types) :])
        b_age = slopes.pop(0) if use[0] else 0.0
        b_mil = slopes.pop(0) if use[1] else 0.0
        if b_age > 0 and use[0]:
            use = (False, use[1])
            continue
        if b_mil > 0 and use[1]:
            use = (use[0], False)
            continue
        break
    return FittedResidual(
        beta_age=float(b_age),
        beta_mileage=float(b_mil),
        intercepts={t: float(c) for t, c in zip(types, coef[: len(types)], strict=True)},
    )


def _subset(data: ThreeCarsData, mask: np.ndarray) -> ThreeCarsData:
    idx = np.flatnonzero(mask)
    return ThreeCarsData(
        [data.car_type[i] for i in idx],
        data.age_years[idx],
        data.price_kusd[idx],
        data.mileage_kmi[idx],
    )


def out_of_fold_residuals(data: ThreeCarsData, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """log price minus its prediction from a fit that left the row's fold out (stratified by
    car type)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(data), dtype=np.int64)
    for t in sorted(set(data.car_type)):
        idx = np.array([i for i, u in enumerate(data.car_type) if u == t])
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % n_folds
    out = np.zeros(len(data))
    for f in range(n_folds):
        model = fit_residual(_subset(data, fold != f))
        test = _subset(data, fold == f)
        out[fold == f] = np.log(test.price_kusd) - model.predict_log(test)
    return out


def fit_residual_calibrated(data: ThreeCarsData, seed: int = 0) -> FittedResidual:
    r = out_of_fold_residuals(data, seed=seed)
    model = fit_residual(data)
    return FittedResidual(
        beta_age=model.beta_age,
        beta_mileage=model.beta_mileage,
        intercepts=model.intercepts,
        q80=conformal_quantile(np.abs(r), 0.80),
        q90=conformal_quantile(np.abs(r), 0.90),
        rmse_cv=float(np.sqrt(np.mean(r**2))),
    )


def alternative_shapes_cv(
    data: ThreeCarsData, seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
) -> dict[str, float]:
    """Cross-validated RMSE of log price for the shapes considered (model selection record)."""
    types = sorted(set(data.car_type))
    y = np.log(data.price_kusd)
    a, m = data.age_years, data.mileage_kmi
    onehot = _design(data, types, (False, False))
    shapes = {
        "age + mileage (shipped)": np.hstack([onehot, a[:, None], m[:, None]]),
        "age only": np.hstack([onehot, a[:, None]]),
        "mileage only": np.hstack([onehot, m[:, None]]),
        "age + age² + mileage": np.hstack([onehot, a[:, None], (a**2)[:, None], m[:, None]]),
        "age + hinge(age-5) + mileage": np.hstack(
            [onehot, a[:, None], np.maximum(a - 5, 0)[:, None], m[:, None]]
        ),
        "age + mileage + mileage²": np.hstack([onehot, a[:, None], m[:, None], (m**2)[:, None]]),
    }
    out = {}
    for name, x in shapes.items():
        errs = []
        for seed in seeds:
            fold = np.random.default_rng(seed).permutation(len(y)) % 5
            pred = np.zeros(len(y))
            for f in range(5):
                coef, *_ = np.linalg.lstsq(x[fold != f], y[fold != f], rcond=None)
                pred[fold == f] = x[fold == f] @ coef
            errs.append(np.mean((pred - y) ** 2))
        out[name] = float(np.sqrt(np.mean(errs)))
    return out
