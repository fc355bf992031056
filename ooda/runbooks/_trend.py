"""Projection of a resource running out, for the runbooks that act before it does.

A least-squares line through the recent samples, believed only when it explains them (R²)
and points the right way; the time it crosses the threshold is the projection. Plain and
inspectable on purpose: the evidence a human reads is the slope, the fit and the ETA.

The fit is closed-form numpy on epoch seconds: runbooks fit one line per pod, node or queue
every tick, so a fit costs microseconds, not a pandas round trip.
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


def epoch_seconds(stamps: pd.Series) -> np.ndarray:
    """Timezone-aware timestamps as float seconds since the epoch (NaT is NaN)."""
    ns = stamps.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT"))
    out = ns.astype("int64").astype(float) / 1e9
    out[np.isnat(ns)] = np.nan
    return out


def floats(values: pd.Series) -> np.ndarray:
    """A column as a float array, missing values NaN."""
    return values.to_numpy(dtype=float, na_value=np.nan)


def project_line(
    t: np.ndarray,
    y: np.ndarray,
    threshold: float,
    *,
    falling: bool,
    now_s: float,
    window_s: float,
    min_fit: float,
    min_points: int = 4,
) -> Projection | None:
    """:func:`project_crossing` on epoch seconds ``t`` and values ``y`` (numpy arrays)."""
    keep = (t > now_s - window_s) & (t <= now_s) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if len(y) < min_points:
        return None
    newest = int(np.argmax(t))
    latest = float(y[newest])
    across = latest <= threshold if falling else latest >= threshold
    x = t - t[newest]
    dx, dy = x - x.mean(), y - y.mean()
    sxx = float(dx @ dx)
    if sxx <= 0.0:
        return None  # every sample at one instant: no line
    slope = float(dx @ dy) / sxx
    intercept = float(y.mean()) - slope * float(x.mean())
    spread = float(dy @ dy)
    residual = y - (slope * x + intercept)
    fit = 1.0 - float(residual @ residual) / spread if spread > 0 else 0.0
    if across:
        return Projection(0.0, 60.0 * slope, fit, latest)
    heading = slope < 0 if falling else slope > 0
    if not heading or fit < min_fit:
        return None
    eta = (threshold - intercept) / slope
    return Projection(max(0.0, eta), 60.0 * slope, fit, latest)


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
    return project_line(
        epoch_seconds(stamps),
        floats(values),
        threshold,
        falling=falling,
        now_s=pd.Timestamp(now).timestamp(),
        window_s=window.total_seconds(),
        min_fit=min_fit,
        min_points=min_points,
    )
