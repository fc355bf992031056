"""The forecaster's model selection and interval calibration, chosen leave-one-category-out.

``bench_forecast.py`` reports how each model does on eleven traffic series that the LSTM's
settings were chosen on: an in-sample figure. This script estimates what a user gets on a
series nobody looked at. Every NAB series with a whole number of rows per day is forecast
by every candidate (LSTM, ETS, seasonal naive, naive) once, rolling-origin, from its
warm-up (the expensive part, cached under ``--out``). Then, for each NAB category held out
in turn, the combination rule (:class:`models.CombineRule`, or one model alone) and its
window are chosen on the other four categories (lowest geometric mean over series of MAE
over seasonal naive's MAE), the interval method and window next (nearest 80 % mean
coverage), and the held-out category is scored with them. The held-out series are pooled.

Run: ``.venv/bin/python benchmarks/bench_forecast_cv.py [--data ../shared/data/nab/data]
[--jobs 2] [--horizon 12]`` (or ``make bench-forecast-cv``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from _machine import machine_description
from bench_forecast import DEFAULT_DATA, REPO, Series, _forecast, _load
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from models import (
    CombineRule,
    CombineSettings,
    IntervalMethod,
    ModelError,
    RollingForecast,
    combine,
    combine_weights,
    conformalize,
    naive_rolling,
    window_origins,
)
from ooda._settings import ModelWatchSettings

BASE = ("lstm", "ets", "seasonal_naive", "naive")
WINDOWS = (1.0, 2.0, 4.0, 7.0)
INTERVAL_WINDOWS = (2.0, 4.0, 7.0, 14.0)
NOMINAL = 0.8


@dataclass(frozen=True)
class PointRule:
    """One model alone (``model``) or a combination rule over all of them."""

    model: str | None = None
    rule: CombineRule | None = None
    window_days: float = 0.0

    def __str__(self) -> str:
        return self.model or f"{self.rule} ({self.window_days:g} d)"


@dataclass(frozen=True)
class IntervalRule:
    method: IntervalMethod
    window_days: float = 0.0

    def __str__(self) -> str:
        if self.method is IntervalMethod.MODEL:
            return "model's own"
        return f"{self.method} ({self.window_days:g} d)"


POINT_RULES = [PointRule(model=m) for m in BASE] + [
    PointRule(rule=r, window_days=w) for r, w in itertools.product(CombineRule, WINDOWS)
]
INTERVAL_RULES = [IntervalRule(IntervalMethod.MODEL)] + [
    IntervalRule(m, w)
    for m, w in itertools.product((IntervalMethod.RATIO, IntervalMethod.RESIDUAL), INTERVAL_WINDOWS)
]


def _cache_path(out: Path, series: Series, model: str, horizon: int) -> Path:
    category = series.path.parent.name
    return out / "cache" / f"{category}__{series.name}__h{horizon}__{model}.npz"


def _base(args: tuple[Path, str, int, Path]) -> tuple[str, str, str | None]:
    """Forecast one series with one base model into the cache; (series, model, error)."""
    path, model, horizon, out = args
    series = _load(path)
    target = _cache_path(out, series, model, horizon)
    if target.exists():
        return series.name, model, None
    try:
        if model == "naive":
            f = naive_rolling(series.values, series.warmup, horizon)
        else:
            f = _forecast(model, series, horizon)
    except ModelError as exc:
        return series.name, model, f"{type(exc).__name__}: {exc}"
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, origins=f.origins, point=f.point, lower=f.lower, upper=f.upper)
    return series.name, model, None


def _cached(out: Path, series: Series, model: str, horizon: int) -> RollingForecast | None:
    target = _cache_path(out, series, model, horizon)
    if not target.exists():
        return None
    with np.load(target) as z:
        return RollingForecast(model, z["origins"], z["point"], z["lower"], z["upper"])


@dataclass
class Scored:
    """Per series, the relative MAE of every point rule and the coverage of every pairing;
    and those of what the loop plans on (:func:`watched`)."""

    category: str
    rel_mae: dict[PointRule, float]
    coverage: dict[tuple[PointRule, IntervalRule], float]
    score: dict[tuple[PointRule, IntervalRule], float]
    """Interval score over seasonal naive's MAE (:func:`interval_score`)."""
    loop_rel_mae: float = math.nan
    loop_coverage: float = math.nan
    loop_score: float = math.nan
    loop_not_lstm: float = math.nan
    """Share of origins whose plan was not the LSTM's answer."""


