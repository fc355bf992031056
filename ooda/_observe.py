"""Observe: read the metrics once, the cluster once, ask the models once, per tick.

Bad input must never turn into an action. Metric frames are sanity-checked before anything
reads them: wrong dtypes, naive or future timestamps, duplicates, NaN, infinities and
impossible values (negative rates, an error ratio above 1) are dropped or blanked, with the
reason. A service whose newest sample is stale or blank is reported and left alone this
tick; the others go on. Scores and forecasts are checked the same way: a non-finite score is
no score, and a forecast far beyond anything observed is refused, not scaled to.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

import features
from contracts import FAMILIES, METRIC_COLUMNS, METRIC_VALUE_COLUMNS, MetricFamily
from ooda._errors import BadMetricsError, ScoringUnavailableError
from ooda._records import IDLE, AnomalyScores, LoadForecast, ServiceView

#: Columns the loop's decisions read from the newest row; NaN in any of them blocks action.
KEY_COLUMNS = ("request_rate", "p95_latency_ms", "error_rate", "ready_pods", "desired_pods")
#: Columns that are ratios in [0, 1]; anything else there is a broken exporter.
_RATIOS = ("error_rate",)
#: A sample this far past the loop's clock is from a broken clock, not the future.
FUTURE_SLACK = timedelta(minutes=1)


def clean_metrics(metrics: Any, now: datetime) -> tuple[pd.DataFrame, list[str]]:
    """A sanitised copy of a tidy metrics frame and what was wrong with it.

    Raises :class:`BadMetricsError` when the frame cannot be trusted at all (not a frame,
    missing columns, timestamps that are not timezone-aware datetimes).
    """
    if not isinstance(metrics, pd.DataFrame):
        raise BadMetricsError(f"metric source returned {type(metrics).__name__}, not a frame")
    missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
    if missing:
        raise BadMetricsError(f"metric source returned no column(s) {missing}")
    frame = metrics.loc[:, list(METRIC_COLUMNS)].copy()
    stamps = frame["timestamp"]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise BadMetricsError(
            f"timestamps must be timezone-aware datetimes, got dtype {stamps.dtype}"
        )
    notes: list[str] = []
    frame["timestamp"] = stamps.dt.tz_convert("UTC")
    frame["service"] = frame["service"].astype(str)
    frame["region"] = frame["region"].astype(str)
    columns = list(METRIC_VALUE_COLUMNS)
    block = frame[columns]
    try:
        values = block.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        coerced = block.apply(pd.to_numeric, errors="coerce")
        lost = coerced.isna().sum() - block.isna().sum()
        notes += [f"non-numeric values in {c!r} blanked" for c in columns if lost[c] > 0]
        values = coerced.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) | (values < 0)
        for column in _RATIOS:
            i = columns.index(column)
            bad[:, i] |= values[:, i] > 1
    if bad.any():
        for j in np.flatnonzero(bad.any(axis=0)):
            notes.append(f"{int(bad[:, j].sum())} impossible value(s) in {columns[j]!r} blanked")
        values = np.where(bad, np.nan, values)
    frame = pd.concat(
        [
            frame[["timestamp", "region", "service"]].reset_index(drop=True),
            pd.DataFrame(values, columns=columns),
        ],
        axis=1,
    )
    undated = frame["timestamp"].isna()
    if undated.any():
        notes.append(f"{int(undated.sum())} row(s) without a timestamp dropped")
        frame = frame[~undated]
    future = frame["timestamp"] > pd.Timestamp(now + FUTURE_SLACK)
    if future.any():
        notes.append(f"{int(future.sum())} row(s) from the future dropped")
        frame = frame[~future]
    dupes = frame.duplicated(["service", "timestamp"], keep="last")
    if dupes.any():
        notes.append(f"{int(dupes.sum())} duplicate row(s) dropped")
        frame = frame[~dupes]
    return frame.sort_values(["service", "timestamp"], ignore_index=True), notes


def clean_family(frame: Any, family: MetricFamily, now: datetime) -> tuple[pd.DataFrame, list[str]]:
    """A sanitised copy of one family's frame and what was wrong with it: values that are not
    finite non-negative numbers are blanked, rows from the future or undated are dropped.

    Raises :class:`BadMetricsError` when the frame cannot be trusted at all.
    """
    schema = FAMILIES[family]
    if not isinstance(frame, pd.DataFrame):
        raise BadMetricsError(f"{family} metrics: got {type(frame).__name__}, not a frame")
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        raise BadMetricsError(f"{family} metrics lack column(s) {missing}")
    out = frame.loc[:, list(schema.columns)]
    if not len(out):  # an estate without the family (no database): nothing, not an error
        return pd.DataFrame(columns=list(schema.columns)), []
    if not isinstance(out["timestamp"].dtype, pd.DatetimeTZDtype):
        raise BadMetricsError(
            f"{family} timestamps must be timezone-aware, got dtype {out['timestamp'].dtype}"
        )
    notes: list[str] = []
    values = np.column_stack([_floats(out[c]) for c in schema.values])
    given = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values < 0)
    blanked = int((bad & given).sum())
    if blanked:
        notes.append(f"{blanked} impossible {family} value(s) blanked")
    values[bad] = np.nan
    stamps = out["timestamp"]
    keep = (stamps.notna() & (stamps <= pd.Timestamp(now + FUTURE_SLACK))).to_numpy(dtype=bool)
    if not keep.all():
        notes.append(f"{int((~keep).sum())} undated or future {family} row(s) dropped")
    rows = np.flatnonzero(keep)
    # Timestamp first, then the keys (compared as text: a bad key never breaks the sort).
    ordering = [out[k].to_numpy()[rows].astype(str) for k in reversed(schema.keys)]
    ordering.append(stamps.to_numpy(dtype="datetime64[ns]")[rows])
    rows = rows[np.lexsort(ordering)]
    clean: dict[str, object] = {"timestamp": stamps.iloc[rows].reset_index(drop=True)}
    for k in ("region", *schema.keys):
        clean[k] = out[k].to_numpy()[rows]
    for j, c in enumerate(schema.values):
        clean[c] = values[rows, j]
    return pd.DataFrame(clean, columns=list(schema.columns)), notes


def _floats(column: pd.Series) -> np.ndarray:
    """A metric column as floats; what is not a number becomes NaN (a fresh array)."""
    if column.dtype.kind in "fiub":
        return column.to_numpy(dtype=float, na_value=np.nan, copy=True)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def service_views(
    metrics: pd.DataFrame,
    services: Sequence[str],
    now: datetime,
    max_staleness: timedelta,
) -> dict[str, ServiceView]:
    """Split a clean metrics frame per service and attach the reasons not to trust it.

    The frame is sorted by service (``clean_metrics``), so each service is one slice: the
    split costs one pass, not one scan of the frame per service.
    """
    names = metrics["service"].to_numpy()
    edges = np.flatnonzero(names[1:] != names[:-1]) + 1 if len(names) else np.array([], int)
    starts = np.concatenate([[0], edges]).astype(int)
    ends = np.concatenate([edges, [len(names)]]).astype(int)
    spans = {str(names[a]): (a, b) for a, b in zip(starts, ends, strict=True) if b > a}
    # The newest row of every service at once: its age and its NaN key columns.
    stamps = metrics["timestamp"].to_numpy(dtype="datetime64[ns]")
    keys = metrics[list(KEY_COLUMNS)].to_numpy(dtype=float)
    oldest_fresh = np.datetime64(pd.Timestamp(now - max_staleness).tz_convert(None), "ns")
    views: dict[str, ServiceView] = {}
    for service in services:
        a, b = spans.get(service, (0, 0))
        rows = metrics.iloc[a:b]
        rows.index = pd.RangeIndex(b - a)  # a fresh index on the slice; the data is not copied
        view = ServiceView(service, rows)
        if b == a:
            view.problems.append(f"no samples for service {service!r}")
        else:
            if stamps[b - 1] < oldest_fresh:
                view.problems.append(f"stale: no sample in the last {max_staleness}")
            nan_cols = [c for c, v in zip(KEY_COLUMNS, keys[b - 1], strict=True) if np.isnan(v)]
            idle = keys[b - 1][0] == 0 and set(nan_cols) <= {"p95_latency_ms", "error_rate"}
            if nan_cols and idle:  # an idle standby: nothing wrong, nothing to judge
                view.problems.append(IDLE)
            elif nan_cols:
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


#: History the newest feature row depends on: the longest rolling window (an hour) and a minute.
FEATURE_HISTORY = pd.Timedelta(minutes=61)


def detector_rows(
    metrics: pd.DataFrame,
    services: Sequence[str],
    families: Mapping[MetricFamily, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The newest detector feature row of each of ``services``: its own features from a clean
    metrics frame, built as the feature store builds them (``features.latest_features``,
    equal to the newest rows of ``build_features``), and its view of the metric families
    (``features.service_rollup`` of each family's newest minute; NaN for a family not read).

    Only the last :data:`FEATURE_HISTORY` of each service is passed on: the newest row's
    windows end there, so its features are the same as from the whole history.
    """
    rows = metrics[metrics["service"].isin(list(services))]
    newest = rows.groupby("service")["timestamp"].transform("max")
    recent = rows[rows["timestamp"] > newest - FEATURE_HISTORY]
    key = features.ENTITY_KEY  # "service", in the rollup too
    own = features.latest_features(recent)[[key, *features.SERVICE_DETECTOR_FEATURES]]
    rollup = features.service_rollup(families or {}, services, latest=True)
    out = own.merge(rollup[[key, *features.ROLLUP_COLUMNS]], on=key, how="left")
    return out[[key, *features.DETECTOR_FEATURES]]


