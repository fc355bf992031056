"""Detectors find injected incidents, are calibrated, and reject bad input by name."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from models import (
    ANOMALY_THRESHOLD,
    InvalidInputError,
    IsolationForestDetector,
    RobustZScoreDetector,
    detector_metrics,
)
from tests.models.synthetic import normal_features

DETECTORS = [IsolationForestDetector, RobustZScoreDetector]


def _with_incidents(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Fresh normal rows plus 60 incident rows: 5xx spikes, crash loops, or both."""
    frame = normal_features(1000, seed=seed)
    incidents = normal_features(60, seed=seed + 1)
    incidents.loc[:19, "error_rate"] = np.linspace(0.05, 0.3, 20)
    incidents.loc[20:39, "restarts"] = np.arange(1, 21) % 4 + 2
    incidents.loc[20:39, "not_ready_ratio"] = 0.33
    incidents.loc[40:, ["error_rate", "restarts"]] = [0.1, 3.0]
    labels = np.r_[np.zeros(len(frame), bool), np.ones(len(incidents), bool)]
    return pd.concat([frame, incidents], ignore_index=True), labels


@pytest.mark.parametrize("cls", DETECTORS)
def test_flags_injected_spikes_with_few_false_positives(
    cls: type[IsolationForestDetector] | type[RobustZScoreDetector], feature_rows: pd.DataFrame
) -> None:
    detector = cls().fit(feature_rows)
    frame, labels = _with_incidents(seed=7)
    scores = detector.score(frame)
    metrics = detector_metrics(labels, scores)
    false_positive_rate = (scores[~labels] >= ANOMALY_THRESHOLD).mean()
    assert metrics["recall"] >= 0.95
    assert false_positive_rate <= 0.03
    assert metrics["average_precision"] >= 0.85


def test_threshold_quantile_sets_training_flag_rate(feature_rows: pd.DataFrame) -> None:
    for quantile in (0.9, 0.99):
        detector = IsolationForestDetector(threshold_quantile=quantile).fit(feature_rows)
        flagged = (detector.score(feature_rows) >= ANOMALY_THRESHOLD).mean()
        assert flagged == pytest.approx(1 - quantile, abs=0.005)


def test_scores_keep_rising_beyond_the_training_range(feature_rows: pd.DataFrame) -> None:
    detector = IsolationForestDetector().fit(feature_rows)
    rows = pd.concat([feature_rows.median(numeric_only=True).to_frame().T] * 3, ignore_index=True)
    rows["error_rate"] = [0.002, 0.02, 0.5]
    scores = detector.score(rows)
    assert scores[0] < ANOMALY_THRESHOLD <= scores[1] < scores[2]
    # the plain forest saturates at the edge of the training data and misses the spike
    plain = IsolationForestDetector(extrapolation_weight=0.0).fit(feature_rows).score(rows)
    assert plain[2] == pytest.approx(plain[1], abs=0.05)


def test_missing_values_imputed_and_logged(
    feature_rows: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    train = feature_rows.copy()
    train.loc[::10, "cpu_utilisation"] = np.nan
    detector = RobustZScoreDetector().fit(train)
    rows = feature_rows.iloc[:5].copy()
    rows["p95_latency_ms"] = np.nan
    with caplog.at_level(logging.WARNING, logger="models._detectors"):
        scores = detector.score(rows)
    assert np.isfinite(scores).all()
    assert "'p95_latency_ms': 5" in caplog.text


def test_custom_features_and_bad_training_data(feature_rows: pd.DataFrame) -> None:
    detector = IsolationForestDetector(["error_rate", "restarts"]).fit(feature_rows)
    assert detector.feature_names == ("error_rate", "restarts")
    assert detector.score(feature_rows[["error_rate", "restarts"]]).shape == (len(feature_rows),)
    empty = feature_rows.assign(restarts=np.nan)
    with pytest.raises(InvalidInputError, match="restarts"):
        IsolationForestDetector().fit(empty)
    with pytest.raises(InvalidInputError, match="threshold_quantile"):
        RobustZScoreDetector(threshold_quantile=1.5)


@pytest.mark.parametrize("cls", DETECTORS)
def test_a_feature_constant_in_training_scales_by_its_stated_unit(
    cls: type[IsolationForestDetector] | type[RobustZScoreDetector], feature_rows: pd.DataFrame
) -> None:
    """A disk that never filled in the history: without a unit, a fall from 65 % free to 10 %
    is half of the fallback spread of 1 and passes as noise; with a 5 % unit it is 11."""
    train = feature_rows.assign(disk_avail=0.65)
    names = [*feature_rows.columns.drop("service"), "disk_avail"]
    rows = pd.concat([train.median(numeric_only=True).to_frame().T] * 2, ignore_index=True)
    rows["disk_avail"] = [0.65, 0.10]
    floored = cls(names, min_scales={"disk_avail": 0.05}).fit(train).score(rows)
    plain = cls(names).fit(train).score(rows)
    assert floored[0] < ANOMALY_THRESHOLD <= floored[1]
    assert plain[1] < ANOMALY_THRESHOLD


def test_min_scales_name_known_features_and_positive_units() -> None:
    with pytest.raises(InvalidInputError, match="nope"):
        RobustZScoreDetector(["error_rate"], min_scales={"nope": 1.0})
    with pytest.raises(InvalidInputError, match="error_rate"):
        IsolationForestDetector(["error_rate"], min_scales={"error_rate": 0.0})
    with pytest.raises(InvalidInputError, match="envelope_quantile"):
        IsolationForestDetector(["error_rate"], envelope_quantile=0.5)


def test_one_stray_training_row_does_not_widen_the_envelope(feature_rows: pd.DataFrame) -> None:
    """An unlabelled blip in the history (an error rate of 40 % for one minute) sets the edge
    of a min/max envelope; a quantile envelope ignores it, so a later 10 % spike still
    scores beyond the history."""
    train = feature_rows.copy()
    train.loc[0, "error_rate"] = 0.4
    rows = pd.concat([train.median(numeric_only=True).to_frame().T] * 2, ignore_index=True)
    rows["error_rate"] = [0.002, 0.1]
    robust = IsolationForestDetector(envelope_quantile=0.001).fit(train).score(rows)
    widened = IsolationForestDetector().fit(train).score(rows)
    assert robust[0] < ANOMALY_THRESHOLD <= robust[1]
    assert widened[1] < ANOMALY_THRESHOLD  # the blip hid the spike
