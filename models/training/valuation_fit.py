"""The catalogue valuation model, fitted in closed form (numpy only; TensorFlow only exports it).

Model (log price, per catalogue entry ``t`` = make|model|trim, ``m`` = miles / 10,000)::

    log P = c + a_t + s_t * m + w1 * relu(m - k1) + w2 * relu(m - k2) + d · options
    s_t   = b + g * (a0_t - mean(a0))

- ``a_t``: one intercept per catalogue entry (the guidebook's base price for the trim).
- The mileage adjustment is proportional to the price (log scale) and piecewise linear: guidebook
  mileage tables deduct by mileage band, so the slope may change at the knots ``k1``/``k2``.
- ``s_t`` lets the per-mile adjustment depend on the trim's price level (guidebook tables put
  cars in value classes): ``a0_t`` are the intercepts of a first, plain log-linear fit. It is a
  fixed feature, so the second fit stays linear least squares (exact and reproducible).
- ``options``: cruise, sound, leather as 0/1, each a percentage of the price.

The reference the brief compares against is the plain log-linear model (``a_t + b*m + d·options``).
Intervals: split-conformal quantiles of |log residual|, computed out of fold (every training row
is a calibration row for a model that did not see it), so the final fit can use every row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from models.training.datasets import KbbData

MILES_SCALE = 10_000.0


@dataclass(frozen=True)
class CatalogueEntry:
    make: str
    model: str
    trim: str
    body: str
    cylinders: int
    liters: float
    doors: int
    rows: int
    miles_min: float
    miles_max: float


@dataclass(frozen=True)
class Catalogue:
    entries: tuple[CatalogueEntry, ...]

    @classmethod
    def from_data(cls, data: KbbData) -> Catalogue:
        keys = sorted(set(data.keys))
        out = []
        for k in keys:
            idx = [i for i, kk in enumerate(data.keys) if kk == k]
            i0 = idx[0]
            out.append(
                CatalogueEntry(
                    make=k[0],
                    model=k[1],
                    trim=k[2],
                    body=data.body[i0],
                    cylinders=int(data.cylinders[i0]),
                    liters=float(data.liters[i0]),
                    doors=int(data.doors[i0]),
                    rows=len(idx),
                    miles_min=float(data.miles[idx].min()),
                    miles_max=float(data.miles[idx].max()),
                )
            )
        return cls(tuple(out))

    def index_of(self, data: KbbData) -> np.ndarray:
        lookup = {(e.make, e.model, e.trim): i for i, e in enumerate(self.entries)}
        return np.array([lookup[k] for k in data.keys], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class Spec:
    """A candidate model shape: mileage knots (miles) and the price-level slope on/off."""

    name: str
    knots_miles: tuple[float, ...] = ()
    price_level_slope: bool = False

    def describe(self) -> str:
        parts = ["per-trim intercept", "log-linear mileage"]
        if self.knots_miles:
            parts.append("slope changes at " + ", ".join(f"{k:,.0f} mi" for k in self.knots_miles))
        if self.price_level_slope:
            parts.append("mileage slope scaled by the trim's price level")
        parts.append("options as percentages")
        return "; ".join(parts)


REFERENCE = Spec("reference: log-linear least squares")
CANDIDATES = (
    REFERENCE,
    Spec("piecewise mileage", knots_miles=(15_000.0, 30_000.0)),
    Spec("price-level mileage slope", price_level_slope=True),
    Spec("piecewise + price-level slope", knots_miles=(15_000.0, 30_000.0), price_level_slope=True),
)


@dataclass(frozen=True)
class FittedValuation:
    """Parameters in the exported form (a table per catalogue entry plus shared weights)."""

    spec: Spec
    center: float  # c: mean intercept, kept apart so the table holds small numbers (float16)
    intercept: np.ndarray  # a_t - c, [K]
    slope: np.ndarray  # s_t per 10k miles, [K]
    knot_weights: np.ndarray  # w, [len(knots)]
    option_weights: np.ndarray  # d, [3]
    q80: float = 0.0  # conformal |log residual| quantiles
    q90: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)

    def predict_log(
        self, trim_index: np.ndarray, miles: np.ndarray, options: np.ndarray
    ) -> np.ndarray:
        m = miles / MILES_SCALE
        out = self.center + self.intercept[trim_index] + self.slope[trim_index] * m
        for k, w in zip(self.spec.knots_miles, self.knot_weights, strict=True):
            out = out + w * np.maximum(m - k / MILES_SCALE, 0.0)
        return out + options @ self.option_weights

    def predict(self, data: KbbData, cat: Catalogue) -> np.ndarray:
        return np.exp(self.predict_log(cat.index_of(data), data.miles, data.options))


def _design(
    spec: Spec, t: np.ndarray, m: np.ndarray, opts: np.ndarray, k: int, a0: np.ndarray | None
) -> np.ndarray:
    onehot = np.zeros((len(t), k))
    onehot[np.arange(len(t)), t] = 1.0
    cols = [onehot, m[:, None]]
    if spec.price_level_slope:
        assert a0 is not None
        cols.append((m * (a0[t] - a0.mean()))[:, None])
    cols += [np.maximum(m - kn / MILES_SCALE, 0.0)[:, None] for kn in spec.knots_miles]
    cols.append(opts)
    return np.hstack(cols)


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return np.asarray(coef)


def fit(spec: Spec, data: KbbData, cat: Catalogue) -> FittedValuation:
    """Least squares on log price. Every catalogue entry must have at least one row."""
    t = cat.index_of(data)
    k = len(cat)
    missing = sorted(set(range(k)) - set(t.tolist()))
    if missing:
        raise ValueError(f"catalogue entries without rows: {missing}")
    m = data.miles / MILES_SCALE
    y = np.log(data.price)
    a0 = None
    if spec.price_level_slope:
        a0 = _lstsq(_design(REFERENCE, t, m, data.options, k, None), y)[:k]
    coef = _lstsq(_design(spec, t, m, data.options, k, a0), y)
    a = coef[:k]
    pos = k
    b = coef[pos]
    pos += 1
    g = 0.0
    if spec.price_level_slope:
        g = float(coef[pos])
        pos += 1
    nk = len(spec.knots_miles)
    w = coef[pos : pos + nk]
    d = coef[pos + nk : pos + nk + 3]
    slope = np.full(k, b) if a0 is None else b + g * (a0 - a0.mean())
    center = float(a.mean())
    return FittedValuation(
        spec=spec,
        center=center,
        intercept=a - center,
        slope=slope,
        knot_weights=np.asarray(w),
        option_weights=np.asarray(d),
        extras={"mileage_slope_per_10k_mi": float(b), "price_level_gain": g},
    )


def fit_reference(data: KbbData, cat: Catalogue) -> FittedValuation:
    return fit(REFERENCE, data, cat)


def stratified_folds(data: KbbData, n_folds: int, seed: int) -> np.ndarray:
    """Fold number per row, each make|model|trim spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(data), dtype=np.int64)
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, k in enumerate(data.keys):
        groups.setdefault(k, []).append(i)
    offset = 0
    for k in sorted(groups):
        idx = np.array(groups[k])
        rng.shuffle(idx)
        # Rotating the start keeps fold sizes balanced when groups are smaller than n_folds.
        fold[idx] = (np.arange(len(idx)) + offset) % n_folds
        offset += len(idx)
    return fold


