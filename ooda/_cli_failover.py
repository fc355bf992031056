"""``ooda failover`` and ``failover-drill``: moving a public name's users between regions, and
the drill that scores it."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rich.table import Table

from ooda._cli_common import (
    Subcommands,
    console,
    print_audit_lines,
    stop_on_signals,
    unwritable,
)
from ooda._quiet import silence

#: The share of the home's requests a drawn brownout fails (``failover-drill --brownout``).
BROWNOUT = (0.03, 0.3)


def _cmd_failover(args: argparse.Namespace) -> int:
    from dataclasses import replace as dc_replace

    from ooda._audit import AuditError
    from ooda._config import load_config
    from ooda._errors import ConfigError
    from ooda._escalate import Escalator
    from ooda._failover_run import FailoverRunner, build_failover, make_probe
    from ooda._run import EXIT_CONFIG

    try:
        config = load_config(args.config)
        settings = config.failover_settings()
        if args.dry_run:
            settings = dc_replace(
                settings, dry_run=True, guard=dc_replace(settings.guard, dry_run=True)
            )
        probe = make_probe(config)
        controller = build_failover(config, settings, probe)
    except (ConfigError, AuditError) as exc:
        console.print(f"[red]failover: {exc}[/]")
        return EXIT_CONFIG
    print_audit_lines()
    escalator = Escalator(settings.escalation, settings.namespace, settings.failover.record)
    runner = FailoverRunner(controller, escalator)

    stop_on_signals(runner.stop, "ooda.failover")
    try:
        return runner.run(once=args.once)
    finally:
        probe.close()
        controller.journal.audit.close()


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
    problem = unwritable(settings.workdir / "failover-drill", folder=True) or (
        args.json and unwritable(args.json)
    )
    if problem:
        console.print(f"[red]failover-drill: {problem}[/]")
        return 2
    drill = DrillSettings(
        runs=args.runs,
        seed=args.seed,
        clean_runs=args.clean_runs,
        regional_loops=args.regional_loops,
        brownout=BROWNOUT if args.brownout else None,
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
    what = "Regional brownouts" if args.brownout else "Region-wide outages"
    table = Table(title=f"{what}, {args.runs} runs, seed {args.seed}")
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


def add_commands(sub: Subcommands) -> None:
    """Add this module's subcommands to ``sub``."""
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
    drill.add_argument(
        "--brownout",
        action="store_true",
        help="draw brownouts instead: 3-30 %% of the home's requests fail, its probes pass",
    )
    drill.add_argument("--json", type=Path, help="write every run and the summary here")
    drill.add_argument(
        "--dry-run", action="store_true", help="decide and audit, move nobody (the preview)"
    )
    drill.set_defaults(func=_cmd_failover_drill)
