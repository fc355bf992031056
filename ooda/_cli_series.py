"""``ooda score-series``, ``forecast-series`` and ``rca``: the models and the root-cause ranking
on files, in the benchmarks' own formats (NAB, PetShop)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rich.table import Table

from ooda._cli_common import Subcommands, console, positive_float, positive_int, print_glitches


def _cmd_score_series(args: argparse.Namespace) -> int:
    from ooda._errors import SeriesInputError
    from ooda._series import score_series

    try:
        out = score_series(args.input, args.output)
    except SeriesInputError as exc:
        console.print(f"[red]score-series: {exc}[/]")
        return 2
    console.print(
        f"{args.output}: {len(out)} rows, max anomaly_score {out.anomaly_score.max():.3f}"
    )
    print_glitches(out, "scored")
    return 0


def _cmd_forecast_series(args: argparse.Namespace) -> int:
    from ooda._errors import SeriesInputError
    from ooda._series import forecast_series

    try:
        out, model, candidates = forecast_series(args.input, args.horizon, args.output, args.model)
    except SeriesInputError as exc:
        console.print(f"[red]forecast-series: {exc}[/]")
        return 2
    if candidates:
        table = Table(
            title="auto: candidates weighed by their recent completed forecasts (past data only)"
        )
        table.add_column("model")
        table.add_column("weight at the last origin", justify="right")
        table.add_column("MAE over the forecast rows", justify="right")
        for name, c in sorted(candidates.items(), key=lambda kv: -kv[1].weight):
            table.add_row(name, f"{c.weight:.2f}", f"{c.mae:.3f}")
        console.print(table)
    print_glitches(out, "forecast")
    inside = ((out.value >= out.lower) & (out.value <= out.upper)).mean()
    console.print(
        f"{args.output}: {len(out)} forecast rows by {model}, horizon {args.horizon};"
        f" MAE {(out.value - out.forecast).abs().mean():.3f}, 80 % interval holds {inside:.0%}"
    )
    return 0


def _cmd_rca(args: argparse.Namespace) -> int:
    from ooda._errors import RcaInputError
    from ooda._petshop import rca_files
    from ooda._rca import ASKED_RCA

    settings = replace(
        ASKED_RCA,
        threshold=args.threshold or ASKED_RCA.threshold,
        persistence=args.persistence or ASKED_RCA.persistence,
    )
    try:
        ranking, notes = rca_files(
            args.graph,
            args.abnormal,
            args.target_node,
            args.target_metric,
            args.target_statistic,
            args.normal,
            settings,
        )
        ranking.to_csv(args.output, index=False)
    except RcaInputError as exc:
        console.print(f"[red]rca: {exc}[/]")
        return 2
    except OSError as exc:
        console.print(f"[red]rca: cannot write {args.output}: {exc}[/]")
        return 2
    for note in notes:
        console.print(f"[yellow]rca: {note}[/]")
    if ranking.empty:
        console.print(f"{args.output}: no root cause found ({args.target_node} is not anomalous)")
    else:
        top = ", ".join(f"{n} ({s:.2f})" for n, s in ranking.head(3).itertuples(index=False))
        console.print(f"{args.output}: {len(ranking)} candidates; best first: {top}")
    return 0


def add_commands(sub: Subcommands) -> None:
    """Add this module's subcommands to ``sub``."""
    rca = sub.add_parser(
        "rca", help="rank the root causes of a symptom over a call graph (PetShop's file formats)"
    )
    rca.add_argument("--graph", type=Path, required=True, help="adjacency matrix: row calls column")
    rca.add_argument(
        "--abnormal", type=Path, required=True, help="metrics.csv around the issue (3 header rows)"
    )
    rca.add_argument("--target-node", required=True, help="the component showing the symptom")
    rca.add_argument("--target-metric", required=True, choices=["latency", "availability"])
    rca.add_argument("--target-statistic", default="Average", help="statistic (default Average)")
    rca.add_argument("--normal", type=Path, help="metrics.csv of normal operation (optional)")
    rca.add_argument("--output", type=Path, required=True, help="ranking.csv: node,score")
    rca.add_argument(
        "--threshold",
        type=positive_float,
        help="robust z-score from which a component is anomalous (default 2.5)",
    )
    rca.add_argument(
        "--persistence",
        type=positive_int,
        help="steps the symptom must hold before causes are ranked (default 1: you saw it;"
        " 2 answers less often on normal windows and misses more short incidents)",
    )
    rca.set_defaults(func=_cmd_rca)
    score = sub.add_parser(
        "score-series",
        help="causal anomaly score per row of a timestamp,value CSV (NAB format)",
    )
    score.add_argument("--input", type=Path, required=True, help="CSV with timestamp,value")
    score.add_argument("--output", type=Path, required=True, help="CSV to write")
    score.set_defaults(func=_cmd_score_series)
    forecast = sub.add_parser(
        "forecast-series",
        help="rolling-origin forecasts with an 80 %% interval of a timestamp,value CSV",
    )
    forecast.add_argument("--input", type=Path, required=True, help="CSV with timestamp,value")
    forecast.add_argument("--horizon", type=int, required=True, help="rows per forecast")
    forecast.add_argument("--output", type=Path, required=True, help="CSV to write")
    forecast.add_argument(
        "--model",
        default="auto",
        choices=["auto", "lstm", "ets", "seasonal_naive", "naive"],
        help="auto (default): every model, weighed per origin by its recent completed forecasts",
    )
    forecast.set_defaults(func=_cmd_forecast_series)