def interval_score(actual: np.ndarray, f: RollingForecast) -> float:
    """The mean interval (Winkler) score of the 80 % band: its width, plus 10 times how far
    an actual falls outside it. A proper scoring rule: a band wide enough to cover 80 %
    by being useless scores badly, as coverage alone would not show."""
    alpha = 1.0 - NOMINAL
    below = np.maximum(f.lower - actual, 0.0)
    above = np.maximum(actual - f.upper, 0.0)
    return float(np.nanmean((f.upper - f.lower) + 2.0 / alpha * (below + above)))


def watched(
    base: dict[str, RollingForecast], values: np.ndarray, rows_per_day: float
) -> tuple[RollingForecast, float]:
    """What the loop's predictive scaling plans on (``ooda._forecast_plan``): at each origin,
    the best over the last day of the LSTM champion, seasonal naive and the last value (the
    baselines without a band of their own), its band recalibrated by ``ratio`` over the same
    day; the LSTM is no candidate while the forecast watch condemns it (``ooda._model_watch``:
    its MAE over the points that came true in the last ``judge_after``, at least
    ``min_points`` of them, above seasonal naive's times ``max_ratio``). Until ``min_completed``
    forecasts have come true, the LSTM's answer (seasonal naive, standing in for the HPA
    alone, while it is condemned). Returns the forecast and the share of origins whose plan
    was not the LSTM's."""
    settings = ModelWatchSettings()
    judged_rows = max(
        settings.min_points, round(settings.judge_after / timedelta(days=1) * rows_per_day)
    )
    lstm, naive = base["lstm"], base["seasonal_naive"]
    horizon = lstm.point.shape[1]
    rows = lstm.origins[:, None] + np.arange(horizon)[None, :]
    actual = values[rows]
    mine = np.abs(actual - lstm.point).ravel()
    theirs = np.abs(actual - naive.point).ravel()
    judged = np.isfinite(mine) & np.isfinite(theirs)
    condemned = np.zeros(len(lstm.origins), dtype=bool)
    for i in range(1, len(lstm.origins)):
        done = np.flatnonzero(judged[: i * horizon])
        done = done[done >= i * horizon - judged_rows]
        if len(done) < settings.min_points:
            condemned[i] = condemned[i - 1]
            continue
        condemned[i] = mine[done].mean() > settings.max_ratio * theirs[done].mean()
    # The loop judges on the last day's forecasts, of which it makes hundreds (every five
    # minutes, overlapping); an hourly series has two a day here, so at least min_completed.
    window = max(
        window_origins(settings.window / timedelta(days=1), rows_per_day, horizon),
        settings.min_completed,
    )
    flat = {
        m: RollingForecast(m, f.origins, f.point, f.point, f.point)
        for m, f in base.items()
        if m in ("seasonal_naive", "naive")
    }
    plans = []
    for candidates in ({"lstm": lstm, **flat}, flat):
        names, weights = combine_weights(candidates, values, CombineRule.BEST, window)
        mixed = combine(candidates, values, CombineRule.BEST, window)
        banded = conformalize(mixed, values, IntervalMethod.RATIO, window, NOMINAL)
        plans.append((banded, weights[:, names.index("lstm")] if "lstm" in names else None))
    (trusted, lstm_weight), (fallback, _) = plans
    assert lstm_weight is not None
    early = np.arange(len(lstm.origins)) < settings.min_completed  # origins don't overlap
    arrays = []
    for a, b, own, stand_in in zip(
        trusted.arrays(), fallback.arrays(), lstm.arrays(), naive.arrays(), strict=True
    ):
        planned = np.where(condemned[:, None], b, a)
        answered = np.where(condemned[:, None], stand_in, own)
        arrays.append(np.where(early[:, None], answered, planned))
    not_lstm = np.where(early, condemned, condemned | (lstm_weight < 1.0))
    return RollingForecast("planned", lstm.origins, *arrays), float(not_lstm.mean())


