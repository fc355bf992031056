"""``ooda status``, ``audit``, ``breaker``, ``approve``, ``report`` and ``serve-ui``: what people
do with the audit log."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from ooda._cli_common import (
    Subcommands,
    console,
    port_number,
    settings_from,
    text,
    unwritable,
    workload_key,
)

if TYPE_CHECKING:
    from ooda._audit import AuditStore


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

    settings = settings_from(args)
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
    console.print(
        "begun, no result yet (running beside the ticks, or its process stopped): "
        + (
            ", ".join(f"{e.action} {e.target} since {e.at:%H:%M:%S}" for e in found.interrupted)
            or "none"
        )
    )
    resolved = {e.ref for e in entries if e.kind == "finding" and e.outcome == "resolved"}
    findings = [e for e in entries if e.kind == "finding" and e.outcome == "open"]
    findings = [e for e in findings if e.id not in resolved]
    if findings:
        found_table = Table(title="open findings for the owners (the newest ten, newest last)")
        for col in ("opened", "service", "about", "what is left"):
            found_table.add_column(col)
        for e in findings[-10:]:
            found_table.add_row(
                f"{e.at:%Y-%m-%d %H:%M}", e.service, e.target, str(e.evidence.get("text", ""))
            )
        console.print(found_table)
    else:
        console.print("open findings for the owners: none")
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
    if run is None and state_file.is_file():
        console.print(f"[yellow]ooda run: {state_file} is not a state `ooda run` wrote[/]")
    elif run is None:
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

    from actuators import Guard
    from ooda._autonomy import ErrorBudget
    from ooda._recover import recover, reset_breaker

    settings = settings_from(args)
    audit = _open_audit(args, "breaker")
    if audit is None:
        return 2
    guard = Guard(settings.guard)
    recover(audit, guard, ErrorBudget(settings.autonomy))
    now = datetime.now(UTC)
    # The audit's own clock may run ahead of the wall (a lab's week); read it as status does.
    opened = guard.open_breakers(max([now, *(e.at for e in audit.entries())]))
    actor = args.actor or getpass.getuser()
    entry = reset_breaker(audit, args.workload, actor, args.reason, now)
    audit.close()
    console.print(f"breaker of {args.workload} reset by {actor} (audit entry {entry})")
    if args.workload not in opened:
        console.print(
            f"[yellow]note: {args.workload} had no open breaker; open ones: "
            f"{', '.join(opened) or 'none'}[/]"
        )
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


def _cmd_report(args: argparse.Namespace) -> int:
    from ooda._incident_page import write_pages
    from ooda._incidents import incidents

    if problem := unwritable(args.out, folder=True):
        console.print(f"[red]report: {problem}[/]")
        return 2
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


def add_commands(sub: Subcommands) -> None:
    """Add this module's subcommands to ``sub``."""
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
    breaker.add_argument("workload", type=workload_key, help="namespace/deployment (or node/NAME)")
    breaker.add_argument("--reason", type=text, required=True, help="why (kept in the audit log)")
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
    ui.add_argument("--port", type=port_number, default=8080, help="port (default 8080)")
    ui.set_defaults(func=_cmd_serve_ui)