def stratified_split(data: KbbData, test_share: float, seed: int) -> np.ndarray:
    """Boolean mask of test rows: about ``test_share`` of each make|model|trim, at least one
    row left for training in every group."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(data), dtype=bool)
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, k in enumerate(data.keys):
        groups.setdefault(k, []).append(i)
    for k in sorted(groups):
        idx = np.array(groups[k])
        rng.shuffle(idx)
        n_test = min(len(idx) - 1, round(test_share * len(idx)))
        test[idx[:n_test]] = True
    return test


def out_of_fold_log_residuals(
    spec: Spec, data: KbbData, cat: Catalogue, n_folds: int = 5, seed: int = 0
) -> np.ndarray:
    """log(price) - log(prediction) for each row from a model fitted without its fold."""
    fold = stratified_folds(data, n_folds, seed)
    t = cat.index_of(data)
    out = np.zeros(len(data))
    for f in range(n_folds):
        tr, te = fold != f, fold == f
        model = fit(spec, data.subset(tr), cat)
        out[te] = np.log(data.price[te]) - model.predict_log(
            t[te], data.miles[te], data.options[te]
        )
    return out


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """Split-conformal quantile: the ceil((n+1)·coverage)-th smallest score."""
    n = len(scores)
    rank = min(n, math.ceil((n + 1) * coverage))
    return float(np.sort(scores)[rank - 1])


def fit_calibrated(spec: Spec, data: KbbData, cat: Catalogue, seed: int = 0) -> FittedValuation:
    """Fit on every row, with interval half-widths from out-of-fold residuals."""
    scores = np.abs(out_of_fold_log_residuals(spec, data, cat, seed=seed))
    model = fit(spec, data, cat)
    return FittedValuation(
        spec=model.spec,
        center=model.center,
        intercept=model.intercept,
        slope=model.slope,
        knot_weights=model.knot_weights,
        option_weights=model.option_weights,
        q80=conformal_quantile(scores, 0.80),
        q90=conformal_quantile(scores, 0.90),
        extras=model.extras,
    )


@dataclass(frozen=True)
class Scores:
    rows: int
    mape: float  # percent
    within_3_5: float  # percent of rows
    coverage80: float | None = None  # percent
    coverage90: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "rows": self.rows,
            "mape_pct": round(self.mape, 3),
            "within_3_5_pct": round(self.within_3_5, 2),
            "coverage80_pct": None if self.coverage80 is None else round(self.coverage80, 2),
            "coverage90_pct": None if self.coverage90 is None else round(self.coverage90, 2),
        }


def score(
    price: np.ndarray,
    pred: np.ndarray,
    low80: np.ndarray | None = None,
    high80: np.ndarray | None = None,
    low90: np.ndarray | None = None,
    high90: np.ndarray | None = None,
) -> Scores:
    ape = np.abs(pred - price) / price
    cov80 = cov90 = None
    if low80 is not None and high80 is not None:
        cov80 = 100.0 * float(np.mean((price >= low80) & (price <= high80)))
    if low90 is not None and high90 is not None:
        cov90 = 100.0 * float(np.mean((price >= low90) & (price <= high90)))
    return Scores(
        len(price), 100.0 * float(ape.mean()), 100.0 * float(np.mean(ape <= 0.035)), cov80, cov90
    )


def score_model(model: FittedValuation, data: KbbData, cat: Catalogue) -> Scores:
    lp = model.predict_log(cat.index_of(data), data.miles, data.options)
    return score(
        data.price,
        np.exp(lp),
        np.exp(lp - model.q80),
        np.exp(lp + model.q80),
        np.exp(lp - model.q90),
        np.exp(lp + model.q90),
    )


def cross_validate(
    spec: Spec, data: KbbData, cat: Catalogue, seeds: tuple[int, ...] = (0, 1, 2), n_folds: int = 5
) -> Scores:
    """Repeated stratified K-fold: mean MAPE and within-±3.5% over the repeats."""
    mape, within = [], []
    for seed in seeds:
        r = out_of_fold_log_residuals(spec, data, cat, n_folds=n_folds, seed=seed)
        ape = np.abs(np.exp(-r) - 1.0)  # |pred - price| / price with pred = price·e^-r
        mape.append(100.0 * ape.mean())
        within.append(100.0 * np.mean(ape <= 0.035))
    return Scores(len(data), float(np.mean(mape)), float(np.mean(within)))


def binomial_two_sided_p(successes: int, trials: int, p: float) -> float:
    """Exact two-sided binomial test (sum of outcomes no more likely than the observed one)."""
    probs = [math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(trials + 1)]
    observed = probs[successes]
    return float(min(1.0, sum(q for q in probs if q <= observed * (1 + 1e-9))))
