"""``ooda models`` and ``train``: the registry's aliases moved by hand or gated on the shadow
record, and retraining from Feast."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from ooda._cli_common import Subcommands, console, missing_registry, settings_from
from ooda._quiet import silence

if TYPE_CHECKING:
    from ooda._settings import OodaSettings
    from training import ShadowVerdict


def _cmd_models(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from training import RegistryError

    silence()  # MLflow's import resets the warning filters
    settings = settings_from(args)
    uri = settings.training.registry.tracking_uri
    if (missing := missing_registry(uri)) is not None:
        console.print(
            f"[red]models: no registry at {missing} (`ooda demo` or `ooda train` makes one;"
            " --tracking-uri names another)[/]"
        )
        return 2
    # A tracking server that is down should say so in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        return _models(args, settings)
    except RegistryError as exc:
        console.print(f"[red]models: {exc}[/]")
    except MlflowException as exc:
        console.print(f"[red]models: the tracking server at {uri} failed: {exc.message}[/]")
    except OSError as exc:  # connection refused, DNS, timeouts under requests
        console.print(f"[red]models: the tracking server at {uri} is unreachable: {exc}[/]")
    return 2


def _models(args: argparse.Namespace, settings: OodaSettings) -> int:
    from mlflow import MlflowClient

    from training import UnknownModelError, list_models, promote, promote_challenger, rollback

    silence()  # the training package's imports turn deprecation warnings back on
    reg = settings.training.registry
    client = MlflowClient(tracking_uri=reg.tracking_uri, registry_uri=reg.tracking_uri)
    actor = args.actor or getpass.getuser()
    if args.action == "promote" and args.from_challenger:
        verdict = _shadow_verdict(args, settings)
        info = promote_challenger(client, args.name, verdict, actor=actor)
        console.print(f"{args.name}: champion -> v{info.version} ({verdict.rule})")
    elif args.action == "promote":
        promote(
            client, args.name, str(args.version), alias=args.alias, actor=actor, reason=args.reason
        )
        console.print(f"{args.name}: {args.alias} -> v{args.version}")
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
            console.print(f"{name}: not registered yet (run `ooda demo` or `ooda train`)")
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


def _shadow_verdict(args: argparse.Namespace, settings: OodaSettings) -> ShadowVerdict:
    """Judge ``@challenger`` of ``args.name`` on the shadow record serving wrote."""
    from datetime import timedelta

    import features
    import training
    from models import read_shadow
    from ooda._train import incident_labels

    path = args.shadow or settings.feature_dir / "shadow.db"
    reg = settings.training.registry
    if args.name == reg.forecaster_name:
        record = read_shadow(path, "forecaster_shadow", model=args.name)
        if record.empty:
            raise training.ShadowGateError(f"the shadow record {path} holds no forecast")
        store = features.open_store(features.FeatureRepoSettings(settings.feature_dir.resolve()))
        start = record["timestamp"].min().to_pydatetime() - timedelta(days=1)
        end = record["timestamp"].max().to_pydatetime() + timedelta(minutes=1)
        actuals = training.request_rate_series(store, start, end, list(settings.services))
        return training.judge_forecaster_shadow(record, actuals)
    if args.name == reg.detector_name:
        record = read_shadow(path, "detector_shadow", model=args.name)
        audits = args.audit or sorted(settings.workdir.glob("audit*.db"))
        return training.judge_detector_shadow(record, incident_labels(audits))
    raise training.UnknownModelError(args.name)


def _cmd_train(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from features import FeatureError
    from ooda._config import load_config
    from ooda._errors import ConfigError, TrainInputError
    from ooda._train import retrain

    silence()
    settings = settings_from(args)
    try:
        if args.config is not None:
            settings = load_config(args.config).settings(None, base=settings)
    except ConfigError as exc:
        console.print(f"[red]train: {exc}[/]")
        return 2
    audits = args.audit or sorted(settings.workdir.glob("audit*.db"))
    try:
        retrain(
            settings,
            console,
            models=[m.strip() for m in args.models.split(",") if m.strip()],
            days=args.days,
            if_drift=args.if_drift,
            audits=audits,
        )
    except (TrainInputError, FeatureError) as exc:
        console.print(f"[red]train: {exc}[/]")
        return 2
    except MlflowException as exc:
        uri = settings.training.registry.tracking_uri
        console.print(f"[red]train: the tracking server at {uri} failed: {exc.message}[/]")
        return 2
    return 0


def add_commands(sub: Subcommands) -> None:
    """Add this module's subcommands to ``sub``."""
    models = sub.add_parser("models", help="list, promote or roll back registered models")
    models.add_argument("action", choices=["list", "promote", "rollback"])
    models.add_argument("name", nargs="?", help="registered model name (promote, rollback)")
    models.add_argument("version", nargs="?", help="version to promote")
    models.add_argument("--reason", default="manual", help="why (kept as a version tag)")
    models.add_argument("--actor", help="who (default: the current user)")
    models.add_argument(
        "--from-challenger",
        action="store_true",
        help="promote @challenger, gated on the shadow record serving wrote beside the champion",
    )
    models.add_argument(
        "--shadow", type=Path, help="the shadow record (default: shadow.db in the Feast data dir)"
    )
    models.add_argument(
        "--audit",
        type=Path,
        action="append",
        help="audit log whose incidents judge a detector challenger (default: the workdir's)",
    )
    models.add_argument(
        "--alias",
        choices=["champion", "challenger"],
        default="champion",
        help="the alias promote moves (champion: serving and the loop use it; challenger:"
        " scored in shadow only)",
    )
    models.set_defaults(func=_cmd_models)
    train = sub.add_parser(
        "train",
        help="retrain from Feast (on demand or on drift), gate, register, set @challenger",
    )
    train.add_argument(
        "--models", default="detector,forecaster", help="comma-separated: detector,forecaster"
    )
    train.add_argument("--days", type=float, default=7.0, help="days of history (default 7)")
    train.add_argument(
        "--if-drift", action="store_true", help="train only when a feature drifted (KS test)"
    )
    train.add_argument(
        "--audit",
        type=Path,
        action="append",
        help="audit log whose incidents label the detector's data (default: the workdir's)",
    )
    train.add_argument("--config", type=Path, help="ooda configuration file (YAML)")
    train.set_defaults(func=_cmd_train)
