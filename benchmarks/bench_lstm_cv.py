"""The LSTM's own settings chosen leave-one-NAB-category-out, beside the shipped ones.

``models.LstmSettings`` (how many steps the network reads, its width) were chosen while
looking at NAB's traffic series (``bench_forecast.py``), so the LSTM's figures in
``bench_forecast_cv.py`` are in sample for them. Here each setting of a small grid forecasts
every NAB series with whole days, rolling-origin from its warm-up (cached, as
``bench_forecast_cv.py`` caches its base forecasts; the shipped setting is that script's
``lstm``). For each category held out in turn, the setting with the lowest geometric mean
over the other four categories' series of MAE over seasonal naive's MAE is chosen, and the
held-out series are scored with it: the LSTM alone, and what the loop plans on with it as the
champion (``bench_forecast_cv.watched``). Held-out series are pooled.

Run: ``.venv/bin/python benchmarks/bench_lstm_cv.py [--data ../shared/data/nab/data]
[--jobs 2] [--horizon 12]`` (or ``make bench-lstm-cv``).
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _machine import machine_description
from bench_forecast import Series, _load
from bench_forecast_cv import _base, _cache_path, _cached, _geo, cv_arguments, watched
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from models import LstmSettings, ModelError, RollingForecast, lstm_rolling

#: (steps read, units): the shipped (72, 24) among them. A training sequence is at least the
#: steps read and 24 more (the shipped 96 otherwise).
GRID = ((72, 24), (144, 24), (72, 48), (36, 24))
SHIPPED = (LstmSettings().input_chunk_length, LstmSettings().hidden_dim)


def _name(setting: tuple[int, int]) -> str:
    """The cache's model name: the shipped setting shares ``bench_forecast_cv``'s ``lstm``."""
    return "lstm" if setting == SHIPPED else f"lstm-in{setting[0]}-h{setting[1]}"


def _variant(args: tuple[Path, tuple[int, int], int, Path]) -> str | None:
    """Forecast one series with one setting into the cache; the error, if any."""
    path, setting, horizon, out = args
    series = _load(path)
    target = _cache_path(out, series, _name(setting), horizon)
    if target.exists():
        return None
    shipped = LstmSettings()
    settings = replace(
        shipped,
        input_chunk_length=setting[0],
        hidden_dim=setting[1],
        # each training sequence reads the input and then the steps it learns to forecast
        training_length=max(shipped.training_length, setting[0] + 24),
    )
    try:
        f = lstm_rolling(series.timestamps, series.values, series.warmup, horizon, settings)
    except ModelError as exc:
        return f"{series.name} {setting}: {type(exc).__name__}: {exc}"
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, origins=f.origins, point=f.point, lower=f.lower, upper=f.upper)
    return None


@dataclass
class _Scored:
    category: str
    alone: dict[tuple[int, int], float]
    """MAE over seasonal naive's, per setting, on the origins every forecast shares."""
    planned: dict[tuple[int, int], float]
    """The same of what the loop plans on with that setting as the champion."""


def _score(series: Series, forecasts: dict[str, RollingForecast]) -> _Scored | None:
    common = None
    for f in forecasts.values():
        common = f.origins if common is None else np.intersect1d(common, f.origins)
    assert common is not None
    horizon = forecasts["seasonal_naive"].point.shape[1]
    actual = series.values[common[:, None] + np.arange(horizon)[None, :]]
    kept = {
        m: RollingForecast(m, f.origins[k], *(a[k] for a in f.arrays()))
        for m, f in forecasts.items()
        for k in [np.isin(f.origins, common)]
    }
    naive_mae = float(np.nanmean(np.abs(actual - kept["seasonal_naive"].point)))
    if not naive_mae > 0:
        return None
    scored = _Scored(series.path.parent.name, {}, {})
    for setting in GRID:
        lstm = kept[_name(setting)]
        scored.alone[setting] = float(np.nanmean(np.abs(actual - lstm.point))) / naive_mae
        base = {"lstm": lstm, "seasonal_naive": kept["seasonal_naive"], "naive": kept["naive"]}
        plan, _ = watched(base, series.values, series.season)
        scored.planned[setting] = float(np.nanmean(np.abs(actual - plan.point))) / naive_mae
    return scored


def main() -> None:
    args = cv_arguments(__doc__)
    console = Console() if Console().is_terminal else Console(width=130)
    began = time.perf_counter()
    series = [s for s in (_load(p) for p in sorted(args.data.glob("*/*.csv"))) if s.season >= 1]
    if not series:
        raise SystemExit(f"no NAB series with whole days under {args.data}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    jobs = [(s.path, g, args.horizon, args.out) for g in GRID for s in series]
    baselines = [
        (s.path, m, args.horizon, args.out) for m in ("seasonal_naive", "naive") for s in series
    ]
    failed: list[str] = []
    with (
        Progress(*columns, TimeElapsedColumn(), console=console) as progress,
        ProcessPoolExecutor(max(1, args.jobs)) as pool,
    ):
        task = progress.add_task("forecasts, series by setting", total=len(jobs) + len(baselines))
        for _, _, error in pool.map(_base, baselines):
            failed += [error] if error else []
            progress.advance(task)
        for error in pool.map(_variant, jobs):
            failed += [error] if error else []
            progress.advance(task)
    for error in failed:
        console.print(f"[yellow]{error}")
    scored: list[_Scored] = []
    for s in series:
        names = [_name(g) for g in GRID] + ["seasonal_naive", "naive"]
        forecasts = {n: _cached(args.out, s, n, args.horizon) for n in names}
        if any(f is None for f in forecasts.values()):
            continue
        result = _score(s, {n: f for n, f in forecasts.items() if f is not None})
        if result is not None:
            scored.append(result)

    table = Table(title="LSTM settings (steps read, units) chosen on the other four categories")
    for column in (
        "held out",
        "series",
        "chosen",
        "LSTM alone",
        "shipped alone",
        "plan",
        "shipped plan",
    ):
        table.add_column(column, justify="left" if column in ("held out", "chosen") else "right")
    pooled: dict[str, list[float]] = {"alone": [], "shipped": [], "plan": [], "shipped_plan": []}
    for category in sorted({s.category for s in scored}):
        train = [s for s in scored if s.category != category]
        test = [s for s in scored if s.category == category]
        chosen = min(GRID, key=lambda g: (_geo(s.alone[g] for s in train), g != SHIPPED))
        row = {
            "alone": [s.alone[chosen] for s in test],
            "shipped": [s.alone[SHIPPED] for s in test],
            "plan": [s.planned[chosen] for s in test],
            "shipped_plan": [s.planned[SHIPPED] for s in test],
        }
        for key, values in row.items():
            pooled[key] += values
        table.add_row(
            category, str(len(test)), str(chosen), *(f"{_geo(v):.3f}" for v in row.values())
        )
    table.add_section()
    table.add_row(
        "pooled, held out",
        str(len(scored)),
        "",
        *(f"{_geo(v):.3f}" for v in pooled.values()),
        style="bold",
    )
    console.print(table)
    for g in GRID:
        alone, plan = _geo(s.alone[g] for s in scored), _geo(s.planned[g] for s in scored)
        shipped = " (shipped)" if g == SHIPPED else ""
        console.print(f"in sample, {g}{shipped}: LSTM alone {alone:.3f}, plan {plan:.3f}")
    console.print(
        f"{time.perf_counter() - began:.0f} s; machine: {machine_description()};"
        f" date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}"
    )


if __name__ == "__main__":
    main()
