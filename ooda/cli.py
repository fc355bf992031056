"""The ``ooda`` command line: the edge where flags, YAML and environment become settings."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from ooda._settings import OodaSettings

#: A terminal narrower than the scorecard wraps it; a log file gets room for all of it.
console = Console() if sys.stdout.isatty() else Console(width=140)


def _settings(args: argparse.Namespace) -> OodaSettings:
    from ooda._settings import OodaSettings
    from training import RegistrySettings, TrainingSettings

    uri = (
        args.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or RegistrySettings().tracking_uri
    )
    registry = replace(RegistrySettings(), tracking_uri=uri)
    settings = OodaSettings(training=TrainingSettings(registry=registry))
    if getattr(args, "dry_run", False):
        settings = replace(settings, dry_run=True)
    if getattr(args, "days", None) is not None:
        settings = replace(settings, demo=replace(settings.demo, history_days=args.days))
    return settings


def _cmd_demo(args: argparse.Namespace) -> int:
    from ooda._demo import run_demo

    settings = _settings(args)
    result = run_demo(settings, console)
    console.print(f"report: {result.report}   audit log: {result.audit}")
    console.print(
        f"MLflow UI: mlflow ui --backend-store-uri {settings.training.registry.tracking_uri}"
    )
    if not result.all_healed:
        console.print("[red]a scenario was not healed with the loop on[/]")
        return 1
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from training import UnknownModelError, list_models, promote, rollback

    settings = _settings(args)
    reg = settings.training.registry
    client = MlflowClient(tracking_uri=reg.tracking_uri, registry_uri=reg.tracking_uri)
    actor = args.actor or getpass.getuser()
    if args.action == "promote":
        promote(client, args.name, str(args.version), actor=actor, reason=args.reason)
        console.print(f"{args.name}: champion -> v{args.version}")
    elif args.action == "rollback":
        info = rollback(client, args.name, actor=actor, reason=args.reason)
        console.print(f"{args.name}: champion rolled back to v{info.version}")
    table = Table(title="registered models")
    for col in ("model", "version", "aliases", "role", "gate", "created"):
        table.add_column(col)
    versions = []
    for name in (reg.detector_name, reg.forecaster_name):
        try:
            versions.extend(list_models(client, [name]))
        except UnknownModelError:
            console.print(f"{name}: not registered yet (run `ooda demo` or a training pipeline)")
    for info in versions:
        table.add_row(
            info.name,
            str(info.version),
            ",".join(info.aliases),
            info.tags.get("role", ""),
            info.tags.get("gate_rule", ""),
            str(info.created),
        )
    console.print(table)
    return 0


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
    return 0


def _cmd_forecast_series(args: argparse.Namespace) -> int:
    from ooda._errors import SeriesInputError
    from ooda._series import forecast_series

    try:
        out, model, errors = forecast_series(args.input, args.horizon, args.output, args.model)
    except SeriesInputError as exc:
        console.print(f"[red]forecast-series: {exc}[/]")
        return 2
    if errors:
        table = Table(title="validation on the last fifth of the warm-up (past data only)")
        table.add_column("model")
        table.add_column("MAE", justify="right")
        for name, mae in sorted(errors.items(), key=lambda kv: kv[1]):
            table.add_row(name + (" (chosen)" if name == model else ""), f"{mae:.3f}")
        console.print(table)
    inside = ((out.value >= out.lower) & (out.value <= out.upper)).mean()
    console.print(
        f"{args.output}: {len(out)} forecast rows by {model}, horizon {args.horizon};"
        f" MAE {(out.value - out.forecast).abs().mean():.3f}, 80 % interval holds {inside:.0%}"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ooda", description=__doc__)
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite in mlruns/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the whole loop end to end on the embedded estate")
    demo.add_argument("--days", type=float, help="days of simulated history (default 7)")
    demo.add_argument("--dry-run", action="store_true", help="decide and log, change nothing")
    demo.set_defaults(func=_cmd_demo)
    models = sub.add_parser("models", help="list, promote or roll back registered models")
    models.add_argument("action", choices=["list", "promote", "rollback"])
    models.add_argument("name", nargs="?", help="registered model name (promote, rollback)")
    models.add_argument("version", nargs="?", help="version to promote")
    models.add_argument("--reason", default="manual", help="why (kept as a version tag)")
    models.add_argument("--actor", help="who (default: the current user)")
    models.set_defaults(func=_cmd_models)
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
        choices=["auto", "lstm", "ets", "seasonal_naive"],
        help="auto: the best on the end of the warm-up (default)",
    )
    forecast.set_defaults(func=_cmd_forecast_series)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ooda`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "models" and args.action != "list" and not args.name:
        parser.error(f"'ooda models {args.action}' needs a model name")
    if args.command == "models" and args.action == "promote" and not args.version:
        parser.error("'ooda models promote' needs a version")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Third-party chatter (progress bars, deprecations) would bury the scorecard.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        for noisy in ("mlflow", "ray", "feast", "pytorch_lightning", "lightning", "darts"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
