"""The packed forest scores exactly like scikit-learn's Isolation Forest, on any input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble import IsolationForest

from models import IsolationForestDetector
from models._packed_forest import PackedForest, average_path_length
from tests.models.synthetic import normal_features

N_FEATURES = 4
RNG = np.random.default_rng(5)
TRAIN = RNG.normal(size=(600, N_FEATURES)) * [1.0, 10.0, 0.01, 1e4]
TRAIN[::50, 1] = np.nan  # trees fitted with NaN learn where missing values go

FORESTS = {
    "default": IsolationForest(n_estimators=60, random_state=1).fit(TRAIN),
    "feature subsampling": IsolationForest(n_estimators=40, max_features=0.5, random_state=2).fit(
        TRAIN
    ),
    "tiny samples": IsolationForest(n_estimators=30, max_samples=3, random_state=3).fit(TRAIN),
    "one sample": IsolationForest(n_estimators=5, max_samples=1, random_state=4).fit(TRAIN),
}
PACKED = {name: PackedForest(forest) for name, forest in FORESTS.items()}

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-5, max_value=5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(FORESTS)),
    rows=arrays(np.float64, st.tuples(st.integers(1, 40), st.just(N_FEATURES)), elements=values),
)
def test_scores_are_bit_identical_to_sklearn(name: str, rows: np.ndarray) -> None:
    """Any values (NaN, ±inf, beyond float32, subnormal), any batch size, every forest shape."""
    with np.errstate(over="ignore"):
        expected = FORESTS[name].score_samples(rows)
    np.testing.assert_array_equal(PACKED[name].score_samples(rows), expected)


def test_training_rows_and_a_large_batch_are_bit_identical() -> None:
    batch = np.vstack([TRAIN, RNG.normal(size=(5000, N_FEATURES)) * 3])
    for name, forest in FORESTS.items():
        np.testing.assert_array_equal(
            PACKED[name].score_samples(batch), forest.score_samples(batch), err_msg=name
        )


def test_path_length_normaliser_matches_the_paper() -> None:
    """c(n) = 2 H(n-1) - 2 (n-1)/n, with c(1) = 0 and c(2) = 1 (Liu et al. 2008)."""
    n = np.array([1, 2, 3, 256])
    harmonic = np.log(n[2:] - 1.0) + np.euler_gamma
    np.testing.assert_array_equal(
        average_path_length(n), [0.0, 1.0, *(2 * harmonic - 2 * (n[2:] - 1.0) / n[2:])]
    )


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="expected rows of 4 features, got shape"):
        PACKED["default"].score_samples(np.zeros((2, 3)))


def test_the_detector_scores_through_the_packed_forest_as_it_would_through_sklearn() -> None:
    """Same calibrated scores as the plain forest; a detector saved before packing existed
    (no ``_packed``) packs itself on first use."""
    train, test = normal_features(800, seed=2), normal_features(300, seed=3)
    test.loc[::7, "p95_latency_ms"] *= 6
    detector = IsolationForestDetector(n_estimators=50).fit(train)
    packed = detector.score(test)
    detector._packed = None
    assert np.array_equal(detector.score(test), packed)
    forest = detector._forest
    assert forest is not None
    scaled = (test[list(detector.feature_names)].to_numpy(float) - detector._medians) / (
        detector._scales
    )
    np.testing.assert_array_equal(
        PackedForest(forest).score_samples(scaled), forest.score_samples(scaled)
    )
