"""MASE, sMAPE and coverage on hand-worked cases, and their refusals."""

from __future__ import annotations

import numpy as np
import pytest

from models import InvalidInputError, coverage, mase, smape

ACTUAL = [10.0, 20.0, 30.0, 40.0]
FORECAST = [12.0, 18.0, 30.0, 44.0]  # absolute errors 2, 2, 0, 4: MAE 2
# Season 2: |3 - 1|, |5 - 2|, |4 - 3|, |8 - 5| = 2, 3, 1, 3: in-sample scale 9 / 4.
INSAMPLE = [1.0, 2.0, 3.0, 5.0, 4.0, 8.0]


def test_mase() -> None:
    assert mase(ACTUAL, FORECAST, INSAMPLE, 2) == pytest.approx(2 / 2.25)
    # Season 1: |1|, |1|, |2|, |-1|, |4| = 9 / 5.
    assert mase(ACTUAL, FORECAST, INSAMPLE, 1) == pytest.approx(2 / 1.8)
    # Shape does not matter: (origins, horizon) arrays are flattened.
    assert mase(np.reshape(ACTUAL, (2, 2)), np.reshape(FORECAST, (2, 2)), INSAMPLE, 2) == (
        pytest.approx(2 / 2.25)
    )


def test_smape() -> None:
    expected = 200 / 4 * (2 / 22 + 2 / 38 + 0 / 60 + 4 / 84)
    assert smape(ACTUAL, FORECAST) == pytest.approx(expected)
    assert smape(ACTUAL, FORECAST) == pytest.approx(9.558, abs=1e-3)
    # 0 / 0 counts as 0; a forecast of 0 for a non-zero actual is the maximum, 200.
    assert smape([0.0, 10.0], [0.0, 30.0]) == pytest.approx(200 / 2 * (0 + 20 / 40))
    assert smape([5.0], [0.0]) == pytest.approx(200.0)


def test_coverage() -> None:
    actual = [1.0, 2.0, 3.0, 4.0, 5.0]
    lower = [0.0, 2.0, 0.0, 5.0, 0.0]
    upper = [2.0, 3.0, 2.0, 6.0, 5.0]  # inside: 1, 2 (on the bound), 5 (on the bound)
    assert coverage(actual, lower, upper) == pytest.approx(3 / 5)


def test_missing_actuals_are_left_out() -> None:
    actual = [10.0, np.nan, 30.0]
    forecast = [12.0, 99.0, 30.0]
    assert mase(actual, forecast, INSAMPLE, 2) == pytest.approx(1 / 2.25)
    assert smape(actual, forecast) == pytest.approx(100 * 2 / 22)
    assert coverage(actual, [9.0, 0.0, 31.0], [11.0, 0.0, 32.0]) == pytest.approx(1 / 2)
    # NaN in the in-sample data drops only the differences it takes part in: |4 - 2| = 2.
    assert mase([3.0], [5.0], [1.0, 2.0, np.nan, 4.0], 2) == pytest.approx(2 / 2)


def test_refusals_name_the_bad_value() -> None:
    with pytest.raises(InvalidInputError, match="forecast has 3 values but actual has 4"):
        mase(ACTUAL, FORECAST[:3], INSAMPLE, 2)
    with pytest.raises(InvalidInputError, match="upper has 2 values"):
        coverage([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, 5.0])
    with pytest.raises(InvalidInputError, match="actual is empty"):
        smape([], [])
    with pytest.raises(InvalidInputError, match="seasonal-naive error is 0"):
        mase(ACTUAL, FORECAST, [7.0, 3.0, 7.0, 3.0, 7.0], 2)
    with pytest.raises(InvalidInputError, match="insample has 2 values"):
        mase(ACTUAL, FORECAST, [1.0, 2.0], 2)
    with pytest.raises(InvalidInputError, match="season must be a positive integer"):
        mase(ACTUAL, FORECAST, INSAMPLE, 0)
    with pytest.raises(InvalidInputError, match="forecast has 1 non-finite"):
        smape(ACTUAL, [12.0, np.nan, 30.0, 44.0])
    with pytest.raises(InvalidInputError, match="no known value"):
        smape([np.nan, np.nan], [1.0, 2.0])
