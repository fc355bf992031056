"""``ooda score-series`` and ``ooda forecast-series``: one univariate series in, a CSV out.

The series format is NAB's (``timestamp,value``), so the detector and the forecaster can be
measured on data nobody here made. A file that is not such a series is refused, naming what is
wrong, before anything is written. Within a series, real streams glitch: a clock steps back, a
timestamp repeats or is garbled, a value is blank or not a number. Scoring never refuses a
whole series for one such row: every row is scored in the order it came, a glitched value
counts as missing, and the glitches are reported. The forecaster, which needs time to move
forward, still refuses them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ooda._errors import SeriesInputError
from ooda._paths import unwritable

if TYPE_CHECKING:
    from models import Candidate


def _writable(path: Path) -> None:
    """Refuse an output path that cannot be written before any work is done for it."""
    if problem := unwritable(path):
        raise SeriesInputError(f"--output: {problem}")


def _write(out: pd.DataFrame, path: Path) -> None:
    try:
        out.to_csv(path, index=False)
    except OSError as exc:
        raise SeriesInputError(f"{path}: cannot write it ({exc.strerror or exc})") from exc


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"timestamp": str, "value": str})
    except FileNotFoundError as exc:
        raise SeriesInputError(f"{path}: no such file") from exc
    except OSError as exc:  # a folder, no permission
        raise SeriesInputError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SeriesInputError(f"{path}: not a CSV file ({exc})") from exc
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise SeriesInputError(
            f"{path}: needs columns timestamp,value; missing {sorted(missing)}"
            f" (has {list(frame.columns)})"
        )
    if frame.empty:
        raise SeriesInputError(f"{path}: no rows")
    return frame


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _names_zone(frame: pd.DataFrame) -> bool:
    try:
        return pd.Timestamp(frame["timestamp"].iloc[0]).tzinfo is not None
    except (ValueError, TypeError, OverflowError):
        return False


def _reparse(stamps: pd.Series, text: pd.Series, odd: pd.Series) -> pd.Series:
    """``stamps`` with the ``odd`` rows parsed one by one; a row that names a zone where the
    first row names none, or the other way round, stays NaT (not a date of this series)."""
    zone = getattr(stamps.dt, "tz", None)
    out = stamps.copy()
    for i in np.flatnonzero(odd.to_numpy()):
        try:
            stamp = pd.Timestamp(text.iloc[i])
        except (ValueError, TypeError, OverflowError):
            continue
        if stamp is pd.NaT or (stamp.tzinfo is None) != (zone is None):
            continue
        out.iloc[i] = stamp if zone is None else stamp.tz_convert(zone)
    return out


def read_series(path: Path, *, lenient: bool = False) -> pd.DataFrame:
    """``timestamp`` (datetime), ``value`` (float, NaN for blanks) and ``text``, the timestamp
    exactly as written, to echo it unchanged.

    Strict (the default): a timestamp that is not a date or comes before the row above it, or
    a value that is not a number, is refused, naming the row. Lenient: such a row is kept in
    place, with NaT or NaN, and counted in ``frame.attrs["glitches"]`` (kind -> rows).
    Repeated timestamps are kept either way (NAB's files have some).
    """
    frame = _read_frame(path)
    with warnings.catch_warnings():
        # pandas says it falls back to dateutil when the first row's format is not one it
        # knows; the rows that still fail are named below, which is what the user needs.
        warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
        # A series whose first row names a zone is read in UTC, so rows at other offsets
        # compare; one whose first row names none stays naive.
        stamps = pd.to_datetime(frame["timestamp"], errors="coerce", utc=_names_zone(frame))
    odd = stamps.isna() & frame["timestamp"].notna()
    if odd.any():  # written in another format than the first row's
        stamps = _reparse(stamps, frame["timestamp"], odd)
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad_stamp = stamps.isna()
    back = stamps < stamps.cummax().shift(1)
    garbage = values.isna() & frame["value"].notna() & (frame["value"].str.strip() != "")
    if not lenient:
        if bad_stamp.any():
            row = _first(bad_stamp)
            raise SeriesInputError(
                f"{path}: row {row + 2}: timestamp {frame['timestamp'].iloc[row]!r} is not a date"
            )
        if back.any():
            row = _first(back)
            raise SeriesInputError(
                f"{path}: row {row + 2}: timestamp {frame['timestamp'].iloc[row]!r} comes before"
                " the row above it"
            )
        if garbage.any():
            row = _first(garbage)
            raise SeriesInputError(
                f"{path}: row {row + 2}: value {frame['value'].iloc[row]!r} is not a number"
            )
    out = pd.DataFrame(
        {"timestamp": stamps, "value": values.astype(float), "text": frame["timestamp"]}
    )
    out.attrs["glitches"] = {
        kind: [int(i) + 2 for i in np.flatnonzero(mask.to_numpy())]
        for kind, mask in (
            ("timestamp not a date", bad_stamp),
            ("timestamp before an earlier row", back),
            ("value not a number", garbage),
        )
        if mask.any()
    }
    return out


def score_series(input_path: Path, output_path: Path) -> pd.DataFrame:
    """Score every row causally, in the order the rows came; write
    ``timestamp,value,anomaly_score``. The returned frame's ``attrs["glitches"]`` names the
    rows that were scored despite a glitch."""
    from models import InvalidInputError, StreamingScorer

    series = read_series(input_path, lenient=True)
    _writable(output_path)
    if series["value"].isna().all():
        raise SeriesInputError(f"{input_path}: every value is missing")
    try:
        scores = StreamingScorer().score(series["timestamp"], series["value"])
    except InvalidInputError as exc:
        raise SeriesInputError(f"{input_path}: {exc}") from exc
    out = pd.DataFrame(
        {
            "timestamp": series["text"],
            "value": series["value"],
            "anomaly_score": np.round(scores, 6),
        }
    )
    _write(out, output_path)
    out.attrs["glitches"] = series.attrs["glitches"]
    return out


def forecast_series(
    input_path: Path, horizon: int, output_path: Path, model: str = "auto"
) -> tuple[pd.DataFrame, str, dict[str, Candidate]]:
    """Rolling-origin forecasts; write ``timestamp,value,forecast,lower,upper`` (80 %) for the
    forecast rows. Returns them, the model used and, for ``auto``, its candidates.

    Rows are read leniently, as by :func:`score_series`: a glitch row (a timestamp that is
    not a date or steps back, a value that is not a number) keeps its place, a missing value
    is interpolated, and ``attrs["glitches"]`` names them."""
    from models import InsufficientHistoryError, InvalidInputError, rolling_forecast

    if horizon < 1:
        raise SeriesInputError(f"--horizon must be a positive number of rows, got {horizon}")
    series = read_series(input_path, lenient=True)
    _writable(output_path)
    values = series["value"].interpolate(limit_direction="both").to_numpy()
    if not np.isfinite(values).all():
        raise SeriesInputError(f"{input_path}: every value is missing")
    # A row whose timestamp is not a date keeps its place, stamped like the row before it.
    stamps = series["timestamp"].ffill().bfill()
    try:
        result, candidates = rolling_forecast(stamps, values, horizon, model)
    except (InsufficientHistoryError, InvalidInputError) as exc:
        raise SeriesInputError(f"{input_path}: {exc}") from exc
    rows = result.rows()
    out = pd.DataFrame(
        {
            "timestamp": series["text"].iloc[rows].to_numpy(),
            "value": series["value"].iloc[rows].to_numpy(),
            "forecast": np.round(result.point.ravel(), 6),
            "lower": np.round(result.lower.ravel(), 6),
            "upper": np.round(result.upper.ravel(), 6),
        }
    )
    _write(out, output_path)
    out.attrs["glitches"] = series.attrs["glitches"]
    return out, result.model, candidates
