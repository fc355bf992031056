"""The ``ooda`` command line: the edge where flags, YAML and environment become settings."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from ooda._quiet import silence

if TYPE_CHECKING:
    import pandas as pd

    from ooda._audit import AuditStore
    from ooda._settings import OodaSettings
    from training import ShadowVerdict

#: A terminal narrower than the scorecard wraps it; a log file gets room for all of it.
console = Console() if sys.stdout.isatty() else Console(width=200)


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
    if args.workdir is not None:
        settings = replace(settings, workdir=args.workdir)
    if getattr(args, "dry_run", False):
        settings = replace(settings, dry_run=True)
    if getattr(args, "days", None) is not None:
        settings = replace(settings, demo=replace(settings.demo, history_days=args.days))
    return settings


def _cmd_demo(args: argparse.Namespace) -> int:
    import serving  # its imports reset warning filters and log levels, hence first
    from training import train_detector  # noqa: F401  (likewise Feast, darts, PyTorch)

    silence()
    from ooda._demo import run_demo

    settings = _settings(args)
    try:
        result = run_demo(settings, console)
    except serving.ServingError as exc:
        console.print(f"[red]demo: Ray Serve did not come up: {exc}[/]")
        return 2
    logs = ", ".join(str(p) for p in result.audits)
    console.print(f"report: {result.report}   audit logs: {logs}")
    console.print("incident pages: " + ", ".join(str(p) for p in result.incident_pages))
    console.print(
        f"MLflow UI: mlflow ui --backend-store-uri {settings.training.registry.tracking_uri}"
    )
    if not result.all_healed:
        console.print("[red]a scenario was not healed with the loop on[/]")
        return 1
    return 0


def _print_audit_lines() -> None:
    """Every audit entry written becomes one JSON line on stdout (``ooda.audit``'s records)."""
    audit_lines = logging.getLogger("ooda.audit")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit_lines.addHandler(handler)
    audit_lines.setLevel(logging.INFO)
    audit_lines.propagate = False


def _stop_on_signals(stop: threading.Event, logger: str) -> None:
    """SIGTERM and SIGINT set ``stop``: the tick in progress finishes, then the command ends."""

    def handle(signum: int, _frame: object) -> None:
        logging.getLogger(logger).warning(
            "%s: finishing the tick in progress, then stopping", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace as dc_replace

    from contracts import ActionKind
    from ooda._config import load_config
    from ooda._errors import ConfigError
    from ooda._fakes import RuleScorer
    from ooda._leader import LeaderElector
    from ooda._loop import ControlLoop
    from ooda._run import EXIT_CONFIG, STATE_FILE, Runner, build_loop, connect_kube
    from ooda._run_metrics import RunMetrics
    from ooda._scoring import Scorer, ScoringClient

    try:
        config = load_config(args.config)
        settings = config.settings(args.region)
        kinds = [k.strip() for k in (args.propose_only or "").split(",") if k.strip()]
        unknown = [k for k in kinds if k not in set(ActionKind)]
        if unknown:
            raise ConfigError(f"--propose-only: unknown action kinds {', '.join(unknown)}")
        if args.dry_run:
            settings = dc_replace(
                settings, dry_run=True, guard=dc_replace(settings.guard, dry_run=True)
            )
        if kinds:
            propose = settings.autonomy.propose_only | frozenset(kinds)
            settings = dc_replace(
                settings, autonomy=dc_replace(settings.autonomy, propose_only=propose)
            )
        scorer: Scorer = RuleScorer() if args.scorer == "rules" else ScoringClient(settings.serving)
        kube = connect_kube(config.region(args.region))
    except ConfigError as exc:
        console.print(f"[red]run: {exc}[/]")
        return EXIT_CONFIG
    _print_audit_lines()
    metrics = RunMetrics()
    server = None
    if args.metrics_port is not None:
        try:
            server, _ = metrics.serve(args.metrics_port, args.metrics_addr)
        except OSError as exc:
            console.print(f"[red]run: cannot serve /metrics on port {args.metrics_port}: {exc}[/]")
            return EXIT_CONFIG
    elector = None
    if settings.leader.enabled:
        elector = LeaderElector(
            kube.coordination_v1, settings.leader.namespace or settings.namespace, settings.leader
        )

    models = detectors = None
    if args.scorer != "rules":  # the served models' registries, for the live watches
        from mlflow import MlflowClient

        from ooda._forecaster_registry import MlflowDetectorRegistry, MlflowForecasterRegistry

        uri = settings.training.registry.tracking_uri
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        models = MlflowForecasterRegistry(client, settings.training.registry.forecaster_name)
        detectors = MlflowDetectorRegistry(client, settings.training.registry.detector_name)

    def make_loop() -> ControlLoop:
        may_act = None if elector is None else elector.is_leader
        return build_loop(
            config,
            settings,
            region=args.region,
            scorer=scorer,
            kube=kube,
            may_act=may_act,
            models=models,
            detectors=detectors,
        )

    runner = Runner(
        make_loop,
        settings,
        elector=elector,
        metrics=metrics,
        state_path=config.audit.path.parent / STATE_FILE,
    )

    _stop_on_signals(runner.stop, "ooda.run")
    try:
        return runner.run(once=args.once)
    finally:
        if server is not None:
            server.shutdown()


def _cmd_chaos(args: argparse.Namespace) -> int:
    import serving  # noqa: F401  (its imports reset warning filters and log levels)
    from training import train_detector  # noqa: F401  (likewise Feast, darts, PyTorch)

    # A chaos run's loops report through their audit logs and the scorecard, not the terminal.
    silence("ooda.loop")
    from ooda._chaos import ChaosSettings, parse_scenarios, run_chaos, total_work
    from ooda._chaos_report import (
        capacity_text,
        confusion_table,
        table,
        to_json,
        write_html,
        write_json,
    )
    from ooda._demo import progress_bar
    from ooda._errors import ChaosError, ScoringUnavailableError
    from ooda._fakes import RuleScorer
    from ooda._platform import history_lab, serve, train_models
    from ooda._scoring import ScoringClient

    settings = _settings(args)
    try:
        chaos = ChaosSettings(
            scenarios=parse_scenarios(args.scenarios),
            runs=args.runs,
            seed=args.seed,
            clean_week_days=args.clean_week_days,
            predictive_days=args.predictive_days,
        )
        if args.runs < 0 or args.clean_week_days < 0 or args.predictive_days < 0:
            raise ChaosError(
                f"--runs, --clean-week-days and --predictive-days must be >= 0, got"
                f" {args.runs}, {args.clean_week_days}, {args.predictive_days}"
            )
    except ChaosError as exc:
        console.print(f"[red]chaos: {exc}[/]")
        return 2
    progress = progress_bar(console)
    with progress:
        task = progress.add_task("chaos runs", total=max(1, total_work(chaos)))

        def advance(_what: str, n: int) -> None:
            progress.advance(task, n)

        if args.scorer == "rules":
            result = run_chaos(settings, chaos, RuleScorer(), advance)
        elif args.serve_url:
            scorer = ScoringClient(replace(settings.serving, base_url=args.serve_url))
            try:
                result = run_chaos(settings, chaos, scorer, advance)
            except ScoringUnavailableError as exc:
                console.print(f"[red]chaos: {exc}[/]")
                return 2
            finally:
                scorer.close()
        else:
            if args.train or not _has_champions(settings):
                train_models(settings, history_lab(settings, progress), progress)
            with serve(settings, progress) as client_settings:
                scorer = ScoringClient(client_settings)
                try:
                    result = run_chaos(settings, chaos, scorer, advance)
                except ScoringUnavailableError as exc:
                    console.print(f"[red]chaos: {exc}[/]")
                    return 2
                finally:
                    scorer.close()
    data = to_json(result)
    console.print(table(data))
    if data["confusion"]:
        console.print(confusion_table(data))
    if data["clean_week"] is not None:
        console.print(
            f"clean week: {data['clean_week']['days']:g} days,"
            f" {data['clean_week']['false_actions']} false actions"
        )
    if data["predictive_week"] is not None:
        console.print(capacity_text(data["predictive_week"]))
    if args.json:
        console.print(f"json: {write_json(result, args.json)}")
    page = write_html(result, data, settings.slo, settings.workdir / "chaos.html")
    console.print(f"report: {page}")
    return 0


def _cmd_failover_drill(args: argparse.Namespace) -> int:
    import json

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ooda._failover_drill import DrillSettings, run_drill

    # The regional loops report through the scorecard's columns, not the terminal.
    silence("ooda.loop")
    if args.runs < 1 or args.clean_runs < 0:
        console.print(
            f"[red]failover-drill: --runs must be >= 1 and --clean-runs >= 0, got"
            f" {args.runs} and {args.clean_runs}[/]"
        )
        return 2
    from ooda._settings import OodaSettings

    settings = OodaSettings(dry_run=args.dry_run)
    if args.workdir is not None:
        settings = replace(settings, workdir=args.workdir)
    drill = DrillSettings(
        runs=args.runs,
        seed=args.seed,
        clean_runs=args.clean_runs,
        regional_loops=args.regional_loops,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("failover drill", total=2 * args.runs + args.clean_runs)
        report = run_drill(
            settings,
            drill,
            settings.workdir / "failover-drill",
            lambda what: progress.update(task, advance=1, description=what),
        )
    table = Table(title=f"Region-wide outages, {args.runs} runs, seed {args.seed}")
    headings = (
        "mode",
        "runs",
        "breach min (mean)",
        "failed over",
        "failover s (median)",
        "failed back",
        "failback s (median)",
        "pod-min (mean)",
        "actions (mean)",
        "failed heals",
        "wrong way",
        *(("regional loops' actions (mean)", "their failed heals") if args.regional_loops else ()),
    )
    for heading in headings:
        table.add_column(heading, justify="left" if heading == "mode" else "right")
    rows = report.summary()
    for row in rows:
        table.add_row(
            row["mode"],
            str(row["runs"]),
            f"{row['breach_minutes']:.1f}",
            str(row["failed_over"]),
            "—" if row["failover_s"] != row["failover_s"] else f"{row['failover_s']:.0f}",
            str(row["failed_back"]),
            "—" if row["failback_s"] != row["failback_s"] else f"{row['failback_s']:.0f}",
            f"{row['pod_minutes']:.0f}",
            f"{row['actions']:.1f}",
            str(row["failed_heals"]),
            str(row["wrong_way"]),
            *(
                (f"{row['loop_actions']:.1f}", str(row["loop_failed_heals"]))
                if args.regional_loops
                else ()
            ),
        )
    console.print(table)
    if args.json:
        runs = [{**r.__dict__, "start": r.start.isoformat()} for r in report.runs]
        args.json.write_text(json.dumps({"summary": rows, "runs": runs}, indent=1, default=str))
        console.print(f"json: {args.json}")
    return 0


def _cmd_failover(args: argparse.Namespace) -> int:
    from dataclasses import replace as dc_replace

    from ooda._audit import AuditError
    from ooda._config import load_config
    from ooda._errors import ConfigError
    from ooda._escalate import Escalator
    from ooda._failover_run import FailoverRunner, HttpProbe, build_failover
    from ooda._run import EXIT_CONFIG

    try:
        config = load_config(args.config)
        settings = config.failover_settings()
        if args.dry_run:
            settings = dc_replace(
                settings, dry_run=True, guard=dc_replace(settings.guard, dry_run=True)
            )
        assert config.failover is not None  # failover_settings says so otherwise
        probe = HttpProbe(config.failover.probes, config.failover.probe_timeout.total_seconds())
        controller = build_failover(config, settings, probe)
    except (ConfigError, AuditError) as exc:
        console.print(f"[red]failover: {exc}[/]")
        return EXIT_CONFIG
    _print_audit_lines()
    escalator = Escalator(settings.escalation, settings.namespace, settings.failover.record)
    runner = FailoverRunner(controller, escalator)

    _stop_on_signals(runner.stop, "ooda.failover")
    try:
        return runner.run(once=args.once)
    finally:
        probe.close()
        controller.journal.audit.close()


def _cmd_serve(args: argparse.Namespace) -> int:
    """Serve the registry's champions in the foreground until Ctrl-C or SIGTERM."""
    import serving

    silence()  # MLflow's and Ray's imports reset the warning filters
    settings = _settings(args)
    if not _has_champions(settings):
        console.print(
            "[red]serve: the registry has no @champion detector and forecaster yet;"
            " run `ooda demo` (or `ooda chaos --train`) to train them[/]"
        )
        return 2
    serve_settings = serving.ServingSettings(
        tracking_uri=settings.training.registry.tracking_uri,
        feature_data_dir=settings.feature_dir.resolve(),
        host=args.host,
        port=args.port,
    )
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        app = serving.start(serve_settings)
    except serving.ServingError as exc:
        console.print(f"[red]serve: {exc}[/]")
        return 2
    console.print(f"serving the champions at {app.url} (/v1/anomaly, /v1/forecast); Ctrl-C stops")
    try:
        stopping.wait()
    finally:
        serving.stop()
    console.print("stopped")
    return 0


def _has_champions(settings: OodaSettings) -> bool:
    from mlflow import MlflowClient

    reg = settings.training.registry
    client = MlflowClient(tracking_uri=reg.tracking_uri, registry_uri=reg.tracking_uri)
    try:
        for name in (reg.detector_name, reg.forecaster_name):
            client.get_model_version_by_alias(name, "champion")
    except Exception:
        return False
    return True


def _audit_path(args: argparse.Namespace) -> Path:
    return Path(args.audit)


def _is_url(where: str) -> bool:
    return where.startswith(("postgresql://", "postgres://"))


def _shown(where: str) -> str:
    """An audit location as printed (a URL without its password)."""
    if not _is_url(where):
        return where
    from ooda._audit_pg import redacted

    return redacted(where)


def _open_audit(args: argparse.Namespace, command: str) -> AuditStore | None:
    """The audit log named by ``--audit`` (a file or a ``postgresql://`` URL), or None after
    saying why it cannot be opened (a missing file is refused rather than created: it is most
    likely a wrong path)."""
    from ooda._audit import AuditError, open_audit

    if not _is_url(args.audit) and not _audit_path(args).exists():
        console.print(f"[red]{command}: no audit log at {args.audit}[/]")
        return None
    try:
        return open_audit(args.audit)
    except AuditError as exc:
        console.print(f"[red]{command}: {exc}[/]")
        return None


def _cmd_status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from actuators import Guard, registered_actions
    from ooda._autonomy import ErrorBudget
    from ooda._recover import recover

    settings = _settings(args)
    audit = _open_audit(args, "status")
    if audit is None:
        return 2
    guard, budget = Guard(settings.guard), ErrorBudget(settings.autonomy)
    found = recover(audit, guard, budget)
    entries = audit.entries()
    now = max([datetime.now(UTC), *(e.at for e in entries)])
    days = settings.autonomy.budget_window.days
    table = Table(title=f"autonomy by action kind (failed heals in the last {days} days)")
    for col in ("action kind", "failed heals", "budget", "autonomy", "why"):
        table.add_column(col)
    for kind in registered_actions():
        standing = budget.standing(str(kind), now)
        level = "[yellow]propose-only[/]" if standing.propose_only else "[green]act[/]"
        table.add_row(str(kind), str(standing.failed), f"< {standing.budget}", level, standing.why)
    console.print(table)
    breakers = guard.open_breakers(now)
    console.print(
        "open circuit breakers: "
        + (", ".join(f"{k} (until {v:%Y-%m-%d %H:%M})" for k, v in breakers.items()) or "none")
    )
    console.print(
        "awaiting verification: "
        + (", ".join(f"{p.action.kind} {p.action.target}" for p in found.pending) or "none")
    )
    watched = [e for e in entries if e.action.startswith("model_")]
    console.print(
        "model watches: "
        + (
            "; ".join(
                f"{e.at:%Y-%m-%d %H:%M} {e.evidence.get('model', 'forecaster')}"
                f" {e.action.removeprefix('model_')}"
                f" v{e.evidence.get('version', '?')}: {e.outcome}"
                for e in watched[-5:]
            )
            or "nothing condemned"
        )
    )
    from ooda._records import IDLE
    from ooda._run import STATE_FILE, RunState

    state_file = Path(args.state) if args.state else _audit_path(args).parent / STATE_FILE
    run = None if _is_url(args.audit) and not args.state else RunState.load(state_file)
    if run is None:
        console.print(f"ooda run: no state at {state_file} (no `ooda run` wrote one there)")
    else:
        console.print(
            f"ooda run: region {run['region']}, pid {run['pid']}, {run.get('role', 'single')},"
            f" leader {run.get('leader') or 'not elected (single replica)'},"
            f" {'dry-run, ' if run['dry_run'] else ''}{run['ticks']} ticks, last tick"
            f" {run['last_tick'] or 'none yet'}"
        )
        for problem in run["problems"]:
            if problem["reason"] == IDLE:
                console.print(
                    f"  idle: {problem['service']} serves nobody now; only its pods' own"
                    " faults are acted on"
                )
                continue
            console.print(
                f"  not acted on: {problem['service']} ({problem['stage']}): {problem['reason']}"
            )
    check = audit.verify()
    state = "[green]intact[/]" if check.ok else "[red]TAMPERED[/]: " + "; ".join(check.problems)
    console.print(f"audit log {_shown(args.audit)}: {check.rows} rows, {state}")
    audit.close()
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ooda._incident_page import write_pages
    from ooda._incidents import incidents

    audit = _open_audit(args, "report")
    if audit is None:
        return 2
    found = incidents(audit)
    if args.incident is not None and all(i.id != args.incident for i in found):
        known = ", ".join(str(i.id) for i in found) or "none"
        console.print(
            f"[red]report: no incident {args.incident} in {_shown(args.audit)} "
            f"(incidents: {known})[/]"
        )
        return 2
    pages = write_pages(found, args.out, only=args.incident)
    shown = pages[1] if args.incident is not None else pages[0]
    console.print(f"{len(found)} incident(s); wrote {len(pages)} page(s): {shown}")
    return 0


def _cmd_serve_ui(args: argparse.Namespace) -> int:
    from ooda._incident_ui import serve_incidents

    audit = _open_audit(args, "serve-ui")
    if audit is None:
        return 2
    try:
        server = serve_incidents(audit, args.host, args.port)
    except OSError as exc:
        console.print(f"[red]serve-ui: cannot listen on {args.host}:{args.port}: {exc}[/]")
        return 2
    console.print(f"incident pages at http://{args.host}:{server.server_port}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from ooda._audit import AuditError, open_audit, verify_file

    try:
        if _is_url(args.audit):
            store = open_audit(args.audit)
            check = store.verify()
            store.close()
        else:
            check = verify_file(_audit_path(args))
    except AuditError as exc:
        console.print(f"[red]audit: {exc}[/]")
        return 2
    if check.ok:
        console.print(f"{_shown(args.audit)}: {check.rows} rows, hash chain and anchor intact")
        return 0
    for problem in check.problems:
        console.print(f"[red]{problem}[/]")
    return 1


def _cmd_breaker(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from ooda._recover import reset_breaker

    audit = _open_audit(args, "breaker")
    if audit is None:
        return 2
    actor = args.actor or getpass.getuser()
    entry = reset_breaker(audit, args.workload, actor, args.reason, datetime.now(UTC))
    audit.close()
    console.print(f"breaker of {args.workload} reset by {actor} (audit entry {entry})")
    return 0


def _cmd_approve(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from ooda._approve import ApprovalError, approve
    from ooda._config import load_config
    from ooda._errors import ConfigError
    from ooda._run import connect_kube

    try:
        config = load_config(args.config)
        settings = config.settings(args.region)
        kube = connect_kube(config.region(args.region))
    except ConfigError as exc:
        console.print(f"[red]approve: {exc}[/]")
        return 2
    audit = _open_audit(args, "approve")
    if audit is None:
        return 2
    actor = args.actor or getpass.getuser()
    try:
        done = approve(
            audit, args.id, kube, settings, actor, datetime.now(UTC), dry_run=args.dry_run
        )
    except ApprovalError as exc:
        console.print(f"[red]approve: {exc}[/]")
        return 2
    finally:
        audit.close()
    what = f"{done.proposal.action} {done.proposal.target}"
    console.print(f"proposal {args.id} ({what}) approved by {actor}: {done.outcome}")
    return 0 if done.outcome in ("applied", "dry-run") else 1


def _cmd_models(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from training import RegistryError

    silence()  # MLflow's import resets the warning filters
    settings = _settings(args)
    uri = settings.training.registry.tracking_uri
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
    settings = _settings(args)
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
    _print_glitches(out, "scored")
    return 0


def _print_glitches(out: pd.DataFrame, done: str) -> None:
    for kind, rows in out.attrs.get("glitches", {}).items():
        shown = ", ".join(map(str, rows[:5])) + (
            f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        )
        console.print(f"[yellow]{done} despite a glitch ({kind}): row {shown}[/]")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


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
    _print_glitches(out, "forecast")
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
    parser.add_argument(
        "--workdir", type=Path, help="where reports and audit logs go (default: .ooda)"
    )
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
    chaos = sub.add_parser(
        "chaos", help="randomized scenario scorecard: ooda against doing nothing and playbooks"
    )
    chaos.add_argument(
        "--scenarios", default="all", help="'all' or a comma-separated list of scenario ids"
    )
    chaos.add_argument("--runs", type=int, default=20, help="instances per scenario (20)")
    chaos.add_argument("--seed", type=int, default=0, help="seed of the draws (0)")
    chaos.add_argument(
        "--clean-week-days",
        type=float,
        default=0.0,
        help="days of a fault-free estate on which every action counts as false (0: skip)",
    )
    chaos.add_argument(
        "--predictive-days",
        type=float,
        default=0.0,
        help="days of seasonal traffic under predictive scaling against the reactive HPA (0: skip)",
    )
    chaos.add_argument("--json", type=Path, help="write the scorecard contract JSON here")
    chaos.add_argument(
        "--scorer",
        choices=["serve", "rules"],
        default="serve",
        help="serve: the registry's champions on Ray Serve (default); rules: thresholds only,"
        " for a quick look without models",
    )
    chaos.add_argument("--train", action="store_true", help="train new champions first")
    chaos.add_argument(
        "--serve-url", help="score with an already running ooda Serve application at this URL"
    )
    chaos.set_defaults(func=_cmd_chaos)
    failover = sub.add_parser(
        "failover",
        help="fail a public name's users over between the configured regions, and back",
    )
    failover.add_argument("--config", type=Path, required=True, help="ooda YAML configuration")
    failover.add_argument("--once", action="store_true", help="one tick, then exit")
    failover.add_argument(
        "--dry-run", action="store_true", help="decide and audit, move nobody (the preview)"
    )
    failover.set_defaults(func=_cmd_failover)

    drill = sub.add_parser(
        "failover-drill",
        help="region-wide outages on a two-region fleet: failover and failback against none",
    )
    drill.add_argument("--runs", type=int, default=10, help="outages to draw (10)")
    drill.add_argument("--seed", type=int, default=7, help="seed of the draws (7)")
    drill.add_argument(
        "--clean-runs", type=int, default=2, help="runs with no outage, where nothing may move (2)"
    )
    drill.add_argument(
        "--regional-loops",
        action="store_true",
        help="run each region's own loop beside the controller (rules scorer), as in production",
    )
    drill.add_argument("--json", type=Path, help="write every run and the summary here")
    drill.add_argument(
        "--dry-run", action="store_true", help="decide and audit, move nobody (the preview)"
    )
    drill.set_defaults(func=_cmd_failover_drill)

    serve_cmd = sub.add_parser(
        "serve", help="serve the registry's champions (Ray Serve) until Ctrl-C or SIGTERM"
    )
    serve_cmd.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, default=8000, help="HTTP port (8000)")
    serve_cmd.set_defaults(func=_cmd_serve)
    run = sub.add_parser(
        "run", help="the loop on the wall clock against a configured region (Prometheus + cluster)"
    )
    run.add_argument("--config", type=Path, required=True, help="configuration file (YAML)")
    run.add_argument("--region", help="the region to look after (default: the file's first)")
    run.add_argument("--once", action="store_true", help="one tick, then exit")
    run.add_argument("--dry-run", action="store_true", help="decide and log, change nothing")
    run.add_argument(
        "--propose-only", help="comma-separated action kinds only ever proposed, never applied"
    )
    run.add_argument(
        "--scorer",
        choices=["serve", "rules"],
        default="serve",
        help="serve: the Ray Serve endpoints of the configuration (default); rules: thresholds",
    )
    run.add_argument("--metrics-port", type=int, help="serve ooda's own /metrics on this port")
    run.add_argument("--metrics-addr", default="127.0.0.1", help="interface of /metrics")
    run.set_defaults(func=_cmd_run)
    status = sub.add_parser("status", help="autonomy, budgets and breakers from the audit log")
    status.add_argument(
        "--audit", default=".ooda/audit.db", help="audit log (SQLite file or postgresql:// URL)"
    )
    status.add_argument("--state", help="run-state.json of `ooda run` (default: beside --audit)")
    status.set_defaults(func=_cmd_status)
    audit = sub.add_parser("audit", help="verify the audit log's hash chain")
    audit.add_argument("action", choices=["verify"])
    audit.add_argument(
        "--audit", default=".ooda/audit.db", help="audit log (SQLite file or postgresql:// URL)"
    )
    audit.set_defaults(func=_cmd_audit)
    breaker = sub.add_parser("breaker", help="reset a workload's circuit breaker")
    breaker.add_argument("action", choices=["reset"])
    breaker.add_argument("workload", help="namespace/deployment (or node/NAME)")
    breaker.add_argument("--reason", required=True, help="why (kept in the audit log)")
    breaker.add_argument("--actor", help="who (default: the current user)")
    breaker.add_argument(
        "--audit", default=".ooda/audit.db", help="audit log (SQLite file or postgresql:// URL)"
    )
    breaker.set_defaults(func=_cmd_breaker)
    approve_cmd = sub.add_parser(
        "approve", help="apply an action the loop proposed (guarded and audited like its own)"
    )
    approve_cmd.add_argument("id", type=int, help="the proposal's audit entry id")
    approve_cmd.add_argument("--config", type=Path, required=True, help="configuration (YAML)")
    approve_cmd.add_argument("--region", help="the region (default: the file's first)")
    approve_cmd.add_argument(
        "--audit", default=".ooda/audit.db", help="audit log (SQLite file or postgresql:// URL)"
    )
    approve_cmd.add_argument("--actor", help="who approves (default: the current user)")
    approve_cmd.add_argument("--dry-run", action="store_true", help="preview only")
    approve_cmd.set_defaults(func=_cmd_approve)
    report = sub.add_parser("report", help="write the incident pages of an audit log as HTML")
    report.add_argument(
        "--audit", default=".ooda/audit.db", help="audit log (SQLite file or postgresql:// URL)"
    )
    report.add_argument("--incident", type=int, help="only this incident's page (and the index)")
    report.add_argument(
        "--out", type=Path, default=Path(".ooda/incidents"), help="folder for the pages"
    )
    report.set_defaults(func=_cmd_report)
    ui = sub.add_parser("serve-ui", help="serve the incident pages of an audit log over HTTP")
    ui.add_argument(
        "--audit", default=".ooda/audit.db", help="audit log (SQLite file or postgresql:// URL)"
    )
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    ui.set_defaults(func=_cmd_serve_ui)
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
        type=_positive_float,
        help="robust z-score from which a component is anomalous (default 2.5)",
    )
    rca.add_argument(
        "--persistence",
        type=_positive_int,
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ooda`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "models" and args.action != "list" and not args.name:
        parser.error(f"'ooda models {args.action}' needs a model name")
    if (
        args.command == "models"
        and args.action == "promote"
        and not args.version
        and not args.from_challenger
    ):
        parser.error("'ooda models promote' needs a version (or --from-challenger)")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Third-party chatter (progress bars, deprecations) would bury the scorecard.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        silence()
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
