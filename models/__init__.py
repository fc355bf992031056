"""ooda's models: anomaly detectors, request-rate forecasters and their MLflow wrappers.

Frames in, frames out; `fit()` returns self; capabilities are properties; every model saves
to and loads from a directory (`save(path)` / `Class.load(path)`, or `load_detector` /
`load_forecaster` when the class is not known). This package imports nothing else of ours.

Detectors (`Detector` protocol) score rows of feature columns in [0, 1], >= 0.5
(`ANOMALY_THRESHOLD`) meaning anomalous at the threshold fitted on training data:
`IsolationForestDetector` (the champion) and `RobustZScoreDetector` (baseline).

Forecasters (`Forecaster` protocol) forecast per-minute request-rate quantiles
(`service, timestamp, q10, q50, q90`) from a long `timestamp, service, request_rate`
history: `LSTMForecaster` (darts, global over services) and `SeasonalNaiveForecaster`
(baseline, "same minute yesterday").

The shadow record (`append_shadow`, `read_shadow`) keeps what `@challenger` answered beside
`@champion` on live requests, for judging it before promotion.

`score_corpus` scores a detector on the Numenta Anomaly Benchmark exactly as NAB v1.1 does
(`load_nab_corpus` reads NAB's layout), so it can be compared with NAB's published scoreboard.

Exceptions::

    ModelError                      anything refused on purpose by this package
    +-- NotFittedError              score/predict/save/log before fit()
    +-- MissingFeatureError         input frame lacks columns (`.missing` names them)
    +-- InsufficientHistoryError    a series is shorter than fit/predict need
    +-- InvalidInputError           empty or all-NaN input, bad horizon or parameter
    +-- ModelFileError              no saved model at a path, or one of another kind
    +-- NabError (also ValueError)  unusable NAB corpus, or bad scores for one of its files
"""

from __future__ import annotations

from models._backtest import (
    LstmSettings,
    RollingForecast,
    lstm_rolling,
    seasonal_naive_rolling,
)
from models._catalog import DETECTOR_CLASSES, FORECASTER_CLASSES, load_detector, load_forecaster
from models._combine import (
    MIN_CALIBRATION,
    Candidate,
    CombineRule,
    CombineSettings,
    IntervalMethod,
    blend,
    combine,
    combine_candidates,
    combine_weights,
    conformalize,
    naive_rolling,
    rolling_forecast,
    window_origins,
)
from models._detectors import (
    ANOMALY_THRESHOLD,
    DEFAULT_DETECTOR_FEATURES,
    IsolationForestDetector,
    RobustZScoreDetector,
)
from models._errors import (
    InsufficientHistoryError,
    InvalidInputError,
    MissingFeatureError,
    ModelError,
    ModelFileError,
    NotFittedError,
)
from models._forecast_accuracy import coverage, mase, smape
from models._holt_winters import holt_winters_rolling
from models._lstm import LSTMForecaster
from models._metrics import detector_metrics, forecast_metrics
from models._nab import (
    NabCorpus,
    NabError,
    NabFile,
    NabProfile,
    NabResult,
    load_nab_corpus,
    probationary_rows,
    scaled_sigmoid,
    score_corpus,
)
from models._protocols import Detector, Forecaster
from models._pyfunc import (
    DetectorModel,
    ForecasterModel,
    log_detector,
    log_forecaster,
    pyfunc_history,
)
from models._seasonal_naive import SeasonalNaiveForecaster
from models._series import FORECAST_COLUMNS, HISTORY_COLUMNS, sampling_interval
from models._shadow import DETECTOR_SHADOW, FORECASTER_SHADOW, append_shadow, read_shadow
from models._streaming import StreamingScorer, StreamingSettings

__all__ = [
    "ANOMALY_THRESHOLD",
    "DEFAULT_DETECTOR_FEATURES",
    "DETECTOR_CLASSES",
    "DETECTOR_SHADOW",
    "FORECASTER_CLASSES",
    "FORECASTER_SHADOW",
    "FORECAST_COLUMNS",
    "HISTORY_COLUMNS",
    "MIN_CALIBRATION",
    "Candidate",
    "CombineRule",
    "CombineSettings",
    "Detector",
    "DetectorModel",
    "Forecaster",
    "ForecasterModel",
    "InsufficientHistoryError",
    "IntervalMethod",
    "InvalidInputError",
    "IsolationForestDetector",
    "LSTMForecaster",
    "LstmSettings",
    "MissingFeatureError",
    "ModelError",
    "ModelFileError",
    "NabCorpus",
    "NabError",
    "NabFile",
    "NabProfile",
    "NabResult",
    "NotFittedError",
    "RobustZScoreDetector",
    "RollingForecast",
    "SeasonalNaiveForecaster",
    "StreamingScorer",
    "StreamingSettings",
    "append_shadow",
    "blend",
    "combine",
    "combine_candidates",
    "combine_weights",
    "conformalize",
    "coverage",
    "detector_metrics",
    "forecast_metrics",
    "holt_winters_rolling",
    "load_detector",
    "load_forecaster",
    "load_nab_corpus",
    "log_detector",
    "log_forecaster",
    "lstm_rolling",
    "mase",
    "naive_rolling",
    "probationary_rows",
    "pyfunc_history",
    "read_shadow",
    "rolling_forecast",
    "sampling_interval",
    "scaled_sigmoid",
    "score_corpus",
    "seasonal_naive_rolling",
    "smape",
    "window_origins",
]
