"""Rolling-origin forecast accuracy of the LSTM, seasonal naive, Holt-Winters (ETS), naive and
``auto`` (what ``ooda forecast-series`` gives: the four combined by their recent errors).

Run: ``.venv/bin/python benchmarks/bench_forecast.py [--models lstm,seasonal_naive,ets,naive,auto]
[--series GLOB] [--data ../shared/data/nab/data] [--horizon 12] [--out .ooda/forecast]``
(or ``make bench-forecast``).

The series are real 5-minute traffic from the Numenta Anomaly Benchmark (MIT licence, read
in place, never copied): the ten Twitter-volume series and one AWS ELB request count. For
each one the sampling interval and the daily season come from the timestamps
(``season_rows``), the warm-up from ``default_warmup`` (30 % of the series, at least three
days); every model is fitted on the warm-up only and forecasts ``--horizon`` steps from
every ``horizon``-th row after it (``models._backtest``). Metrics, on the origins every
model forecast from:

* MASE (M4): MAE over the warm-up's in-sample MAE of "same time yesterday" (season = one
  day), so 1.0 is as good as seasonal naive was in-sample, and the mean over series is fair;
* MAE over seasonal naive's MAE on the same origins, summarised by the geometric mean over
  series (below 1: better than "same time yesterday" out of sample);
* sMAPE (M4, percent, 0..200);
* coverage of the 80 % interval (q10..q90): 0.80 is right, less is over-confident;
* time: wall seconds to fit and forecast the whole series (one process, this machine).

Tables (rows: series and their mean, columns: models; best in bold) go to the terminal and
``<out>/summary.json``. Copy them to ``benchmarks/RESULTS.md`` with the machine and date.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import machine_description
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from models import (
    ModelError,
    combine_candidates,
    coverage,
    holt_winters_rolling,
    mase,
    naive_rolling,
    smape,
)
from models._backtest import (
    RollingForecast,
    default_warmup,
    lstm_rolling,
    season_rows,
    seasonal_naive_rolling,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "nab" / "data"
DEFAULT_SERIES = (
    "realTweets/Twitter_volume_*.csv",
    "realAWSCloudwatch/elb_request_count_8c0756.csv",
)
MODELS = ("lstm", "seasonal_naive", "ets", "naive", "auto")
#: What ``auto`` combines (``models.rolling_forecast``'s candidates).
CANDIDATES = ("lstm", "ets", "seasonal_naive", "naive")
NOMINAL_COVERAGE = 0.8


@dataclass(frozen=True)
class Series:
    name: str
    path: Path
    timestamps: pd.Series
    values: np.ndarray
    interval: pd.Timedelta
    season: int
    warmup: int


@dataclass
class Outcome:
    """One model on one series: its metrics, or why it has none."""

    seconds: float = math.nan
    origins: int = 0
    mase: float = math.nan
    mae_ratio: float = math.nan
    smape: float = math.nan
    coverage: float = math.nan
    error: str | None = None
    forecast: RollingForecast | None = field(default=None, repr=False)


METRICS: dict[str, tuple[str, Callable[[list[float]], float], int]] = {
    # key: (title, choose-the-best over a row, digits)
    "mase": ("MASE (lower is better; 1 = seasonal naive in-sample)", min, 3),
    "mae_ratio": ("MAE / seasonal naive's MAE (geometric mean over series)", min, 3),
    "smape": ("sMAPE % (lower is better)", min, 2),
    "coverage": (
        "80 % interval coverage (best: nearest 0.80)",
        lambda vs: min(vs, key=lambda v: abs(v - NOMINAL_COVERAGE)),
        3,
    ),
    "seconds": ("fit + forecast time, s (lower is better)", min, 2),
}


def _accelerator() -> str:
    import torch

    if torch.cuda.is_available():
        return f"torch {torch.__version__}, CUDA {torch.cuda.get_device_name(0)}"
    return f"torch {torch.__version__}, CPU only ({torch.get_num_threads()} threads)"


def _find_series(data: Path, patterns: list[str]) -> list[Path]:
    """CSVs under ``data/<category>/`` whose relative path, name or stem matches a pattern."""
    found: list[Path] = []
    for path in sorted(data.glob("*/*.csv")):
        relative = path.relative_to(data).as_posix()
        if any(
            fnmatch.fnmatch(candidate, pattern)
            for pattern in patterns
            for candidate in (relative, path.name, path.stem)
        ):
            found.append(path)
    return found


def _load(path: Path) -> Series:
    frame = pd.read_csv(path)
    if list(frame.columns[:2]) != ["timestamp", "value"]:
        raise SystemExit(f"{path}: expected columns timestamp,value, got {list(frame.columns)}")
    timestamps = pd.Series(pd.to_datetime(frame["timestamp"]))
    values = frame["value"].to_numpy(dtype=float)
    interval, season = season_rows(timestamps)
    return Series(
        name=path.stem,
        path=path,
        timestamps=timestamps,
        values=values,
        interval=interval,
        season=season,
        warmup=default_warmup(len(values), season),
    )


def _lstm(series: Series, horizon: int) -> RollingForecast:
    return lstm_rolling(series.timestamps, series.values, series.warmup, horizon)


def _forecast(model: str, series: Series, horizon: int) -> RollingForecast:
    if model == "lstm":
        return _lstm(series, horizon)
    if model == "seasonal_naive":
        return seasonal_naive_rolling(series.values, series.season, series.warmup, horizon)
    if model == "ets":
        return holt_winters_rolling(series.values, series.season, series.warmup, horizon)
    if model == "naive":
        return naive_rolling(series.values, series.warmup, horizon)
    raise ValueError(model)


def _auto(series: Series, horizon: int, outcomes: dict[str, Outcome]) -> Outcome:
    """``auto`` from the candidates' forecasts (run here if not asked for on their own); its
    time is theirs plus the combination's."""
    began = time.perf_counter()
    spent = 0.0
    forecasts = {}
    for model in CANDIDATES:
        outcome = outcomes.get(model) or _run(model, series, horizon)
        spent += outcome.seconds if model in outcomes else 0.0
        if outcome.forecast is not None:
            forecasts[model] = outcome.forecast
    if not forecasts:
        return Outcome(seconds=time.perf_counter() - began, error="no candidate could forecast")
    result, _ = combine_candidates(forecasts, series.values, series.season, horizon)
    return Outcome(seconds=time.perf_counter() - began + spent, forecast=result)