def forecast_history(metrics: pd.DataFrame, services: Sequence[str]) -> pd.DataFrame:
    """The last ``FORECAST_WINDOW`` samples of request rate of each of ``services``."""
    rows = metrics.loc[
        metrics["service"].isin(list(services)), ["service", "timestamp", "request_rate"]
    ]
    return rows.groupby("service", sort=False).tail(features.FORECAST_WINDOW).reset_index(drop=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def clean_scores(scores: Any) -> tuple[AnomalyScores, list[str]]:
    """Drop scores that are not finite numbers: a score the model could not compute is no
    evidence, and neither is its anomaly flag (a flag that is not a bool is no flag).

    Raises :class:`ScoringUnavailableError` when the answer is not anomaly scores at all.
    """
    if not (
        isinstance(scores, AnomalyScores)
        and isinstance(scores.scores, dict)
        and isinstance(scores.anomalous, dict)
    ):
        raise ScoringUnavailableError(f"scorer answered {type(scores).__name__}, not scores")
    good = {s: float(v) for s, v in scores.scores.items() if _is_number(v) and math.isfinite(v)}
    notes = [
        f"non-finite anomaly score for {s!r} ignored"
        if _is_number(v)
        else f"non-numeric anomaly score for {s!r} ignored ({type(v).__name__})"
        for s, v in scores.scores.items()
        if s not in good
    ]
    flags = {s: scores.anomalous.get(s, False) for s in good}
    anomalous = {s: isinstance(f, bool | np.bool_) and bool(f) for s, f in flags.items()}
    return AnomalyScores(scores.model_version, good, anomalous), notes


def check_forecast(
    forecast: LoadForecast, views: dict[str, ServiceView], max_growth: float
) -> tuple[LoadForecast | None, list[str]]:
    """Refuse a forecast with broken values, or one far beyond what was observed.

    The forecast returned has numeric quantiles (numbers sent as strings are converted).
    """
    if not isinstance(forecast, LoadForecast) or not isinstance(forecast.frame, pd.DataFrame):
        return None, [f"forecast is a {type(forecast).__name__}, not a forecast frame: refused"]
    frame = forecast.frame
    needed = ("service", "timestamp", "q10", "q50", "q90")
    if any(c not in frame.columns for c in needed):
        return None, [f"forecast lacks columns {[c for c in needed if c not in frame.columns]}"]
    if not frame["service"].map(lambda s: isinstance(s, str)).all():
        return None, ["forecast has service names that are not strings: refused"]
    if not isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype):
        return None, [
            "forecast timestamps must be timezone-aware datetimes, got dtype"
            f" {frame['timestamp'].dtype}: refused"
        ]
    values = frame[["q10", "q50", "q90"]].apply(pd.to_numeric, errors="coerce")
    if not np.isfinite(values.to_numpy(dtype=float)).all() or (values < 0).any().any():
        return None, ["forecast has NaN, infinite or negative values: refused"]
    frame = frame.assign(**{q: values[q].astype(float) for q in ("q10", "q50", "q90")})
    forecast = LoadForecast(forecast.model_version, frame)
    notes = []
    for service, rows in frame.groupby("service"):
        view = views.get(str(service))
        if view is None or view.history.empty:
            continue
        observed = float(view.history["request_rate"].max())
        upper = float(pd.to_numeric(rows["q90"]).max())
        if math.isfinite(observed) and observed > 0 and upper > max_growth * observed:
            notes.append(
                f"forecast for {service!r} of {upper:.0f} rps is over {max_growth:g}x the"
                f" highest observed {observed:.0f} rps: refused"
            )
    if notes:
        return None, notes
    return forecast, []
