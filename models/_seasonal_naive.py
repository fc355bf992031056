"""Seasonal-naive request-rate forecaster: "the same minute yesterday".

It is the baseline the LSTM must beat (MASE is measured against it) and the fallback when
the LSTM's accuracy drifts. Intervals come from the in-sample seasonal residuals, stored
relative to each service's mean so that a service unseen in training can borrow the pooled
residual distribution scaled to its own level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from models._errors import InvalidInputError, NotFittedError
from models._persistence import dump_pickled, load_pickled
from models._series import (
    QUANTILES,
    check_horizon,
    concat_forecasts,
    forecast_frame,
    per_service_series,
    require_length,
    series_scale,
)

_FILE = "forecaster.joblib"


class SeasonalNaiveForecaster:
    """Forecast y[t + h] = y[t + h - k * season] with residual-quantile intervals.

    `season` is in minutes (default: one day). `predict` needs the last `season` minutes of
    each service (`min_history`).
    """

    def __init__(self, season: int = 1440) -> None:
        if season < 1:
            raise InvalidInputError(f"season must be a positive number of minutes, got {season!r}")
        self.season = season
        # service -> (relative q10 residual, relative q90 residual); "" holds the pooled pair.
        self._residuals: dict[str, tuple[float, float]] | None = None
        self._scales: dict[str, float] = {}

    @property
    def is_fitted(self) -> bool:
        return self._residuals is not None

    @property
    def is_probabilistic(self) -> bool:
        """Outputs q10/q90 intervals, not just a point."""
        return True

    @property
    def is_global(self) -> bool:
        """False: each service is forecast from its own past only."""
        return False

    @property
    def handles_missing(self) -> bool:
        """Gaps in the history are interpolated."""
        return True

    @property
    def min_history(self) -> int:
        """Minutes of per-service history `predict()` needs."""
        return self.season

    @property
    def services(self) -> tuple[str, ...]:
        """Services seen in training (others use the pooled residuals)."""
        return tuple(sorted(self._scales))

    @property
    def params(self) -> dict[str, Any]:
        """Hyper-parameters, flat, for logging."""
        return {"season": self.season}

    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn per-service residual quantiles; each service needs more than one season."""
        series = per_service_series(frame, type(self).__name__)
        require_length(series, self.season + 1, type(self).__name__, "fit")
        residuals: dict[str, tuple[float, float]] = {}
        pooled: list[np.ndarray] = []
        for service, values in series.items():
            scale = series_scale(values)
            arr = values.to_numpy()
            rel = (arr[self.season :] - arr[: -self.season]) / scale
            residuals[service] = (
                float(np.quantile(rel, QUANTILES[0])),
                float(np.quantile(rel, QUANTILES[2])),
            )
            pooled.append(rel)
            self._scales[service] = scale
        every = np.concatenate(pooled)
        residuals[""] = (
            float(np.quantile(every, QUANTILES[0])),
            float(np.quantile(every, QUANTILES[2])),
        )
        self._residuals = residuals
        return self

    def predict(self, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
        """Forecast `horizon` minutes after each service's last history timestamp."""
        if self._residuals is None:
            raise NotFittedError(type(self).__name__)
        horizon = check_horizon(horizon, type(self).__name__)
        series = per_service_series(history, type(self).__name__)
        require_length(series, self.season, type(self).__name__, "predict")
        parts = []
        for service, values in series.items():
            last_season = values.to_numpy()[-self.season :]
            point = last_season[np.arange(horizon) % self.season]
            low, high = self._residuals.get(service, self._residuals[""])
            scale = self._scales.get(service) or series_scale(values)
            quantiles = np.column_stack([point + low * scale, point, point + high * scale])
            parts.append(forecast_frame(service, values.index[-1], quantiles))
        return concat_forecasts(parts)

    def save(self, path: str | Path) -> None:
        """Write the fitted forecaster into directory `path`."""
        if not self.is_fitted:
            raise NotFittedError(type(self).__name__)
        dump_pickled(self, Path(path), _FILE, season=self.season)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Open a forecaster written by `save()`."""
        return load_pickled(cls, Path(path), _FILE)