def _evaluate(series: Series, base: dict[str, RollingForecast], horizon: int) -> Scored | None:
    common = None
    for f in base.values():
        common = f.origins if common is None else np.intersect1d(common, f.origins)
    assert common is not None
    y = series.values
    rows = common[:, None] + np.arange(horizon)[None, :]
    actual = y[rows]

    def restricted(f: RollingForecast) -> RollingForecast:
        keep = np.isin(f.origins, common)
        return RollingForecast(f.model, f.origins[keep], *(a[keep] for a in f.arrays()))

    base = {m: restricted(f) for m, f in base.items()}
    naive_mae = float(np.nanmean(np.abs(actual - base["seasonal_naive"].point)))
    if not naive_mae > 0:
        return None
    scored = Scored(series.path.parent.name, {}, {}, {})
    plan, scored.loop_not_lstm = watched(base, y, series.season)
    scored.loop_rel_mae = float(np.nanmean(np.abs(actual - plan.point))) / naive_mae
    inside = (actual >= plan.lower) & (actual <= plan.upper)
    scored.loop_coverage = float(inside[np.isfinite(actual)].mean())
    scored.loop_score = interval_score(actual, plan) / naive_mae
    for point_rule in POINT_RULES:
        if point_rule.model is not None:
            f = base[point_rule.model]
        else:
            assert point_rule.rule is not None
            window = window_origins(point_rule.window_days, series.season, horizon)
            f = combine(base, y, point_rule.rule, window)
        scored.rel_mae[point_rule] = float(np.nanmean(np.abs(actual - f.point))) / naive_mae
        for interval_rule in INTERVAL_RULES:
            window = window_origins(interval_rule.window_days or 1.0, series.season, horizon)
            g = conformalize(f, y, interval_rule.method, window, NOMINAL)
            inside = (actual >= g.lower) & (actual <= g.upper)
            scored.coverage[(point_rule, interval_rule)] = float(inside[np.isfinite(actual)].mean())
            scored.score[(point_rule, interval_rule)] = interval_score(actual, g) / naive_mae
    return scored


def progress_over(items: list[Series], console: Console, label: str) -> Iterable[Series]:
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        yield from progress.track(items)


def _geo(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=float)
    return float(np.exp(np.mean(np.log(v)))) if v.size else math.nan


def _choose(train: list[Scored]) -> tuple[PointRule, IntervalRule]:
    point = min(POINT_RULES, key=lambda r: _geo(s.rel_mae[r] for s in train))
    interval = min(
        INTERVAL_RULES,
        key=lambda r: abs(float(np.mean([s.coverage[(point, r)] for s in train])) - NOMINAL),
    )
    return point, interval


