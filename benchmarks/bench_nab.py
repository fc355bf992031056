"""Numenta Anomaly Benchmark (NAB v1.1) of ``ooda score-series``, next to NAB's scoreboard.

Run: ``.venv/bin/python benchmarks/bench_nab.py [--data ../shared/data/nab] [--jobs 2]
[--out .ooda/nab] [--scores-only DIR]`` (or ``make bench-nab``).

* runs ``ooda score-series --input IN.csv --output OUT.csv`` on every ``data/<category>/
  <series>.csv`` of the corpus, ``--jobs`` at a time, into ``<out>/scores/`` (same layout),
  timing each file;
* ``--scores-only DIR`` skips that and rescores the outputs already in ``DIR`` (for example
  ``.ooda/nab/scores``): any CSV with one ``anomaly_score`` in [0, 1] per input row;
* scores them with ``models.score_corpus`` (NAB's rules, one corpus-wide threshold per
  profile) and prints the normalised scores next to NAB's published ones, per-category
  scores at the standard profile's threshold, and per-file times; writes
  ``<out>/summary.json``.

The published numbers are on NAB's full 58-file corpus; ours is on the files present under
``--data`` (44 here), so the comparison is indicative, not exact. Copy the tables to
``benchmarks/RESULTS.md`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _machine import machine_description
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from models import NabCorpus, NabError, NabResult, load_nab_corpus, score_corpus

REPO = Path(__file__).resolve().parents[1]
NAB_FULL_CORPUS_FILES = 58
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

# NAB's scoreboard (README of numenta/NAB, v1.1 scoring, full corpus):
# standard, reward_low_FP_rate, reward_low_FN_rate.
PUBLISHED: dict[str, tuple[float, float, float]] = {
    "ARTime": (74.9, 65.1, 80.4),
    "Numenta HTM": (70.5, 62.6, 75.2),
    "CAD OSE": (69.9, 67.0, 73.2),
    "KNN CAD": (58.0, 43.4, 64.8),
    "Relative Entropy": (54.6, 47.6, 58.8),
    "Random Cut Forest": (51.7, 38.4, 59.7),
    "Twitter ADVec": (47.1, 33.6, 53.5),
    "Windowed Gaussian": (39.6, 20.9, 47.4),
    "Random": (11.0, 1.2, 19.5),
    "Null": (0.0, 0.0, 0.0),
}


def _ooda_command() -> Path:
    beside = Path(sys.executable).with_name("ooda")
    return beside if beside.exists() else REPO / ".venv" / "bin" / "ooda"


def _score_one(ooda: Path, source: Path, target: Path) -> tuple[float, str | None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    proc = subprocess.run(
        [str(ooda), "score-series", "--input", str(source), "--output", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return wall, f"exit {proc.returncode}: " + " ".join(line.strip() for line in tail)
    return wall, None


def _run_detector(
    corpus: NabCorpus, scores_dir: Path, jobs: int, console: Console
) -> dict[str, float]:
    ooda = _ooda_command()
    walls: dict[str, float] = {}
    failures: dict[str, str] = {}
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("ooda score-series", total=len(corpus.files))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {}
            for name, nab_file in corpus.files.items():
                if nab_file.path is None:
                    raise SystemExit(f"{name}: the corpus does not know its csv path")
                future = pool.submit(_score_one, ooda, nab_file.path, scores_dir / name)
                futures[future] = name
            for future in as_completed(futures):
                name = futures[future]
                wall, error = future.result()
                walls[name] = wall
                if error:
                    failures[name] = error
                progress.update(task, advance=1, description=f"{name} ({wall:.1f} s)")
    if failures:
        for name, error in sorted(failures.items()):
            console.print(f"[red]{name}[/red]: {error}")
        raise SystemExit(f"ooda score-series failed on {len(failures)} of {len(walls)} files")
    return walls


def _read_scores(corpus: NabCorpus, scores_dir: Path) -> dict[str, np.ndarray]:
    scores: dict[str, np.ndarray] = {}
    for name, nab_file in corpus.files.items():
        path = scores_dir / name
        if not path.is_file():
            raise SystemExit(f"no scores for {name}: {path} is missing")
        frame = pd.read_csv(path)
        if "anomaly_score" not in frame.columns:
            raise SystemExit(f"{path}: no anomaly_score column (columns: {list(frame.columns)})")
        if len(frame) != nab_file.n_rows:
            raise SystemExit(f"{path}: {len(frame)} rows, the input has {nab_file.n_rows}")
        if "timestamp" in frame.columns:
            stamps = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], format="ISO8601"))
            if not stamps.equals(nab_file.timestamps):
                raise SystemExit(f"{path}: timestamps differ from the input's")
        scores[name] = frame["anomaly_score"].to_numpy(dtype=float)
    return scores


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def _jsonable(value: float) -> float | None:
    return None if math.isnan(value) else value


def _scoreboard(label: str, results: dict[str, NabResult]) -> Table:
    ours = tuple(results[p].normalised for p in PROFILES)
    rows = [*PUBLISHED.items(), (label, ours)]
    rows.sort(key=lambda row: row[1][0], reverse=True)
    table = Table(title="NAB v1.1 normalised scores (published: NAB's full 58-file corpus)")
    table.add_column("detector")
    for column in ("standard", "reward_low_FP", "reward_low_FN"):
        table.add_column(column, justify="right")
    for name, values in rows:
        style = "bold green" if name == label else None
        table.add_row(name, *(_fmt(v) for v in values), style=style)
    return table


def _categories(
    corpus: NabCorpus, result: NabResult, walls: dict[str, float]
) -> tuple[Table, dict[str, Any]]:
    table = Table(title=f"per category, standard profile, corpus threshold {result.threshold:.4g}")
    for column in ("category", "files", "windows", "normalised", "raw", "detector s"):
        table.add_column(column, justify="left" if column == "category" else "right")
    summary: dict[str, Any] = {}
    for category, names in corpus.categories.items():
        windows = sum(len(corpus.files[n].windows) for n in names)
        normalised = result.normalised_over(names)
        raw = sum(result.per_file[n] for n in names)
        wall = sum(walls[n] for n in names) if walls else float("nan")
        table.add_row(
            category, str(len(names)), str(windows), _fmt(normalised), f"{raw:.2f}", _fmt(wall)
        )
        summary[category] = {
            "files": len(names),
            "windows": windows,
            "normalised_standard": _jsonable(normalised),
            "raw_standard": raw,
            "detector_wall_s": _jsonable(wall),
        }
    return table, summary


def _per_file(corpus: NabCorpus, results: dict[str, NabResult], walls: dict[str, float]) -> Table:
    table = Table(title="per file (raw scores at each profile's corpus threshold)")
    table.add_column("file", overflow="fold")
    for column in ("rows", "windows", "detector s", "standard", "low_FP", "low_FN"):
        table.add_column(column, justify="right")
    for name, nab_file in corpus.files.items():
        table.add_row(
            name,
            str(nab_file.n_rows),
            str(len(nab_file.windows)),
            _fmt(walls.get(name, float("nan")), 2),
            *(f"{results[p].per_file[name]:.2f}" for p in PROFILES),
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "nab")
    parser.add_argument("--jobs", type=int, default=2, help="detector processes in parallel")
    parser.add_argument("--out", type=Path, default=REPO / ".ooda" / "nab")
    parser.add_argument(
        "--scores-only", type=Path, metavar="DIR", help="rescore existing outputs in DIR"
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    console = Console()
    if not console.is_terminal:  # piped or logged: room for the per-file table
        console = Console(width=120)
    began = time.perf_counter()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    try:
        corpus = load_nab_corpus(args.data)
    except NabError as exc:
        raise SystemExit(f"cannot load the NAB corpus: {exc}") from exc
    for profile in PROFILES:
        if profile not in corpus.profiles:
            raise SystemExit(f"{args.data / 'profiles.json'} has no {profile!r} profile")
    console.print(
        f"NAB corpus {args.data}: {len(corpus.files)} files, {corpus.n_rows} rows, "
        f"{corpus.n_windows} windows"
    )

    walls: dict[str, float] = {}
    detector_wall = float("nan")
    if args.scores_only is not None:
        scores_dir = args.scores_only
        console.print(f"rescoring the outputs in {scores_dir} (detector not run)")
    else:
        scores_dir = args.out / "scores"
        detect_began = time.perf_counter()
        walls = _run_detector(corpus, scores_dir, args.jobs, console)
        detector_wall = time.perf_counter() - detect_began

    scores = _read_scores(corpus, scores_dir)
    score_began = time.perf_counter()
    try:
        results = {p: score_corpus(scores, corpus, p) for p in PROFILES}
    except NabError as exc:
        raise SystemExit(f"cannot score the detector's output: {exc}") from exc
    scoring_wall = time.perf_counter() - score_began

    subset = len(corpus.files) < NAB_FULL_CORPUS_FILES
    label = f"ooda ({len(corpus.files)}-file subset)" if subset else "ooda"
    console.print(_scoreboard(label, results))
    category_table, category_summary = _categories(corpus, results["standard"], walls)
    console.print(category_table)
    console.print(_per_file(corpus, results, walls))
    for p in PROFILES:
        r = results[p]
        console.print(
            f"{p}: threshold {r.threshold:.6g}, raw {r.raw:.2f} (null {r.null:.2f}, "
            f"perfect {r.perfect:.2f}), windows detected {r.tp}, missed {r.fn}, "
            f"false-positive rows {r.fp}"
        )
    total_wall = time.perf_counter() - began
    machine = machine_description()
    detector_note = (
        f"detector {detector_wall:.1f} s wall with --jobs {args.jobs} "
        f"(sum over files {sum(walls.values()):.1f} s), "
        if walls
        else "detector not run (--scores-only), "
    )
    console.print(
        f"{detector_note}scoring {scoring_wall:.2f} s, total {total_wall:.1f} s\n"
        f"machine: {machine}\ndate: {date}"
    )

    summary = {
        "date": date,
        "machine": machine,
        "data": str(args.data),
        "scores_dir": str(scores_dir),
        "files": len(corpus.files),
        "rows": corpus.n_rows,
        "windows": corpus.n_windows,
        "jobs": args.jobs if walls else None,
        "detector_wall_s": _jsonable(detector_wall),
        "scoring_wall_s": scoring_wall,
        "total_wall_s": total_wall,
        "label": label,
        "profiles": {
            p: {
                "threshold": r.threshold,
                "normalised": _jsonable(r.normalised),
                "raw": r.raw,
                "null": r.null,
                "perfect": r.perfect,
                "windows_detected": r.tp,
                "windows_missed": r.fn,
                "false_positive_rows": r.fp,
            }
            for p, r in results.items()
        },
        "categories": category_summary,
        "per_file": {
            name: {
                "rows": f.n_rows,
                "windows": len(f.windows),
                "detector_wall_s": walls.get(name),
                "raw": {p: results[p].per_file[name] for p in PROFILES},
            }
            for name, f in corpus.files.items()
        },
        "published": {
            name: dict(zip(PROFILES, values, strict=True)) for name, values in PUBLISHED.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"summary written to {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
