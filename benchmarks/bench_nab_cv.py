"""NAB with every setting chosen by leave-one-category-out validation, beside in-sample.

``score-series``' settings (the forest's: rows it is fitted on, the short and long windows of
its features; the post-processing: the moving average of forest scores, the range-alarm margin,
the rows silenced after an alarm, the level that re-arms it) were chosen while looking at the
whole NAB subset; its score there (``make bench-nab``) is an in-sample figure. This script
estimates how the choice does on data it was not made on: for each NAB category, the settings
are chosen on the other categories (the best NAB standard score, NAB's threshold sweep over
those files), and the held-out category is scored with those settings *and that threshold*. The
held-out results are pooled into one normalised score (raw, null and perfect summed over
files), twice: with the post-processing chosen alone (the forest as shipped) and with both
chosen. It also says whether the shipped settings are, setting by setting, what most folds
choose: they should be.

The forests are fitted once per file and forest setting (the expensive part) and every
post-processing setting is applied to their scores (``StreamingScorer.post_process``).

Run: ``.venv/bin/python benchmarks/bench_nab_cv.py [--data ../shared/data/nab] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from models import NabCorpus, NabResult, StreamingScorer, StreamingSettings, load_nab_corpus
from models import score_corpus as nab_score
from ooda._series import read_series

#: The forest settings compared (the shipped ones among them): rows fitted on, and the
#: (short, long) windows of the features.
HISTORIES = (1000, 2500)
WINDOWS = ((6, 60), (12, 120))
#: The post-processing settings compared (the shipped ones among them).
AVERAGES = (16, 32, 64)
QUIET_ROWS = (25, 50, 100)
MARGINS = (0.02, 0.05, 0.10)
REARMS = (1.0, 0.8, 0.6)


def _forest(job: tuple[Path, StreamingSettings]) -> tuple[str, np.ndarray, np.ndarray]:
    """(file, values, forest scores) with these forest settings."""
    path, settings = job
    series = read_series(path, lenient=True)
    scorer = StreamingScorer(settings)
    scorer.score(series["timestamp"], series["value"])
    forest = scorer.forest_scores
    values = series["value"].to_numpy(dtype=float)
    return str(path), values, np.zeros(len(values)) if forest is None else forest


def _pooled(results: list[NabResult]) -> float:
    raw = sum(sum(r.per_file.values()) for r in results)
    null = sum(sum(r.per_file_null.values()) for r in results)
    perfect = sum(sum(r.per_file_perfect.values()) for r in results)
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/nab"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    console = Console(width=120)
    corpus: NabCorpus = load_nab_corpus(args.data)
    names = sorted(corpus.files)
    paths = {name: args.data / "data" / name for name in names}
    base = StreamingSettings()
    forest_grid = [
        replace(base, history=h, short=w[0], long=w[1])
        for h, w in itertools.product(HISTORIES, WINDOWS)
    ]
    forests: dict[tuple[StreamingSettings, str], tuple[np.ndarray, np.ndarray]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    jobs = [(paths[n], f) for f in forest_grid for n in names]
    with (
        Progress(*columns, TimeElapsedColumn(), console=console) as progress,
        ProcessPoolExecutor(args.jobs) as pool,
    ):
        task = progress.add_task("fitting the forests, file by file", total=len(jobs))
        by_path = {str(p): n for n, p in paths.items()}
        for (_, f), (path, values, forest) in zip(jobs, pool.map(_forest, jobs), strict=True):
            forests[(f, by_path[path])] = (values, forest)
            progress.advance(task)
    grid = [
        replace(f, average=a, quiet_rows=q, spatial_margin=m, rearm=r)
        for f in forest_grid
        for a, q, m, r in itertools.product(AVERAGES, QUIET_ROWS, MARGINS, REARMS)
    ]
    forest_of = {g: replace(base, history=g.history, short=g.short, long=g.long) for g in grid}
    scored = {
        g: {n: StreamingScorer(g).post_process(*forests[(forest_of[g], n)]) for n in names}
        for g in grid
    }

    def label(g: StreamingSettings) -> str:
        return (
            f"history {g.history}, windows {g.short}/{g.long}, avg {g.average},"
            f" quiet {g.quiet_rows}, margin {g.spatial_margin:g}, re-arm {g.rearm:g}"
        )

    standard = {g: nab_score(scored[g], corpus, "standard").normalised for g in grid}
    shipped = nab_score(scored[base], corpus, "standard")
    best_in_sample = max(grid, key=lambda g: standard[g])
    pooled: dict[str, float] = {}
    for name, choices in (
        ("post-processing only", [g for g in grid if forest_of[g] == base]),
        ("forest and post-processing", grid),
    ):
        folds, held, chosen = _folds(corpus, names, scored, choices, base, label)
        folds.title = f"leave one category out, {name} chosen (standard profile)"
        console.print(folds)
        pooled[name] = _pooled(held)
        if choices is grid:
            majority = _majority(chosen, base)
            same = "yes" if majority == base else f"no: the folds choose {label(majority)}"
            console.print(f"what most folds choose, setting by setting, is what ships: {same}")
    console.print(
        f"in-sample, shipped settings ({label(base)}): {shipped.normalised:.1f}\n"
        f"in-sample, best of the grid ({label(best_in_sample)}):"
        f" {standard[best_in_sample]:.1f}\n"
        + "\n".join(
            f"cross-validated, {name} chosen (held-out categories pooled): {value:.1f}"
            for name, value in pooled.items()
        )
    )


def _folds(
    corpus: NabCorpus,
    names: list[str],
    scored: dict[StreamingSettings, dict[str, np.ndarray]],
    grid: list[StreamingSettings],
    base: StreamingSettings,
    label: Callable[[StreamingSettings], str],
) -> tuple[Table, list[NabResult], list[StreamingSettings]]:
    """Each category scored with the settings and threshold chosen on the others; the folds'
    choices (categories with windows only: one without cannot tell settings apart)."""
    folds = Table()
    for col in ("held-out category", "files", "chosen on the others", "threshold", "held-out"):
        folds.add_column(col, justify="left" if col != "threshold" else "right")
    held: list[NabResult] = []
    chosen_by: list[StreamingSettings] = []
    for category, files in sorted(corpus.categories.items()):
        train = corpus.subset([n for n in names if n not in files])
        test = corpus.subset(files)
        chosen = max(
            grid,
            key=lambda g: (
                nab_score({n: scored[g][n] for n in train.files}, train, "standard").normalised,
                g == base,
            ),
        )
        fitted = nab_score({n: scored[chosen][n] for n in train.files}, train, "standard")
        result = nab_score(
            {n: scored[chosen][n] for n in files}, test, "standard", threshold=fitted.threshold
        )
        held.append(result)
        if result.tp + result.fn:
            chosen_by.append(chosen)
        score = f"{result.normalised:.1f}" if math.isfinite(result.normalised) else "no windows"
        score += f" ({result.tp} of {result.tp + result.fn} windows, {result.fp} FP rows)"
        folds.add_row(category, str(len(files)), label(chosen), f"{fitted.threshold:.3f}", score)
    return folds, held, chosen_by


def _majority(chosen: list[StreamingSettings], base: StreamingSettings) -> StreamingSettings:
    """Setting by setting, the value most folds chose (a tie keeps ``base``'s value when it is
    among the most chosen, else the first of them in grid order); a setting outside the grid
    is the same in every choice."""
    picked = {}
    for name in (f.name for f in fields(base)):
        counts = Counter(getattr(c, name) for c in chosen)
        top = max(counts.values())
        tied = [v for v, n in counts.items() if n == top]
        picked[name] = getattr(base, name) if getattr(base, name) in tied else tied[0]
    return replace(base, **picked)


if __name__ == "__main__":
    main()
