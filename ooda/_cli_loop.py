"""``ooda demo``, ``run``, ``chaos`` and ``serve``: the loop on the lab, on a real estate, scored
against chaos, and the models it is served."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from ooda._cli_common import (
    Subcommands,
    console,
    has_champions,
    port_number,
    print_audit_lines,
    settings_from,
    stop_on_signals,
    unwritable,
)
from ooda._quiet import silence


def _cmd_demo(args: argparse.Namespace) -> int:
    import serving  # its imports reset warning filters and log levels, hence first
    from training import train_detector  # noqa: F401  (likewise Feast, darts, PyTorch)

    silence()
    from ooda._demo import run_demo

    settings = settings_from(args)
    if problem := unwritable(settings.workdir, folder=True):
        console.print(f"[red]demo: {problem}[/]")
        return 2
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
    print_audit_lines()
    metrics = RunMetrics()
    server = None
    if args.metrics_port is not None:
        try:
            server, _ = metrics.serve(args.metrics_port, args.metrics_addr)
        except OSError as exc:
            console.print(f"[red]run: cannot serve /metrics on port {args.metrics_port}: {exc}[/]")
            return EXIT_CONFIG
        # On stderr: stdout carries the audit's JSON lines. Port 0 chose one; this says which.
        where = f"http://{args.metrics_addr}:{server.server_port}/metrics"
        print(f"run: serving {where}", file=sys.stderr, flush=True)
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

    stop_on_signals(runner.stop, "ooda.run")
    try:
        return runner.run(once=args.once)
    finally:
        if server is not None:
            server.shutdown()


def _cmd_chaos(args: argparse.Namespace) -> int:
    import serving  # its imports reset warning filters and log levels, hence first
    from training import train_detector  # noqa: F401  (likewise Feast, darts, PyTorch)

    # A chaos run's loops report through their audit logs and the scorecard, not the terminal.
    silence("ooda.loop")
    from ooda._chaos import ChaosResult, ChaosSettings, parse_scenarios, run_chaos, total_work
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

    settings = settings_from(args)
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
    problem = unwritable(settings.workdir, folder=True) or (args.json and unwritable(args.json))
    if problem:
        console.print(f"[red]chaos: {problem}[/]")
        return 2
    progress = progress_bar(console)
    with progress:
        task = progress.add_task("chaos runs", total=max(1, total_work(chaos)))

        def advance(_what: str, n: int) -> None:
            progress.advance(task, n)

        def scored_by(client: ScoringClient) -> ChaosResult | None:
            try:
                client.check()
                return run_chaos(settings, chaos, client, advance)
            except ScoringUnavailableError as exc:
                console.print(f"[red]chaos: {exc}[/]")
                return None
            finally:
                client.close()

        result: ChaosResult | None
        if args.scorer == "rules":
            result = run_chaos(settings, chaos, RuleScorer(), advance)
        elif args.serve_url:
            result = scored_by(ScoringClient(replace(settings.serving, base_url=args.serve_url)))
        else:
            if args.train or not has_champions(settings):
                train_models(settings, history_lab(settings, progress), progress)
            try:
                with serve(settings, progress) as client_settings:
                    result = scored_by(ScoringClient(client_settings))
            except serving.ServingError as exc:
                # Ray's own start times out on a machine busy enough (a build beside it).
                console.print(
                    f"[red]chaos: Ray Serve did not come up: {exc}; try again, give"
                    " `--serve-url` of a running `ooda serve`, or `--scorer rules`[/]"
                )
                result = None
    if result is None:
        return 2
    data = to_json(result)
    console.print(table(data))
    if data["confusion"]:
        console.print(confusion_table(data))
    if data["clean_week"] is not None:
        console.print(
            f"clean week: {data['clean_week']['days']:g} days,"
            f" {data['clean_week']['false_actions']} false actions,"
            f" {len(data['clean_week'].get('escalations', []))} escalations"
        )
    if data["predictive_week"] is not None:
        console.print(capacity_text(data["predictive_week"]))
    if args.json:
        console.print(f"json: {write_json(result, args.json)}")
    page = write_html(result, data, settings.slo, settings.workdir / "chaos.html")
    console.print(f"report: {page}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    """Serve the registry's champions in the foreground until Ctrl-C or SIGTERM."""
    import serving

    silence()  # MLflow's and Ray's imports reset the warning filters
    settings = settings_from(args)
    if not has_champions(settings):
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


def add_commands(sub: Subcommands) -> None:
    """Add this module's subcommands to ``sub``."""
    demo = sub.add_parser("demo", help="run the whole loop end to end on the embedded estate")
    demo.add_argument("--days", type=float, help="days of simulated history (default 7)")
    demo.add_argument("--dry-run", action="store_true", help="decide and log, change nothing")
    demo.set_defaults(func=_cmd_demo)
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
    serve_cmd = sub.add_parser(
        "serve", help="serve the registry's champions (Ray Serve) until Ctrl-C or SIGTERM"
    )
    serve_cmd.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    serve_cmd.add_argument("--port", type=port_number, default=8000, help="HTTP port (8000)")
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
    run.add_argument(
        "--metrics-port", type=port_number, help="serve ooda's own /metrics on this port"
    )
    run.add_argument("--metrics-addr", default="127.0.0.1", help="interface of /metrics")
    run.set_defaults(func=_cmd_run)
