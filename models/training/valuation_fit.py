"""The catalogue valuation model, fitted by least squares (numpy, SciPy; TensorFlow exports it).

Model (log price, per catalogue entry ``t`` = make|model|trim, ``m`` = miles / 1,000)::

    log P = c + a_t + h[floor(m)] + d · options             (the shipped shape)
    log P = c + a_t + s_t * m + w1 * relu(m - k1) + w2 * relu(m - k2) + d · options
    s_t   = b + g * (a0_t - mean(a0))                           (earlier candidates)

- ``a_t``: one intercept per catalogue entry (the guidebook's base price for the trim).
- ``h``: the guidebook's mileage adjustment, one value per whole 1,000 miles. Guidebook mileage
  tables are printed in 1,000-mile steps; on this data a step table beats a straight or
  piecewise-linear slope, and whole thousands beat other step widths and offsets
  (``benchmarks/valuation.py --bands 5``). ``h`` is free, held smooth by a
  second-difference penalty (``smoothness``), so steps with few or no rows borrow from their
  neighbours; it never rises (a car is not worth more for more miles: the fit is bounded least
  squares); beyond the last step it continues at the table's mean drop per step.
- The adjustment is a share of the price (log scale). In the earlier candidates ``g`` lets the
  share move with the trim's price level (it gains nothing in cross-validation); ``a0_t`` are the
  intercepts of a first, plain log-linear fit (a fixed feature, so the fit stays linear).
- ``options``: cruise, sound, leather as 0/1, each a percentage of the price.
- Rows are weighted by the trim's price level to the power ``weight_power``: the scatter around
  the guidebook is mostly a dollar amount (about $305 + 0.5 % of the price), so on the log scale
  an expensive car's row is the more precise one.

Earlier shapes (a straight or piecewise-linear slope on raw miles) remain candidates, and the
pipeline picks by repeated cross-validation. The reference the brief compares against is the
plain log-linear model (``a_t + b*m + d·options`` on raw miles).

Intervals: normalised split-conformal. The out-of-fold residuals (every training row scored by a
model that did not see it, so the final fit can use every row) give the scatter's shape,
``s(P)^2 = (usd / P)^2 + rel^2`` (a dollar part and a proportional part, fitted by non-negative
least squares on the squared log residuals); the half-width for coverage ``c`` is ``q_c * s(P)``
with ``q_c`` the conformal quantile of ``|log residual| / s``. The 90 % range of an $11,000 car
is then wider in percent than that of a $45,000 car, as the data says it should be, and the
coverage over all cars is still the nominal one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import lsq_linear, nnls

from models.training.datasets import KbbData

MILES_SCALE = 1_000.0  # model input: thousands of miles (the table's step)


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
    """A candidate model shape: how mileage enters, the price-level slope, and row weights."""

    name: str
    knots_miles: tuple[float, ...] = ()
    price_level_slope: bool = False
    mileage_table: bool = False  # one adjustment per whole 1,000 miles instead of a slope
    smoothness: float = 0.0  # second-difference penalty on the table
    weight_power: float = 0.0  # rows weighted by (trim price level) ** weight_power

    def describe(self) -> str:
        parts = ["per-trim intercept"]
        if self.mileage_table:
            parts.append(
                f"mileage adjustment per whole {MILES_SCALE:,.0f} mi "
                f"(second-difference penalty {self.smoothness:g})"
            )
        else:
            parts.append("log-linear mileage")
        if self.knots_miles:
            parts.append("slope changes at " + ", ".join(f"{k:,.0f} mi" for k in self.knots_miles))
        if self.price_level_slope:
            parts.append("mileage slope scaled by the trim's price level")
        parts.append("options as percentages")
        if self.weight_power:
            parts.append(f"rows weighted by price level^{self.weight_power:g}")
        return "; ".join(parts)


REFERENCE = Spec("reference: log-linear least squares")
CANDIDATES = (
    REFERENCE,
    Spec("piecewise mileage", knots_miles=(15_000.0, 30_000.0)),
    Spec("price-level mileage slope", price_level_slope=True),
    Spec("piecewise + price-level slope", knots_miles=(15_000.0, 30_000.0), price_level_slope=True),
    Spec("mileage table", mileage_table=True, smoothness=100.0),
    # No price-level slope with the table: a per-trim slope could lift a trim's value where the
    # table is flat, and the table alone keeps every trim's value non-increasing in mileage.
    Spec("mileage table, weighted", mileage_table=True, smoothness=100.0, weight_power=1.0),
)


@dataclass(frozen=True)
class FittedValuation:
    """Parameters in the exported form (a table per catalogue entry plus shared weights)."""

    spec: Spec
    center: float  # c: mean intercept, kept apart so the table holds small numbers (float16)
    intercept: np.ndarray  # a_t - c, [K]
    slope: np.ndarray  # s_t per 1,000 miles, [K] (with a mileage table: the price-level part)
    knot_weights: np.ndarray  # w, [len(knots)]
    option_weights: np.ndarray  # d, [3]
    q80: float = 0.0  # conformal |log residual| quantiles
    q90: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)
    table: np.ndarray = field(default_factory=lambda: np.zeros(0))  # h per 1,000 mi, h[0] = 0
    tail_slope: float = 0.0  # log change per 1,000 mi beyond the table
    scale_usd: float = 0.0  # interval scale s(P) = sqrt((scale_usd / P)^2 + scale_rel^2)
    scale_rel: float = 1.0

    def interval_scale(self, log_price: np.ndarray) -> np.ndarray:
        """s(P) for predicted log prices; the half-width for coverage c is q_c * s(P)."""
        return np.sqrt(self.scale_usd**2 * np.exp(-2.0 * log_price) + self.scale_rel**2)

    def predict_log(
        self, trim_index: np.ndarray, miles: np.ndarray, options: np.ndarray
    ) -> np.ndarray:
        m = miles / MILES_SCALE
        if self.spec.mileage_table:
            m = np.floor(m)
            last = len(self.table) - 1
            shared = self.table[np.clip(m, 0, last).astype(np.int64)]
            shared = shared + self.tail_slope * np.maximum(m - last, 0.0)
        else:
            shared = np.zeros_like(m)
            for k, w in zip(self.spec.knots_miles, self.knot_weights, strict=True):
                shared = shared + w * np.maximum(m - k / MILES_SCALE, 0.0)
        out = self.center + self.intercept[trim_index] + self.slope[trim_index] * m + shared
        return out + options @ self.option_weights

    def predict(self, data: KbbData, cat: Catalogue) -> np.ndarray:
        return np.exp(self.predict_log(cat.index_of(data), data.miles, data.options))


def _design(
    spec: Spec,
    t: np.ndarray,
    m: np.ndarray,
    opts: np.ndarray,
    k: int,
    a0: np.ndarray | None,
    steps: int = 0,
) -> np.ndarray:
    """Columns: trim one-hot [k], mileage (a slope, or steps 1..steps-1 of the table), the
    price-level slope, the knots, the options [3]."""
    onehot = np.zeros((len(t), k))
    onehot[np.arange(len(t)), t] = 1.0
    if spec.mileage_table:
        # Column i-1 holds -1 where the car has passed step i: its coefficient is the drop
        # delta_i >= 0 from step i-1 to step i, so h[j] = -(delta_1 + ... + delta_j).
        passed = np.clip(m, 0, steps - 1)[:, None] >= np.arange(1, steps)[None, :]
        cols = [onehot, -passed.astype(float)]
    else:
        cols = [onehot, m[:, None]]
    if spec.price_level_slope:
        assert a0 is not None
        cols.append((m * (a0[t] - a0.mean()))[:, None])
    cols += [np.maximum(m - kn / MILES_SCALE, 0.0)[:, None] for kn in spec.knots_miles]
    cols.append(opts)
    return np.hstack(cols)


def _second_differences(steps: int, width: int, first_col: int) -> np.ndarray:
    """Penalty rows h[j] - 2 h[j+1] + h[j+2] over the table, which in the drops are
    delta_{j+1} - delta_{j+2}."""
    rows = np.zeros((max(steps - 2, 0), width))
    for j in range(steps - 2):
        rows[j, first_col + j] = 1.0
        rows[j, first_col + j + 1] = -1.0
    return rows


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return np.asarray(coef)


def fit(spec: Spec, data: KbbData, cat: Catalogue) -> FittedValuation:
    """(Penalised, weighted) least squares on log price. Every catalogue entry must have at
    least one row."""
    t = cat.index_of(data)
    k = len(cat)
    missing = sorted(set(range(k)) - set(t.tolist()))
    if missing:
        raise ValueError(f"catalogue entries without rows: {missing}")
    m = data.miles / MILES_SCALE
    y = np.log(data.price)
    a0 = None
    if spec.price_level_slope or spec.weight_power:
        a0 = _lstsq(_design(REFERENCE, t, m, data.options, k, None), y)[:k]
    steps = 0
    if spec.mileage_table:
        m = np.floor(m)
        steps = int(m.max()) + 1
    x = _design(spec, t, m, data.options, k, a0, steps)
    if spec.weight_power:
        assert a0 is not None
        w = np.exp(spec.weight_power * (a0[t] - a0.mean()))
        root = np.sqrt(w / w.mean())
        x_fit, y_fit = x * root[:, None], y * root
    else:
        x_fit, y_fit = x, y
    if spec.mileage_table and spec.smoothness > 0:
        pen = math.sqrt(spec.smoothness) * _second_differences(steps, x.shape[1], k)
        x_fit = np.vstack([x_fit, pen])
        y_fit = np.concatenate([y_fit, np.zeros(len(pen))])
    if spec.mileage_table:
        # A car is never worth more for having been driven further: the drops are >= 0.
        lower = np.full(x.shape[1], -np.inf)
        lower[k : k + steps - 1] = 0.0
        coef = np.asarray(lsq_linear(x_fit, y_fit, bounds=(lower, np.inf), method="bvls").x)
    else:
        coef = _lstsq(x_fit, y_fit)
    a = coef[:k]
    pos = k
    table = np.zeros(0)
    tail = 0.0
    b = 0.0
    if spec.mileage_table:
        table = np.concatenate([[0.0], -np.cumsum(coef[pos : pos + steps - 1])])
        pos += steps - 1
        # Beyond the data: the mean drop per step over the whole table (the last steps rest on
        # a handful of cars; a lender is better served by the long-run rate than by them).
        tail = float(table[-1] / (steps - 1)) if steps > 1 else 0.0
    else:
        b = float(coef[pos])
        pos += 1
    g = 0.0
    if spec.price_level_slope:
        g = float(coef[pos])
        pos += 1
    nk = len(spec.knots_miles)
    w_knots = coef[pos : pos + nk]
    d = coef[pos + nk : pos + nk + 3]
    slope = np.full(k, b) if a0 is None or not spec.price_level_slope else b + g * (a0 - a0.mean())
    center = float(a.mean())
    extras = {"price_level_gain": g}
    if spec.mileage_table:
        extras |= {"tail_slope_per_1k_mi": tail, "smoothness": spec.smoothness}
    else:
        extras["mileage_slope_per_1k_mi"] = b
    if spec.weight_power:
        extras["weight_power"] = spec.weight_power
    return FittedValuation(
        spec=spec,
        center=center,
        intercept=a - center,
        slope=slope,
        knot_weights=np.asarray(w_knots),
        option_weights=np.asarray(d),
        extras=extras,
        table=table,
        tail_slope=tail,
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


def interval_scale_fit(log_pred: np.ndarray, log_resid: np.ndarray) -> tuple[float, float]:
    """(usd, rel) with E[r^2] = usd^2 / P^2 + rel^2, by non-negative least squares. Falls back to
    a purely proportional scale when the data gives no dollar part."""
    x = np.c_[np.exp(-2.0 * log_pred), np.ones(len(log_pred))]
    coef, _ = nnls(x, log_resid**2)
    usd, rel = float(math.sqrt(coef[0])), float(math.sqrt(coef[1]))
    if rel == 0.0 and usd == 0.0:
        return 0.0, 1.0
    return usd, rel


def fit_calibrated(
    spec: Spec, data: KbbData, cat: Catalogue, seed: int = 0, *, dollar_scale: bool = True
) -> FittedValuation:
    """Fit on every row, with interval half-widths from out-of-fold residuals.

    ``dollar_scale=False`` gives one constant log half-width for every car (the benchmark shows
    what the dollar-aware scale changes)."""
    resid = out_of_fold_log_residuals(spec, data, cat, seed=seed)
    log_pred = np.log(data.price) - resid
    usd, rel = interval_scale_fit(log_pred, resid) if dollar_scale else (0.0, 1.0)
    model = replace(fit(spec, data, cat), scale_usd=usd, scale_rel=rel)
    scores = np.abs(resid) / model.interval_scale(log_pred)
    return replace(
        model, q80=conformal_quantile(scores, 0.80), q90=conformal_quantile(scores, 0.90)
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
    s = model.interval_scale(lp)
    return score(
        data.price,
        np.exp(lp),
        np.exp(lp - model.q80 * s),
        np.exp(lp + model.q80 * s),
        np.exp(lp - model.q90 * s),
        np.exp(lp + model.q90 * s),
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