def cv_arguments(doc: str | None) -> argparse.Namespace:
    """The command line of the leave-one-category-out forecast benchmarks (one cache)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB's data/ folder")
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=2, help="processes for the forecasts")
    parser.add_argument("--out", type=Path, default=REPO / ".ooda" / "forecast-cv")
    return parser.parse_args()


def main() -> None:
    args = cv_arguments(__doc__)
    # ETS says when it falls back to a heuristic start; the table is what matters here.
    logging.getLogger("models._holt_winters").setLevel(logging.ERROR)
    console = Console() if Console().is_terminal else Console(width=130)

    paths = sorted(args.data.glob("*/*.csv"))
    if not paths:
        raise SystemExit(f"no NAB series under {args.data}")
    series = [_load(p) for p in paths]
    for s in series:
        if s.season < 1:
            console.print(f"[yellow]{s.name}: {s.interval} does not divide a day; left out")
    series = [s for s in series if s.season >= 1]
    began = time.perf_counter()
    jobs = [(s.path, m, args.horizon, args.out) for s in series for m in BASE]
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    failed: dict[str, str] = {}
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("base forecasts", total=len(jobs))
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for name, model, error in pool.map(_base, jobs):
                if error:
                    failed[f"{name} {model}"] = error
                progress.advance(task)
    for key, error in failed.items():
        console.print(f"[yellow]{key}: {error}")

    scored: dict[str, Scored] = {}
    for s in progress_over(series, console, "scoring every rule"):
        base = {m: _cached(args.out, s, m, args.horizon) for m in BASE}
        if any(f is None for f in base.values()):
            console.print(f"[yellow]{s.name}: a base model failed; left out")
            continue
        result = _evaluate(s, {m: f for m, f in base.items() if f is not None}, args.horizon)
        if result is None:
            console.print(f"[yellow]{s.name}: seasonal naive is exact; MAE ratio undefined")
            continue
        scored[s.name] = result

    categories = sorted({s.category for s in scored.values()})
    table = Table(title="held-out category: rules chosen on the other four")
    for column in ("held out", "series", "point rule", "interval rule", "MAE / snaive (geo)"):
        table.add_column(column)
    table.add_column("80 % coverage", justify="right")
    table.add_column("interval score / snaive MAE (geo)", justify="right")
    table.add_column("LSTM alone", justify="right")
    table.add_column("LSTM cov.", justify="right")
    held_rel: list[float] = []
    held_cov: list[float] = []
    held_score: list[float] = []
    lstm_rel: list[float] = []
    lstm_cov: list[float] = []
    lstm_only = PointRule(model="lstm")
    own = IntervalRule(IntervalMethod.MODEL)
    for category in categories:
        train = [s for s in scored.values() if s.category != category]
        test = [s for s in scored.values() if s.category == category]
        point, interval = _choose(train)
        rel = [s.rel_mae[point] for s in test]
        cov = [s.coverage[(point, interval)] for s in test]
        held_rel += rel
        held_cov += cov
        held_score += [s.score[(point, interval)] for s in test]
        lstm_rel += [s.rel_mae[lstm_only] for s in test]
        lstm_cov += [s.coverage[(lstm_only, own)] for s in test]
        table.add_row(
            category,
            str(len(test)),
            str(point),
            str(interval),
            f"{_geo(rel):.3f}",
            f"{np.mean(cov):.3f}",
            f"{_geo(s.score[(point, interval)] for s in test):.2f}",
            f"{_geo(s.rel_mae[lstm_only] for s in test):.3f}",
            f"{np.mean([s.coverage[(lstm_only, own)] for s in test]):.3f}",
        )
    table.add_section()
    table.add_row(
        "pooled, held out",
        str(len(held_rel)),
        "",
        "",
        f"{_geo(held_rel):.3f}",
        f"{np.mean(held_cov):.3f}",
        f"{_geo(held_score):.2f}",
        f"{_geo(lstm_rel):.3f}",
        f"{np.mean(lstm_cov):.3f}",
        style="bold",
    )
    everything = list(scored.values())
    point, interval = _choose(everything)
    table.add_row(
        "in sample (all)",
        str(len(everything)),
        str(point),
        str(interval),
        f"{_geo(s.rel_mae[point] for s in everything):.3f}",
        f"{np.mean([s.coverage[(point, interval)] for s in everything]):.3f}",
        f"{_geo(s.score[(point, interval)] for s in everything):.2f}",
        "",
        "",
        style="italic",
    )
    console.print(table)
    shipped = CombineSettings()
    ship_point = PointRule(rule=shipped.rule, window_days=shipped.window_days)
    ship_interval = IntervalRule(shipped.interval, shipped.interval_window_days)
    if ship_point in POINT_RULES and ship_interval in INTERVAL_RULES:
        console.print(
            f"shipped defaults ({ship_point}; {ship_interval}) on all {len(everything)}: MAE /"
            f" snaive {_geo(s.rel_mae[ship_point] for s in everything):.3f}, coverage"
            f" {np.mean([s.coverage[(ship_point, ship_interval)] for s in everything]):.3f},"
            f" interval score / snaive MAE"
            f" {_geo(s.score[(ship_point, ship_interval)] for s in everything):.2f}"
        )
    console.print(
        f"what the loop plans on (per origin the best over a day of the LSTM champion, seasonal"
        f" naive and the last value, the LSTM left out while the watch condemns it; nothing"
        f" chosen on NAB, so no held-out split) on all {len(everything)}: MAE / snaive"
        f" {_geo(s.loop_rel_mae for s in everything):.3f}, coverage"
        f" {np.mean([s.loop_coverage for s in everything]):.3f} (in 75-85 %:"
        f" {sum(0.75 <= s.loop_coverage <= 0.85 for s in everything)} of {len(everything)}),"
        f" interval score / snaive MAE {_geo(s.loop_score for s in everything):.2f}; not the"
        f" LSTM's answer at {np.mean([s.loop_not_lstm for s in everything]):.0%} of origins"
    )
    within = sum(0.75 <= c <= 0.85 for c in held_cov)
    console.print(
        f"held-out series with coverage in 75-85 %: {within} of {len(held_cov)}\n"
        f"{time.perf_counter() - began:.0f} s; machine: {machine_description()}; "
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}"
    )


if __name__ == "__main__":
    main()
