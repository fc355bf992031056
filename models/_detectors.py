"""Anomaly detectors over per-service feature rows.

Both detectors share one preprocessing path (median imputation, robust scaling, calibration)
so that their scores mean the same thing to the control loop: a number in [0, 1] where
>= 0.5 says "more unusual than the `threshold_quantile` of the training data". Metrics from
Prometheus have gaps, so NaNs are imputed with the training median (and logged) instead of
failing a whole scoring call; scaling uses medians and IQR/MAD so the incidents that are
present in training data do not inflate the scale that is meant to expose them.
"""

from __future__ import annotations

import logging
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from models._errors import InvalidInputError, MissingFeatureError, NotFittedError
from models._packed_forest import PackedForest
from models._persistence import dump_pickled, load_pickled

logger = logging.getLogger(__name__)

#: The project's detector features (`features.DETECTOR_FEATURES`), repeated here only as a
#: default because `models` imports nothing of ours.
DEFAULT_DETECTOR_FEATURES: tuple[str, ...] = (
    "error_rate",
    "p95_latency_ms",
    "restarts",
    "not_ready_ratio",
    "cpu_utilisation",
    "request_rate_ratio_1h",
)

#: Calibrated scores at or above this mean "anomalous".
ANOMALY_THRESHOLD = 0.5

_FILE = "detector.joblib"
# Slope of the calibration logistic: the median training score maps to 1 / (1 + 9) = 0.1.
_CALIBRATION_SLOPE = math.log(9.0)
# 1.2533 * mean absolute deviation estimates sigma for a normal law, like 1.4826 * MAD.
_MEAN_AD_TO_SIGMA = 1.2533


def _fallback_spread(centred: np.ndarray) -> float:
    """A spread for a feature whose IQR/MAD is zero (mostly-constant, e.g. restarts)."""
    mean_ad = float(np.nanmean(np.abs(centred))) if np.isfinite(centred).any() else 0.0
    return _MEAN_AD_TO_SIGMA * mean_ad if mean_ad > 0 else 1.0


