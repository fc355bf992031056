"""NAB with the post-processing chosen by leave-one-category-out validation, beside in-sample.

``score-series``' post-processing (the moving average of forest scores, the range-alarm
margin, the rows silenced after an alarm) was chosen while looking at the whole NAB subset;
its score there (``make bench-nab``) is an in-sample figure. This script estimates how the
choice does on data it was not made on: for each NAB category, the settings are chosen on the
other categories (the best NAB standard score, NAB's threshold sweep over those files), and
the held-out category is scored with those settings *and that threshold*. The held-out
results are pooled into one normalised score (raw, null and perfect summed over files).

The forests are fitted once per file (the expensive part; they do not depend on these
settings) and every setting of the grid is applied to their scores
(``StreamingScorer.post_process``).

Run: ``.venv/bin/python benchmarks/bench_nab_cv.py [--data ../shared/data/nab] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import itertools
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from models import NabCorpus, NabResult, StreamingScorer, StreamingSettings, load_nab_corpus
from models import score_corpus as nab_score
from ooda._series import read_series

#: The post-processing settings compared (the shipped ones among them).
GRID = {
    "average": (16, 32, 64),
    "quiet_rows": (25, 50, 100),
    "spatial_margin": (0.02, 0.05, 0.10),
}


def _forest(path: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(file, values, forest scores) with the shipped settings."""
    series = read_series(path, lenient=True)
    scorer = StreamingScorer()
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
    forests: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        Progress(*columns, TimeElapsedColumn(), console=console) as progress,
        ProcessPoolExecutor(args.jobs) as pool,
    ):
        task = progress.add_task("fitting the forests, file by file", total=len(names))
        by_path = {str(p): n for n, p in paths.items()}
        for path, values, forest in pool.map(_forest, [paths[n] for n in names]):
            forests[by_path[path]] = (values, forest)
            progress.advance(task)
    base = StreamingSettings()
    grid = [
        replace(base, average=a, quiet_rows=q, spatial_margin=m)
        for a, q, m in itertools.product(*GRID.values())
    ]
    scored = {
        g: {
            n: StreamingScorer(g).post_process(values, forest)
            for n, (values, forest) in forests.items()
        }
        for g in grid
    }

    def label(g: StreamingSettings) -> str:
        return f"avg {g.average}, quiet {g.quiet_rows}, margin {g.spatial_margin:g}"

    shipped = nab_score(scored[base], corpus, "standard")
    best_in_sample = max(grid, key=lambda g: nab_score(scored[g], corpus, "standard").normalised)
    folds = Table(title="leave one category out (standard profile)")
    for col in ("held-out category", "files", "chosen on the others", "threshold", "held-out"):
        folds.add_column(col, justify="left" if col != "threshold" else "right")
    held: list[NabResult] = []
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
        score = f"{result.normalised:.1f}" if math.isfinite(result.normalised) else "no windows"
        score += f" ({result.tp} of {result.tp + result.fn} windows, {result.fp} FP rows)"
        folds.add_row(category, str(len(files)), label(chosen), f"{fitted.threshold:.3f}", score)
    console.print(folds)
    console.print(
        f"in-sample, shipped settings ({label(base)}): {shipped.normalised:.1f}\n"
        f"in-sample, best of the grid ({label(best_in_sample)}):"
        f" {nab_score(scored[best_in_sample], corpus, 'standard').normalised:.1f}\n"
        f"cross-validated (held-out categories pooled): {_pooled(held):.1f}"
    )


if __name__ == "__main__":
    main()