def _run(model: str, series: Series, horizon: int) -> Outcome:
    began = time.perf_counter()
    try:
        forecast = _forecast(model, series, horizon)
    except ModelError as exc:
        return Outcome(seconds=time.perf_counter() - began, error=f"{type(exc).__name__}: {exc}")
    return Outcome(seconds=time.perf_counter() - began, forecast=forecast)


def _score(series: Series, outcomes: dict[str, Outcome], console: Console) -> None:
    """Metrics of every model on the origins all the successful ones share."""
    done = {m: o for m, o in outcomes.items() if o.forecast is not None}
    if not done:
        return
    common = None
    for outcome in done.values():
        assert outcome.forecast is not None
        origins = outcome.forecast.origins
        common = origins if common is None else np.intersect1d(common, origins)
    assert common is not None
    if any(len(o.forecast.origins) != len(common) for o in done.values() if o.forecast):
        console.print(f"[yellow]{series.name}: models differ in origins; scored on the shared ones")
    insample = series.values[: series.warmup]
    reference: float | None = None
    for outcome in done.values():
        forecast = outcome.forecast
        assert forecast is not None
        keep = np.isin(forecast.origins, common)
        rows = (forecast.origins[keep, None] + np.arange(forecast.horizon)[None, :]).ravel()
        actual = series.values[rows]
        point, lower, upper = (
            a[keep].ravel() for a in (forecast.point, forecast.lower, forecast.upper)
        )
        try:
            outcome.mase = mase(actual, point, insample, series.season)
            outcome.smape = smape(actual, point)
            outcome.coverage = coverage(actual, lower, upper)
        except ModelError as exc:
            outcome.error = f"scoring: {exc}"
        outcome.origins = int(keep.sum())
        outcome.mae_ratio = float(np.nanmean(np.abs(actual - point)))
        if forecast.model == "seasonal_naive":
            reference = outcome.mae_ratio
    for outcome in done.values():
        known = reference is not None and reference > 0
        outcome.mae_ratio = outcome.mae_ratio / reference if reference and known else math.nan


def _fmt(value: float, digits: int) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def _mean(values: list[float], geometric: bool = False) -> float:
    finite = [v for v in values if not math.isnan(v) and (v > 0 or not geometric)]
    if not finite:
        return math.nan
    return float(np.exp(np.mean(np.log(finite)))) if geometric else float(np.mean(finite))


