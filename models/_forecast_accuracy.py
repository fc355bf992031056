"""Point and interval accuracy of forecasts, on plain arrays: MASE, sMAPE, coverage.

The M4 competition's definitions, so that numbers can be set beside published ones. MASE
scales the forecast error by the in-sample error of the seasonal-naive forecast, which makes
it comparable across series of any size (1.0 = as good, in-sample, as "same time last
season"); sMAPE is the M4 symmetric percentage error, in percent (0..200).

Arrays of any shape are flattened. Rows whose actual value is NaN (missing data) are left
out; a NaN forecast or bound where the actual is known is refused, so a model cannot improve
its score by not answering.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models._errors import InvalidInputError

ArrayLike = Sequence[float] | np.ndarray


def _flat(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise InvalidInputError(f"{name} is empty")
    return array


def _paired(actual: ArrayLike, **others: ArrayLike) -> tuple[np.ndarray, list[np.ndarray]]:
    """``actual`` and ``others`` flattened, equal length, rows with a NaN actual dropped."""
    y = _flat("actual", actual)
    rest = []
    for name, values in others.items():
        array = _flat(name, values)
        if array.size != y.size:
            raise InvalidInputError(
                f"{name} has {array.size} values but actual has {y.size}: lengths must match"
            )
        rest.append(array)
    known = ~np.isnan(y)
    if not known.any():
        raise InvalidInputError(f"actual holds no known value (all {y.size} are NaN)")
    for name, array in zip(others, rest, strict=True):
        bad = int((~np.isfinite(array[known])).sum())
        if bad:
            raise InvalidInputError(f"{name} has {bad} non-finite values where actual is known")
    return y[known], [array[known] for array in rest]


def seasonal_naive_scale(insample: ArrayLike, season: int) -> float:
    """``mean(|insample[t] - insample[t - season]|)`` over the pairs with no NaN."""
    if season < 1:
        raise InvalidInputError(f"season must be a positive integer, got {season!r}")
    history = _flat("insample", insample)
    if history.size <= season:
        raise InvalidInputError(
            f"insample has {history.size} values: need more than one season ({season})"
        )
    diffs = np.abs(history[season:] - history[:-season])
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        raise InvalidInputError(f"insample has no pair of known values {season} rows apart")
    scale = float(diffs.mean())
    if scale == 0.0:
        raise InvalidInputError(
            f"insample's seasonal-naive error is 0 (season {season}): MASE is undefined"
        )
    return scale


def mase(actual: ArrayLike, forecast: ArrayLike, insample: ArrayLike, season: int) -> float:
    """Mean absolute error of ``forecast`` over the in-sample seasonal-naive MAE (M4)."""
    y, (f,) = _paired(actual, forecast=forecast)
    return float(np.abs(y - f).mean()) / seasonal_naive_scale(insample, season)


def smape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """M4 sMAPE in percent: ``200 * mean(|a - f| / (|a| + |f|))``, 0/0 terms count as 0."""
    y, (f,) = _paired(actual, forecast=forecast)
    denominator = np.abs(y) + np.abs(f)
    safe = np.where(denominator > 0, denominator, 1.0)
    terms = np.where(denominator > 0, np.abs(y - f) / safe, 0.0)
    return float(200.0 * terms.mean())


def coverage(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of actual values inside ``[lower, upper]`` (bounds included)."""
    y, (lo, hi) = _paired(actual, lower=lower, upper=upper)
    return float(((y >= lo) & (y <= hi)).mean())
