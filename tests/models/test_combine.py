"""Online combination and conformal intervals: past data only, weights follow the errors."""

from __future__ import annotations

import numpy as np
import pytest

from models import (
    CombineRule,
    CombineSettings,
    InsufficientHistoryError,
    IntervalMethod,
    InvalidInputError,
    RollingForecast,
    blend,
    combine,
    combine_weights,
    conformalize,
    naive_rolling,
    window_origins,
)
from models._backtest import rolling_origins


def _walk(n: int = 2000, seed: int = 3) -> np.ndarray:
    return 100 + np.cumsum(np.random.default_rng(seed).normal(0, 1, n))


def _constant(values: np.ndarray, warmup: int, horizon: int, level: float) -> RollingForecast:
    origins = rolling_origins(len(values), warmup, horizon)
    point = np.full((len(origins), horizon), level)
    return RollingForecast("constant", origins, point, point - 1, point + 1)


def test_naive_holds_the_last_value_and_ignores_the_future() -> None:
    y = _walk()
    f = naive_rolling(y, 500, 12)
    np.testing.assert_array_equal(f.point[:, 0], y[f.origins - 1])
    assert (f.point == f.point[:, :1]).all()
    later = y.copy()
    later[f.origins[2] :] += 1000
    np.testing.assert_array_equal(naive_rolling(later, 500, 12).point[:2], f.point[:2])
    with pytest.raises(InsufficientHistoryError):
        naive_rolling(y, 10, 12)


@pytest.mark.parametrize("rule", list(CombineRule))
def test_weights_favour_the_candidate_with_the_smaller_recent_error(rule: CombineRule) -> None:
    y = _walk()
    good = naive_rolling(y, 500, 12)
    bad = _constant(y, 500, 12, 0.0)
    names, weights = combine_weights({"good": good, "bad": bad}, y, rule, window=8)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights[0], 0.5)  # nothing completed yet at the first origin
    if rule is CombineRule.MEAN:
        np.testing.assert_allclose(weights, 0.5)
    else:
        assert (weights[1:, names.index("good")] > 0.9).all()


def test_weights_use_only_completed_forecasts() -> None:
    y = _walk()
    good = naive_rolling(y, 500, 12)
    bad = _constant(y, 500, 12, 0.0)
    _, before = combine_weights({"good": good, "bad": bad}, y, CombineRule.INVERSE, 8)
    later = y.copy()
    later[good.origins[5] :] = 0.0  # the constant becomes perfect from origin 5 on
    _, after = combine_weights({"good": good, "bad": bad}, later, CombineRule.INVERSE, 8)
    np.testing.assert_allclose(after[:6], before[:6])  # origin 5 has not seen its own horizon
    assert after[20, 1] > 0.9


def test_combine_of_one_candidate_is_that_candidate() -> None:
    y = _walk()
    f = naive_rolling(y, 500, 12)
    g = combine({"naive": f}, y, CombineRule.INVERSE, 8)
    np.testing.assert_allclose(g.point, f.point)
    np.testing.assert_allclose(g.lower, f.lower)
    with pytest.raises(InvalidInputError):
        combine({}, y, CombineRule.INVERSE, 8)


def test_blend_takes_each_origin_from_its_weights() -> None:
    y = _walk()
    good = naive_rolling(y, 500, 12)
    bad = _constant(y, 500, 12, 0.0)
    names, weights = combine_weights({"good": good, "bad": bad}, y, CombineRule.BEST, 8)
    mixed = blend({"good": good, "bad": bad}, names, weights)
    np.testing.assert_allclose(
        mixed.point, combine({"good": good, "bad": bad}, y, CombineRule.BEST, 8).point
    )
    np.testing.assert_allclose(mixed.point[-1], good.point[-1])  # the constant is never best
    with pytest.raises(InvalidInputError, match="weights of shape"):
        blend({"good": good, "bad": bad}, names, weights[1:])


@pytest.mark.parametrize("method", [IntervalMethod.RATIO, IntervalMethod.RESIDUAL])
def test_conformal_intervals_reach_the_nominal_coverage(method: IntervalMethod) -> None:
    y = _walk(6000)
    f = naive_rolling(y, 500, 12)
    # An over-confident model: the interval a tenth of its width.
    narrow = RollingForecast("narrow", f.origins, f.point, f.point - 0.01, f.point + 0.01)
    g = conformalize(narrow, y, method, window=60)
    actual = y[g.rows()].reshape(g.point.shape)
    covered = ((actual >= g.lower) & (actual <= g.upper))[20:].mean()
    assert 0.72 < covered < 0.88, covered
    raw = ((actual >= narrow.lower) & (actual <= narrow.upper)).mean()
    assert raw < 0.2
    np.testing.assert_array_equal(g.point, narrow.point)
    assert conformalize(narrow, y, IntervalMethod.MODEL, 60) is narrow


def test_a_band_that_collapses_at_some_origins_does_not_stretch_the_others() -> None:
    """A model whose band is zero-width at every other origin (seasonal naive over a flat
    stretch) must not have its other bands stretched by the errors over those origins."""
    y = _walk(6000)
    f = naive_rolling(y, 500, 12)
    collapsed = np.arange(len(f.origins)) % 2 == 0
    lower = np.where(collapsed[:, None], f.point, f.point - 1.0)
    upper = np.where(collapsed[:, None], f.point, f.point + 1.0)
    g = conformalize(
        RollingForecast("flat", f.origins, f.point, lower, upper), y, IntervalMethod.RATIO, 60
    )
    residual = conformalize(f, y, IntervalMethod.RESIDUAL, 60)
    later = slice(20, None)
    width = (g.upper - g.lower)[later]
    assert np.nanmax(width) < 10 * np.nanmax((residual.upper - residual.lower)[later])
    actual = y[g.rows()].reshape(g.point.shape)
    covered = ((actual >= g.lower) & (actual <= g.upper))[later].mean()
    assert 0.72 < covered < 0.9, covered


@pytest.mark.parametrize("method", [IntervalMethod.RATIO, IntervalMethod.RESIDUAL])
def test_recalibrating_the_last_origins_alone_gives_the_same_bands(method: IntervalMethod) -> None:
    y = _walk(3000)
    f = naive_rolling(y, 500, 12)
    full = conformalize(f, y, method, window=30)
    tail = conformalize(f, y, method, window=30, last=3)
    np.testing.assert_allclose(tail.lower[-3:], full.lower[-3:])
    np.testing.assert_allclose(tail.upper[-3:], full.upper[-3:])
    np.testing.assert_array_equal(tail.lower[:-3], f.lower[:-3])


def test_conformal_intervals_use_only_completed_forecasts() -> None:
    y = _walk(3000)
    f = naive_rolling(y, 500, 12)
    g = conformalize(f, y, IntervalMethod.RESIDUAL, window=30)
    later = y.copy()
    later[f.origins[40] :] += np.linspace(0, 5000, len(y) - f.origins[40])
    h = conformalize(naive_rolling(later, 500, 12), later, IntervalMethod.RESIDUAL, window=30)
    np.testing.assert_allclose(h.upper[:41] - h.point[:41], g.upper[:41] - g.point[:41])


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(InvalidInputError, match="coverage"):
        CombineSettings(coverage=1.5)
    with pytest.raises(InvalidInputError, match="window_days"):
        CombineSettings(window_days=0)
    assert window_origins(2.0, 288, 12) == 48
    assert window_origins(0.01, 288, 12) == 4