def _table(
    metric: str, models: list[str], results: dict[str, dict[str, Outcome]]
) -> tuple[Table, dict[str, float]]:
    title, best_of, digits = METRICS[metric]
    table = Table(title=title)
    table.add_column("series")
    for model in models:
        table.add_column(model, justify="right")

    def row(label: str, values: list[float], style: str | None = None) -> None:
        finite = [v for v in values if not math.isnan(v)]
        best = best_of(finite) if len(finite) > 1 else math.nan
        cells = [
            f"[bold]{_fmt(v, digits)}[/bold]" if v == best else _fmt(v, digits) for v in values
        ]
        table.add_row(label, *cells, style=style)

    columns: dict[str, list[float]] = {m: [] for m in models}
    for name, outcomes in results.items():
        values = [float(getattr(outcomes[m], metric)) for m in models]
        for model, value in zip(models, values, strict=True):
            columns[model].append(value)
        row(name, values)
    means = {m: _mean(columns[m], geometric=metric == "mae_ratio") for m in models}
    table.add_section()
    counts = {m: sum(not math.isnan(v) for v in columns[m]) for m in models}
    label = f"mean of {len(results)}"
    if len(set(counts.values())) > 1:
        label += " (over the series each model has)"
    row(label, [means[m] for m in models], style="italic")
    return table, means


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, in order")
    parser.add_argument(
        "--series",
        metavar="GLOB",
        action="append",
        help="series to run: a glob on the path under --data, the file name or its stem "
        f"(repeatable; default {' and '.join(DEFAULT_SERIES)})",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB's data/ folder")
    parser.add_argument("--horizon", type=int, default=12, help="steps per forecast")
    parser.add_argument("--out", type=Path, default=REPO / ".ooda" / "forecast")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        parser.error(f"--models: unknown {unknown}; choose from {','.join(MODELS)}")
    if args.horizon < 1:
        parser.error("--horizon must be at least 1")

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_description()
    accelerator = _accelerator() if "lstm" in models else None

    paths = _find_series(args.data, args.series or list(DEFAULT_SERIES))
    if not paths:
        raise SystemExit(f"no series under {args.data} match {args.series or DEFAULT_SERIES}")
    series_list = [_load(path) for path in paths]
    skipped = [s for s in series_list if s.season < 1]
    for s in skipped:
        console.print(f"[yellow]{s.name}: interval {s.interval} does not divide a day; skipped")
    series_list = [s for s in series_list if s.season >= 1]
    console.print(
        f"{len(series_list)} series from {args.data}, horizon {args.horizon}, "
        f"models {', '.join(models)}"
    )

    began = time.perf_counter()
    results: dict[str, dict[str, Outcome]] = {}
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("forecasting", total=len(series_list) * len(models))
        for series in series_list:
            outcomes: dict[str, Outcome] = {}
            for model in models:
                progress.update(task, description=f"{series.name}: {model}")
                outcomes[model] = (
                    _auto(series, args.horizon, outcomes)
                    if model == "auto"
                    else _run(model, series, args.horizon)
                )
                error = outcomes[model].error
                if error:
                    progress.console.print(f"[red]{series.name} {model}[/red]: {error}")
                progress.advance(task)
            _score(series, outcomes, progress.console)
            results[series.name] = outcomes
    total = time.perf_counter() - began

    overall: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        table, means = _table(metric, models, results)
        console.print(table)
        overall[metric] = means
    console.print(
        f"total {total:.1f} s\nmachine: {machine}"
        + (f"\naccelerator: {accelerator}" if accelerator else "")
        + f"\ndate: {date}"
    )

    def jsonable(value: float) -> float | None:
        return None if math.isnan(value) else value

    summary = {
        "date": date,
        "machine": machine,
        "accelerator": accelerator,
        "data": str(args.data),
        "horizon": args.horizon,
        "models": models,
        "total_wall_s": total,
        "overall_mean": {
            metric: {m: jsonable(v) for m, v in means.items()} for metric, means in overall.items()
        },
        "series": {
            s.name: {
                "path": str(s.path.relative_to(args.data)),
                "rows": len(s.values),
                "interval_s": s.interval.total_seconds(),
                "season_rows": s.season,
                "warmup_rows": s.warmup,
                "models": {
                    m: {
                        "origins": o.origins,
                        "mase": jsonable(o.mase),
                        "mae_ratio": jsonable(o.mae_ratio),
                        "smape": jsonable(o.smape),
                        "coverage": jsonable(o.coverage),
                        "wall_s": jsonable(o.seconds),
                        "error": o.error,
                    }
                    for m, o in results[s.name].items()
                },
            }
            for s in series_list
        },
        "skipped": [s.name for s in skipped],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"summary written to {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
