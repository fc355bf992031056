"""NAB (v1.1) of the control loop's own detector, beside ``ooda score-series``' figure.

Run: ``.venv/bin/python benchmarks/bench_nab_loop.py [--data ../shared/data/nab]
[--out .ooda/nab-loop]`` (or ``make bench-nab-loop``).

``make bench-nab`` measures ``ooda score-series``, an online scorer built for a lone series
with no history. The loop does not run it: it scores each service's newest feature row with
the Isolation Forest that ``ooda train`` fitted on Feast's history (``training``'s
``DetectorTraining`` settings, ``envelope_quantile`` and calibration included), and calls a
row anomalous at a calibrated score of 0.5. This benchmark measures *that* on NAB, so that
RESULTS.md has a number for what runs:

* one NAB series is one metric of one service. The loop's detector sees a metric in two
  forms: as a level (p95, error rate, CPU) and as a ratio to its trailing-hour mean (the
  request rate's ``request_rate_ratio_1h``); both are its features here, computed as
  ``features.build_features`` does (time-based windows ending at the row);
* the forest is fitted on NAB's probationary rows (the only rows NAB leaves unscored), then
  refitted once a day of rows on all earlier rows, at most ``--history-days`` of them, as a
  daily ``ooda train`` would (no labels: NAB gives none online);
* two verdicts are scored with NAB's own rules (``models.score_corpus``): the calibrated
  score with NAB's threshold sweep, and the loop's fixed 0.5 threshold (``models
  .ANOMALY_THRESHOLD``) as a 0/1 score, which is what the loop acts on.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import machine_description
from bench_nab import PROFILES, _categories, _scoreboard
from rich.console import Console
from rich.progress import track

from models import (
    ANOMALY_THRESHOLD,
    IsolationForestDetector,
    NabCorpus,
    NabError,
    NabFile,
    load_nab_corpus,
    score_corpus,
)
from ooda._series import read_series
from training import DetectorTraining

REPO = Path(__file__).resolve().parents[1]
LOOP_FEATURES = ("level", "ratio_1h")


def loop_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The metric's level and its ratio to the trailing-hour mean, per row."""
    values = frame["value"].ffill().bfill().to_numpy(dtype=float)
    stamps = frame["timestamp"].ffill().bfill()
    # Time-based windows need increasing stamps: a step back is held at the latest seen.
    clock = pd.DatetimeIndex(stamps.cummax())
    hourly = pd.Series(values, index=clock).rolling("60min").mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(hourly > 0, values / hourly, np.nan)
    return pd.DataFrame({"level": values, "ratio_1h": ratio})


def loop_scores(nab_file: NabFile, settings: DetectorTraining, history_days: int) -> np.ndarray:
    """The loop detector's calibrated score of every row of one NAB file."""
    assert nab_file.path is not None
    frame = read_series(nab_file.path, lenient=True)
    features = loop_features(frame)
    n = len(features)
    start = nab_file.probation
    spacing = pd.Series(nab_file.timestamps).diff().median()
    per_day = max(1, round(pd.Timedelta(days=1) / spacing)) if spacing > pd.Timedelta(0) else 288
    out = np.zeros(n)
    while start < n:
        stop = min(n, start + per_day)
        history = features.iloc[max(0, start - history_days * per_day) : start]
        detector = IsolationForestDetector(
            LOOP_FEATURES,
            n_estimators=settings.n_estimators,
            threshold_quantile=settings.threshold_quantile,
            envelope_quantile=settings.envelope_quantile,
            random_state=settings.seed,
        ).fit(history)
        out[start:stop] = detector.score(features.iloc[start:stop])
        start = stop
    return np.clip(np.nan_to_num(out), 0.0, 1.0)


def _run(
    corpus: NabCorpus, settings: DetectorTraining, history_days: int, console: Console
) -> tuple[dict[str, np.ndarray], float]:
    scores: dict[str, np.ndarray] = {}
    began = time.perf_counter()
    for name, nab_file in track(corpus.files.items(), description="loop detector", console=console):
        scores[name] = loop_scores(nab_file, settings, history_days)
    return scores, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "nab")
    parser.add_argument("--out", type=Path, default=REPO / ".ooda" / "nab-loop")
    parser.add_argument(
        "--history-days", type=int, default=14, help="days of rows each refit is fitted on"
    )
    args = parser.parse_args()
    if args.history_days < 1:
        parser.error("--history-days must be at least 1")
    console = Console() if Console().is_terminal else Console(width=120)
    # The detector logs each refit's imputed ratios (a zero hourly mean): noise here.
    logging.getLogger("models").setLevel(logging.ERROR)
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        corpus = load_nab_corpus(args.data)
    except NabError as exc:
        raise SystemExit(f"cannot load the NAB corpus: {exc}") from exc
    console.print(
        f"NAB corpus {args.data}: {len(corpus.files)} files, {corpus.n_rows} rows, "
        f"{corpus.n_windows} windows"
    )
    settings = DetectorTraining()
    scores, wall = _run(corpus, settings, args.history_days, console)
    verdicts = {name: (s >= ANOMALY_THRESHOLD).astype(float) for name, s in scores.items()}
    swept = {p: score_corpus(scores, corpus, p) for p in PROFILES}
    fixed = {p: score_corpus(verdicts, corpus, p, threshold=0.5) for p in PROFILES}
    label = f"loop detector, NAB sweep ({len(corpus.files)} files)"
    console.print(_scoreboard(label, swept))
    table, per_category = _categories(corpus, swept["standard"], {})
    console.print(table)
    summary: dict[str, object] = {
        "date": date,
        "machine": machine_description(),
        "files": len(corpus.files),
        "history_days": args.history_days,
        "settings": {
            "n_estimators": settings.n_estimators,
            "threshold_quantile": settings.threshold_quantile,
            "envelope_quantile": settings.envelope_quantile,
        },
        "wall_s": wall,
        "categories_swept_standard": per_category,
    }
    for kind, results in (("swept", swept), ("fixed_0.5", fixed)):
        summary[kind] = {}
        for p, r in results.items():
            console.print(
                f"{kind} {p}: normalised {r.normalised:.1f}, threshold {r.threshold:.4g}, "
                f"windows detected {r.tp} missed {r.fn}, false-positive rows {r.fp}"
            )
            summary[kind][p] = {  # type: ignore[index]
                "normalised": r.normalised,
                "threshold": r.threshold,
                "windows_detected": r.tp,
                "windows_missed": r.fn,
                "false_positive_rows": r.fp,
            }
    console.print(f"detector {wall:.1f} s\nmachine: {summary['machine']}\ndate: {date}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"summary written to {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