class _FeatureDetector(ABC):
    """Imputation, robust scaling and score calibration shared by the detectors.

    ``min_scales`` gives, per feature, the smallest change that can matter: its scale is
    never below it, and a feature constant in training (a disk that never filled) takes it
    as its unit, so that moving by that much scores like one spread of a feature that varies.
    """

    def __init__(
        self,
        features: Sequence[str] = DEFAULT_DETECTOR_FEATURES,
        threshold_quantile: float = 0.99,
        min_scales: Mapping[str, float] | None = None,
    ) -> None:
        if not features:
            raise InvalidInputError("a detector needs at least one feature, got none")
        if len(set(features)) != len(features):
            raise InvalidInputError(f"duplicate feature names in {list(features)}")
        if not 0.5 < threshold_quantile < 1.0:
            raise InvalidInputError(
                f"threshold_quantile must lie in (0.5, 1), got {threshold_quantile!r}"
            )
        floors = dict(min_scales or {})
        unknown = sorted(set(floors) - set(features))
        if unknown:
            raise InvalidInputError(f"min_scales name features the detector lacks: {unknown}")
        bad = {f: v for f, v in floors.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise InvalidInputError(f"min_scales must be finite and > 0, got {bad}")
        self._features = tuple(features)
        self.threshold_quantile = threshold_quantile
        self.min_scales = floors
        self._medians: np.ndarray | None = None
        self._scales: np.ndarray | None = None
        self._threshold = 0.0
        self._spread = 1.0

    # -- capabilities -------------------------------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        """Columns `fit()` and `score()` read, in order."""
        return self._features

    @property
    def is_fitted(self) -> bool:
        return self._medians is not None

    @property
    def handles_missing(self) -> bool:
        """NaNs are imputed with the training median rather than rejected."""
        return True

    @property
    def params(self) -> dict[str, Any]:
        """Hyper-parameters, flat, for logging (e.g. `mlflow.log_params`)."""
        floors = getattr(self, "min_scales", {})
        extra = {"min_scales": ",".join(f"{f}={v:g}" for f, v in floors.items())} if floors else {}
        return {"threshold_quantile": self.threshold_quantile, **extra, **self._extra_params()}

    # -- public API ---------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn medians, scales, the model and the calibration from (mostly normal) rows."""
        values = self._matrix(frame)
        if len(values) < 2:
            raise InvalidInputError(f"{self._name} needs at least 2 rows to fit, got {len(values)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: reported below
            medians = np.nanmedian(values, axis=0)
        empty = [f for f, m in zip(self._features, medians, strict=True) if np.isnan(m)]
        if empty:
            raise InvalidInputError(f"{self._name}: features entirely NaN in training: {empty}")
        self._medians = medians
        imputed = self._impute(values)
        centred = imputed - medians
        scales = []
        for name, col in zip(self._features, centred.T, strict=True):
            floor = self.min_scales.get(name)
            spread = self._robust_spread(col)
            if spread <= 0:  # constant in training: the floor is the unit, else the fallback
                spread = floor if floor is not None else _fallback_spread(col)
            scales.append(max(spread, floor or 0.0))
        self._scales = np.array(scales)
        scaled = centred / self._scales
        raw = self._fit_raw(scaled)
        self._threshold = float(np.quantile(raw, self.threshold_quantile))
        self._spread = max(self._threshold - float(np.median(raw)), 1e-9)
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated anomaly score per row in [0, 1]; >= `ANOMALY_THRESHOLD` is anomalous."""
        if self._medians is None or self._scales is None:
            raise NotFittedError(self._name)
        return self.score_array(self._matrix(frame))

    def score_array(self, values: np.ndarray) -> np.ndarray:
        """`score` of a float matrix whose columns are `feature_names`, in that order: the
        path of a caller that already holds columns (a scoring endpoint), without a frame."""
        if self._medians is None or self._scales is None:
            raise NotFittedError(self._name)
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[1] != len(self._features):
            raise InvalidInputError(
                f"{self._name}: expected rows of {len(self._features)} features"
                f" {list(self._features)}, got shape {values.shape}"
            )
        if len(values) == 0:
            return np.empty(0, dtype=float)
        scaled = (self._impute(values) - self._medians) / self._scales
        raw = self._raw(scaled)
        z = _CALIBRATION_SLOPE * (raw - self._threshold) / self._spread
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))), dtype=float)

    def save(self, path: str | Path) -> None:
        """Write the fitted detector into directory `path`."""
        if not self.is_fitted:
            raise NotFittedError(self._name)
        dump_pickled(self, Path(path), _FILE, features=list(self._features))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Open a detector written by `save()`."""
        return load_pickled(cls, Path(path), _FILE)

    # -- internals ----------------------------------------------------------------------------
    @property
    def _name(self) -> str:
        return type(self).__name__

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self._features if f not in frame.columns]
        if missing:
            raise MissingFeatureError(missing, model=self._name)
        try:
            return frame.loc[:, list(self._features)].to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{self._name}: non-numeric feature values ({exc})") from exc

    def _impute(self, values: np.ndarray) -> np.ndarray:
        assert self._medians is not None
        missing = ~np.isfinite(values)
        if missing.any():
            counts = {
                f: int(n) for f, n in zip(self._features, missing.sum(axis=0), strict=True) if n
            }
            logger.warning("%s: imputed training medians for missing values %s", self._name, counts)
            values = np.where(missing, self._medians, values)
        return values

    @abstractmethod
    def _robust_spread(self, centred: np.ndarray) -> float:
        """Scale of one median-centred feature column; 0 when it does not vary."""

    @abstractmethod
    def _fit_raw(self, scaled: np.ndarray) -> np.ndarray:
        """Fit on scaled rows and return their raw scores (higher = more anomalous)."""

    @abstractmethod
    def _raw(self, scaled: np.ndarray) -> np.ndarray:
        """Raw scores of scaled rows (higher = more anomalous)."""

    @abstractmethod
    def _extra_params(self) -> dict[str, Any]:
        """Hyper-parameters of the subclass."""


class IsolationForestDetector(_FeatureDetector):
    """scikit-learn Isolation Forest on robustly scaled features, with envelope extension.

    A tree routes a point beyond the training range down the same branch as the most
    extreme training point, so a forest's score saturates at the edge of the training data:
    an error rate 100x the worst ever seen would score like the worst ever seen. The raw
    score is therefore the forest's anomaly score (`-score_samples`) plus
    `extrapolation_weight * log1p(excess)`, where `excess` is the largest distance (in
    scaled units) by which a feature leaves the training envelope; with the default
    `envelope_quantile=0` the envelope is the training range, so the extension is zero on
    training rows and the fitted threshold is the forest's own. A small `envelope_quantile`
    (0.001) spans the envelope between that quantile and its complement instead, so that one
    stray training row (an unlabelled blip) cannot widen it for good: the incident that
    matters is then "beyond 99.9 % of the history", not "beyond its worst minute".
    `extrapolation_weight=0` gives the plain forest. Scoring goes through a `PackedForest`,
    bit-identical to the forest's own `score_samples` and about a thousand times faster on
    one row.
    """

    def __init__(
        self,
        features: Sequence[str] = DEFAULT_DETECTOR_FEATURES,
        *,
        n_estimators: int = 200,
        max_samples: int | str = "auto",
        threshold_quantile: float = 0.99,
        extrapolation_weight: float = 0.1,
        envelope_quantile: float = 0.0,
        random_state: int = 0,
        min_scales: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(features, threshold_quantile, min_scales)
        if extrapolation_weight < 0:
            raise InvalidInputError(
                f"extrapolation_weight must be >= 0, got {extrapolation_weight!r}"
            )
        if not 0.0 <= envelope_quantile < 0.5:
            raise InvalidInputError(
                f"envelope_quantile must lie in [0, 0.5), got {envelope_quantile!r}"
            )
        self.envelope_quantile = envelope_quantile
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.extrapolation_weight = extrapolation_weight
        self.random_state = random_state
        self._forest: IsolationForest | None = None
        self._packed: PackedForest | None = None
        self._envelope: tuple[np.ndarray, np.ndarray] | None = None

    def _robust_spread(self, centred: np.ndarray) -> float:
        q25, q75 = np.quantile(centred, [0.25, 0.75])
        iqr = float(q75 - q25)
        return iqr

    def _fit_raw(self, scaled: np.ndarray) -> np.ndarray:
        self._forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            random_state=self.random_state,
            n_jobs=1,
        ).fit(scaled)
        self._packed = PackedForest(self._forest)
        q = getattr(self, "envelope_quantile", 0.0)
        self._envelope = (np.quantile(scaled, q, axis=0), np.quantile(scaled, 1.0 - q, axis=0))
        return self._raw(scaled)

    def _raw(self, scaled: np.ndarray) -> np.ndarray:
        assert self._forest is not None and self._envelope is not None
        low, high = self._envelope
        excess = np.maximum(np.maximum(scaled - high, low - scaled), 0.0).max(axis=1)
        if getattr(self, "_packed", None) is None:  # saved before packing existed
            self._packed = PackedForest(self._forest)
        assert self._packed is not None
        forest = -self._packed.score_samples(scaled)
        return np.asarray(forest + self.extrapolation_weight * np.log1p(excess), dtype=float)

    def _extra_params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "extrapolation_weight": self.extrapolation_weight,
            "envelope_quantile": getattr(self, "envelope_quantile", 0.0),
            "random_state": self.random_state,
        }


class RobustZScoreDetector(_FeatureDetector):
    """Baseline: per-feature robust z-score (median / 1.4826 MAD), row score = max |z|."""

    def _robust_spread(self, centred: np.ndarray) -> float:
        mad = 1.4826 * float(np.median(np.abs(centred)))
        return mad

    def _fit_raw(self, scaled: np.ndarray) -> np.ndarray:
        return self._raw(scaled)

    def _raw(self, scaled: np.ndarray) -> np.ndarray:
        return np.asarray(np.abs(scaled).max(axis=1), dtype=float)

    def _extra_params(self) -> dict[str, Any]:
        return {}
