"""Observe: read recent metrics and decide, per service, whether they can be trusted.

Bad input must never turn into an action. A service whose newest sample is stale, or whose
newest values are NaN, is reported with the reason and left alone this tick; the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from ooda._errors import BadMetricsError

#: Columns the loop's decisions read from the newest row; NaN in any of them blocks action.
KEY_COLUMNS = ("request_rate", "p95_latency_ms", "error_rate", "ready_pods", "desired_pods")


@dataclass
class ServiceView:
    """What the loop knows about one service this tick."""

    service: str
    history: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether the loop may act on this service this tick."""
        return not self.problems

    @property
    def latest(self) -> pd.Series:
        """The newest row of the service's metrics."""
        return self.history.iloc[-1]


def service_views(
    metrics: pd.DataFrame,
    services: Sequence[str],
    now: datetime,
    max_staleness: timedelta,
) -> dict[str, ServiceView]:
    """Split a tidy metrics frame per service and attach the reasons not to trust it."""
    missing = [c for c in ("timestamp", "service", *KEY_COLUMNS) if c not in metrics.columns]
    if missing:
        raise BadMetricsError(f"metric source returned no column(s) {missing}")
    views: dict[str, ServiceView] = {}
    for service in services:
        rows = metrics[metrics["service"] == service].sort_values("timestamp")
        view = ServiceView(service, rows.reset_index(drop=True))
        if rows.empty:
            view.problems.append(f"no samples for service {service!r}")
        else:
            newest = pd.Timestamp(rows["timestamp"].iloc[-1])
            age = pd.Timestamp(now) - newest
            if age > pd.Timedelta(max_staleness):
                view.problems.append(f"stale: no sample in the last {max_staleness}")
            nan_cols = [c for c in KEY_COLUMNS if pd.isna(rows[c].iloc[-1])]
            if nan_cols:
                view.problems.append(f"newest sample has NaN in {nan_cols}")
        views[service] = view
    return views


def within_slo(row: pd.Series, p95_ms: float, max_error_rate: float) -> bool:
    """Whether one minute of a service met both SLOs (NaN counts as not met)."""
    p95 = row["p95_latency_ms"]
    err = row["error_rate"]
    if pd.isna(p95) or pd.isna(err):
        return False
    return bool(p95 <= p95_ms and err <= max_error_rate)
