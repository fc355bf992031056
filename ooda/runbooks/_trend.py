"""Projection of a resource running out, for the runbooks that act before it does.

A least-squares line through the recent samples, believed only when it explains them (R²)
and points the right way; the time it crosses the threshold is the projection. Plain and
inspectable on purpose: the evidence a human reads is the slope, the fit and the ETA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Projection:
    """When a falling (or rising) series crosses its threshold, by a linear fit."""

    eta_s: float
    """Seconds from the newest sample to the crossing (0 when already across)."""
    slope_per_min: float
    """Change per minute of the fitted line."""
    fit: float
    """R² of the fit."""
    latest: float
    """The newest sample."""


def project_crossing(
    stamps: pd.Series,
    values: pd.Series,
    threshold: float,
    *,
    falling: bool,
    now: datetime,
    window: timedelta,
    min_fit: float,
    min_points: int = 4,
) -> Projection | None:
    """The projected crossing of ``threshold`` by ``values`` (None: no believable trend).

    Only samples in ``(now - window, now]`` with finite values count; a series already across
    the threshold projects 0.
    """
    keep = (stamps > pd.Timestamp(now - window)) & (stamps <= pd.Timestamp(now))
    t = stamps[keep].astype("int64").to_numpy(dtype=float) / 1e9
    y = values[keep].to_numpy(dtype=float)
    finite = np.isfinite(y)
    t, y = t[finite], y[finite]
    if len(y) < min_points:
        return None
    latest = float(y[np.argmax(t)])
    across = latest <= threshold if falling else latest >= threshold
    slope, intercept = np.polyfit(t - t.max(), y, 1)
    residual = y - (slope * (t - t.max()) + intercept)
    spread = float(np.sum((y - y.mean()) ** 2))
    fit = 1.0 - float(np.sum(residual**2)) / spread if spread > 0 else 0.0
    if across:
        return Projection(0.0, 60.0 * float(slope), fit, latest)
    heading = slope < 0 if falling else slope > 0
    if not heading or fit < min_fit:
        return None
    eta = (threshold - intercept) / slope
    return Projection(max(0.0, float(eta)), 60.0 * float(slope), fit, latest)
