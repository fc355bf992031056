"""What every ``ooda`` subcommand shares: the console, the settings a command line makes,
signals, and argument types."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from rich.console import Console

from ooda._paths import unwritable

if TYPE_CHECKING:
    import pandas as pd

    from ooda._settings import OodaSettings

__all__ = [
    "Subcommands",
    "console",
    "has_champions",
    "missing_registry",
    "port_number",
    "positive_float",
    "positive_int",
    "print_audit_lines",
    "print_glitches",
    "settings_from",
    "stop_on_signals",
    "text",
    "unwritable",
    "workload_key",
]

#: What a family module's ``add_commands`` adds its subcommands to.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: A terminal narrower than the scorecard wraps it; a log file gets room for all of it.
console = Console() if sys.stdout.isatty() else Console(width=200)


def settings_from(args: argparse.Namespace) -> OodaSettings:
    from ooda._settings import OodaSettings
    from training import RegistrySettings, TrainingSettings

    uri = (
        args.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or RegistrySettings().tracking_uri
    )
    registry = replace(RegistrySettings(), tracking_uri=uri)
    settings = OodaSettings(training=TrainingSettings(registry=registry))
    if args.workdir is not None:
        settings = replace(settings, workdir=args.workdir)
    if getattr(args, "dry_run", False):
        settings = replace(settings, dry_run=True)
    if getattr(args, "days", None) is not None:
        settings = replace(settings, demo=replace(settings.demo, history_days=args.days))
    return settings


def print_audit_lines() -> None:
    """Every audit entry written becomes one JSON line on stdout (``ooda.audit``'s records)."""
    audit_lines = logging.getLogger("ooda.audit")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit_lines.addHandler(handler)
    audit_lines.setLevel(logging.INFO)
    audit_lines.propagate = False


def stop_on_signals(stop: threading.Event, logger: str) -> None:
    """SIGTERM and SIGINT set ``stop``: the tick in progress finishes, then the command ends."""

    def handle(signum: int, _frame: object) -> None:
        logging.getLogger(logger).warning(
            "%s: finishing the tick in progress, then stopping", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def missing_registry(uri: str) -> Path | None:
    """The SQLite file ``uri`` names when it does not exist (MLflow would create it empty:
    most likely a wrong directory or URI), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///"))
    return None if path.exists() else path


def has_champions(settings: OodaSettings) -> bool:
    from mlflow import MlflowClient

    reg = settings.training.registry
    if missing_registry(reg.tracking_uri) is not None:
        return False
    client = MlflowClient(tracking_uri=reg.tracking_uri, registry_uri=reg.tracking_uri)
    try:
        for name in (reg.detector_name, reg.forecaster_name):
            client.get_model_version_by_alias(name, "champion")
    except Exception:
        return False
    return True


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def print_glitches(out: pd.DataFrame, done: str) -> None:
    for kind, rows in out.attrs.get("glitches", {}).items():
        shown = ", ".join(map(str, rows[:5])) + (
            f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        )
        console.print(f"[yellow]{done} despite a glitch ({kind}): row {shown}[/]")


def port_number(value: str) -> int:
    """A TCP port (0: any free one)."""
    port = positive_int(value) if value != "0" else 0
    if port > 65_535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {port}")
    return port


def text(value: str) -> str:
    """Words a human gives (a reason): not blank."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be blank")
    return value.strip()


def workload_key(value: str) -> str:
    """What a circuit breaker is keyed on: ``namespace/deployment`` or ``node/NAME``."""
    parts = value.strip().split("/")
    if len(parts) != 2 or not all(part.strip() for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected namespace/deployment or node/NAME, got {value!r}"
        )
    return value.strip()
