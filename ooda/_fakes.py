"""Fakes shipped with the library, as httpx ships ``MockTransport``: a scorer that needs no
model server, for tests of the loop's own logic and for trying ooda without Ray.

:class:`RuleScorer` calls a service anomalous when its features cross plain thresholds and
forecasts the last observed rate (times ``growth``) with a fixed spread. It is honest about
what it is: ``model_version`` says ``rules``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from ooda._errors import ScoringUnavailableError
from ooda._records import AnomalyScores, LoadForecast


@dataclass
class RuleScorer:
    """Threshold anomaly scores and a persistence forecast."""

    error_rate: float = 0.01
    """Error rate above which a service scores 0.95."""
    not_ready_ratio: float = 0.2
    """Share of pods not Ready above which a service scores 0.95."""
    growth: float = 1.0
    """Forecast = last observed rate x growth."""
    spread: float = 0.1
    """q10/q90 = q50 x (1 -/+ spread)."""
    down: bool = False
    """Answer every call with :class:`ScoringUnavailableError` (an outage)."""
    calls: int = 0

    def anomaly_rows(self, rows: pd.DataFrame) -> AnomalyScores:
        self.calls += 1
        if self.down:
            raise ScoringUnavailableError("rule scorer is down (test outage)")
        scores: dict[str, float] = {}
        for row in rows.itertuples(index=False):
            err = float(getattr(row, "error_rate", np.nan))
            ready = float(getattr(row, "not_ready_ratio", np.nan))
            hot = (err > self.error_rate) or (ready > self.not_ready_ratio)
            scores[str(row.service)] = 0.95 if hot else 0.05
        return AnomalyScores("rules", scores, {s: v >= 0.5 for s, v in scores.items()})

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> LoadForecast:
        self.calls += 1
        if self.down:
            raise ScoringUnavailableError("rule scorer is down (test outage)")
        parts = []
        for service, rows in history.groupby("service"):
            rows = rows.dropna(subset=["request_rate"])
            if rows.empty:
                continue
            last = pd.Timestamp(rows["timestamp"].iloc[-1])
            level = float(rows["request_rate"].iloc[-1]) * self.growth
            steps = [last + timedelta(minutes=i + 1) for i in range(horizon)]
            parts.append(
                pd.DataFrame(
                    {
                        "service": service,
                        "timestamp": steps,
                        "q10": level * (1 - self.spread),
                        "q50": level,
                        "q90": level * (1 + self.spread),
                    }
                )
            )
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        return LoadForecast("rules", frame)
