"""The chaos scorecard as people and scripts read it: JSON (a fixed contract), a terminal
table, and an HTML page with plots.

The JSON's top level is the contract scripts outside the project read (``seed``,
``scenarios`` with one summary per requested scenario, ``clean_week``,
``predictive_week``); the per-run details go under ``runs``. Means are over the runs where
the measure exists (MTTD over the detected runs, MTTR over the recovered ones) and are null
when none does.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from contracts import ScenarioId
from ooda._capacity_week import CapacityWeek, ModeWeek
from ooda._chaos import ChaosResult, Instance
from ooda._report import plot_runs
from ooda._runs import Mode, Run
from ooda._settings import SloSettings

_MODES = (Mode.ON, Mode.OFF, Mode.REACTIVE)


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 1) if values else None


def _seconds(run: Run, at: Any) -> float | None:
    return None if at is None else (at - run.injected_at).total_seconds()


def run_record(inst: Instance) -> dict[str, Any]:
    """One instance's details: what was drawn and what each mode measured."""
    out: dict[str, Any] = {
        "scenario": str(inst.scenario),
        "index": inst.index,
        "service": inst.instance.service,
        "magnitude": round(inst.instance.magnitude, 3),
        "duration_s": None
        if inst.instance.duration is None
        else inst.instance.duration.total_seconds(),
        "injected_at": inst.runs[Mode.ON].injected_at.isoformat(),
        "felt_by": list(inst.runs[Mode.ON].felt_by),
        "root_cause": inst.runs[Mode.OFF].root_cause,
        "rca": list(inst.runs[Mode.OFF].rca),
    }
    for mode, run in inst.runs.items():
        out[str(mode)] = {
            "detected_s": _seconds(run, run.detected_at),
            "first_breach_s": _seconds(run, run.breached_at),
            "recovered_s": _seconds(run, run.recovered_at),
            "breach_minutes": run.breach_minutes,
            "error_budget_minutes": round(run.budget_minutes, 1),
            "pod_minutes": round(run.pod_minutes, 1),
            "actions": run.actions,
            "failed_heals": run.failed_heals,
            "escalated": run.escalated,
            "healed": run.healed,
            "events": [
                {
                    "at_s": _seconds(run, e.at),
                    "kind": e.kind,
                    "service": e.service,
                    "detail": e.detail,
                }
                for e in run.events
                if e.at >= run.injected_at and e.kind != "anomaly"
            ],
        }
    return out


def summary(scenario: ScenarioId, instances: list[Instance]) -> dict[str, Any]:
    """One scenario's row of the contract."""
    on = [i.runs[Mode.ON] for i in instances]

    def per_mode(fn: Any, modes: Sequence[Mode] = _MODES) -> dict[str, float | None]:
        return {
            str(m): _mean([v for i in instances if (v := fn(i.runs[m])) is not None]) for m in modes
        }

    return {
        "scenario": str(scenario),
        "runs": len(instances),
        "detected": sum(r.detected_at is not None for r in on),
        "detected_before_breach": sum(r.detected_before_breach for r in on),
        "healed": sum(r.healed for r in on),
        "resolved_without_action": sum(r.resolved_alone for r in on),
        "failed_heals": sum(r.failed_heals for r in on),
        "max_actions_per_incident": max((r.actions for r in on), default=0),
        "mttd_s": per_mode(lambda r: _seconds(r, r.detected_at), (Mode.ON, Mode.REACTIVE)),
        "mttr_s": per_mode(lambda r: _seconds(r, r.recovered_at), (Mode.ON, Mode.REACTIVE)),
        "breach_minutes": per_mode(lambda r: float(r.breach_minutes)),
        "error_budget_minutes": per_mode(lambda r: r.budget_minutes),
        "pod_minutes": per_mode(lambda r: r.pod_minutes),
        "escalated": sum(r.escalated for r in on),
        "actions_per_incident": _mean([float(r.actions) for r in on]),
        # Root causes, ranked on the unattended run, scored against the lab's truth.
        "rca_top1": sum(i.runs[Mode.OFF].root_cause in i.runs[Mode.OFF].rca[:1] for i in instances),
        "rca_top3": sum(i.runs[Mode.OFF].root_cause in i.runs[Mode.OFF].rca for i in instances),
    }


def diagnosed(run: Run) -> list[str]:
    """The scenarios the loop diagnosed after the injection (its runbooks that fired), in
    order, each once."""
    seen: list[str] = []
    for event in run.events:
        if event.kind == "diagnosis" and event.at >= run.injected_at:
            name = event.detail.split(" ", 1)[0]
            if name not in seen:
                seen.append(name)
    return seen


def confusion(result: ChaosResult) -> dict[str, dict[str, int]]:
    """Per injected scenario, how many of its runs (loop on) each diagnosis fired in
    (``none``: no runbook fired); off the diagonal is a runbook firing on another's
    symptoms."""
    out: dict[str, dict[str, int]] = {}
    for inst in result.instances:
        row = out.setdefault(str(inst.scenario), {})
        for name in diagnosed(inst.runs[Mode.ON]) or ["none"]:
            row[name] = row.get(name, 0) + 1
    return out


def confusion_table(data: dict[str, Any]) -> Table:
    """The confusion table: the scenario injected against the runbooks that fired."""
    matrix: dict[str, dict[str, int]] = data["confusion"]
    fired = sorted({name for row in matrix.values() for name in row})
    out = Table(title="injected scenario vs the diagnoses the loop made (runs, loop on)")
    out.add_column("injected")
    for name in fired:
        out.add_column(name, justify="right")
    for injected, row in matrix.items():
        out.add_row(injected, *(str(row.get(name, "")) for name in fired))
    return out


def to_json(result: ChaosResult) -> dict[str, Any]:
    """The whole result in the ``ooda chaos --json`` contract."""
    rows = []
    for scenario in result.settings.scenarios:
        mine = [i for i in result.instances if i.scenario == scenario]
        row = summary(scenario, mine)
        if not mine:
            row["reason"] = result.skipped.get(scenario, "")
        rows.append(row)
    clean = result.clean_week
    return {
        "seed": result.settings.seed,
        "scenarios": rows,
        "clean_week": None
        if clean is None
        else {
            "days": clean.days,
            "false_actions": clean.false_actions,
            "actions": clean.actions,
            "escalations": clean.escalations,
        },
        "predictive_week": None if result.capacity is None else capacity_record(result.capacity),
        "scoring": {"loop_calls": result.scoring_calls, "http_requests": result.scoring_requests},
        "confusion": confusion(result),
        "runs": [run_record(i) for i in result.instances],
    }


def capacity_record(week: CapacityWeek) -> dict[str, Any]:
    """The predictive-scaling week against the reactive HPA, as JSON."""

    def mode(m: ModeWeek) -> dict[str, Any]:
        return {
            "breach_minutes": m.breach_minutes,
            "pod_minutes": round(m.pod_minutes, 1),
            "actions": m.actions,
        }

    return {
        "days": week.days,
        "hpa_target": week.hpa_target,
        "reactive": mode(week.reactive),
        "predictive": mode(week.predictive),
        "pod_minutes_saved": None if math.isnan(week.saving) else round(week.saving, 4),
    }


def capacity_text(record: dict[str, Any]) -> str:
    """One line on the predictive-scaling week."""
    r, p = record["reactive"], record["predictive"]
    saved = record["pod_minutes_saved"]
    return (
        f"predictive week: {record['days']:g} days, HPA at {record['hpa_target']:.0%} with"
        f" forecast floors: {p['breach_minutes']} breach min, {p['pod_minutes']:,.0f} pod-min;"
        f" reactive HPA: {r['breach_minutes']} breach min, {r['pod_minutes']:,.0f} pod-min;"
        f" pod-minutes saved {'-' if saved is None else f'{saved:.1%}'}"
    )


def write_json(result: ChaosResult, path: Path) -> Path:
    """Write the contract JSON to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(result), indent=2, allow_nan=False) + "\n")
    return path


def _fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}{unit}"
    return f"{value}{unit}"


def healed_cell(row: dict[str, Any]) -> str:
    """Healed out of the incidents still open when the loop could act; runs the estate
    resolved on its own (the HPA scaled the broken pod away) are counted beside."""
    alone = row.get("resolved_without_action", 0)
    cell = f"{row['healed']}/{row['runs'] - alone}"
    return f"{cell} +{alone} self" if alone else cell


def table(data: dict[str, Any]) -> Table:
    """The scorecard for a terminal: one row per scenario; why some were not run, below."""
    reasons: dict[str, list[str]] = {}
    for row in data["scenarios"]:
        if not row["runs"]:
            reasons.setdefault(row.get("reason") or "not run", []).append(row["scenario"])
    caption = "; ".join(f"{why}: {', '.join(names)}" for why, names in reasons.items())
    out = Table(
        title=f"ooda chaos scorecard (seed {data['seed']}; means per run)",
        caption=caption or None,
    )
    for column in (
        "scenario",
        "runs",
        "detected",
        "before breach",
        "healed",
        "failed heals",
        "max actions",
        "MTTD s on/react",
        "MTTR s on/react",
        "breach min on/off/react",
        "budget min on/off/react",
        "pod-min on/off/react",
        "RCA top-1 / top-3",
    ):
        out.add_column(column, no_wrap=column == "scenario")
    for row in data["scenarios"]:
        n = row["runs"]
        if not n:
            out.add_row(row["scenario"], "0", *(["-"] * 11))
            continue

        def pct(k: str, row: dict[str, Any] = row, n: int = n) -> str:
            return f"{100 * row[k] / n:.0f} %"

        def modes(k: str, keys: Sequence[str], row: dict[str, Any] = row) -> str:
            return " / ".join(_fmt(row[k][m]) for m in keys)

        out.add_row(
            row["scenario"],
            str(n),
            pct("detected"),
            pct("detected_before_breach"),
            healed_cell(row),
            str(row["failed_heals"]),
            str(row["max_actions_per_incident"]),
            modes("mttd_s", ("on", "reactive")),
            modes("mttr_s", ("on", "reactive")),
            modes("breach_minutes", ("on", "off", "reactive")),
            modes("error_budget_minutes", ("on", "off", "reactive")),
            modes("pod_minutes", ("on", "off", "reactive")),
            f"{pct('rca_top1')} / {pct('rca_top3')}",
        )
    return out


def write_html(result: ChaosResult, data: dict[str, Any], slo: SloSettings, path: Path) -> Path:
    """An HTML page: the scorecard, and per scenario its worst ``off`` instance, plotted in
    all three modes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = [
        "scenario",
        "runs",
        "detected",
        "before breach",
        "healed",
        "failed heals",
        "max actions",
        "MTTD s (on / reactive)",
        "MTTR s (on / reactive)",
        "breach min (on / off / reactive)",
        "pod-min (on / off / reactive)",
    ]
    rows = []
    for row in data["scenarios"]:
        cells = [
            row["scenario"],
            row["runs"],
            row["detected"],
            row["detected_before_breach"],
            healed_cell(row),
            row["failed_heals"],
            row["max_actions_per_incident"],
        ]
        for key, keys in (
            ("mttd_s", ("on", "reactive")),
            ("mttr_s", ("on", "reactive")),
            ("breach_minutes", ("on", "off", "reactive")),
            ("pod_minutes", ("on", "off", "reactive")),
        ):
            cells.append(" / ".join(_fmt(row[key][m]) for m in keys))
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    plots = []
    for scenario in result.settings.scenarios:
        mine = [i for i in result.instances if i.scenario == scenario]
        if not mine:
            continue
        worst = max(mine, key=lambda i: i.runs[Mode.OFF].breach_minutes)
        runs = [worst.runs[m] for m in _MODES]
        service = worst.instance.service
        image = plot_runs(runs, service, slo, f"{scenario} — run {worst.index}, {service}")
        plots.append(
            f"<h2>{html.escape(str(scenario))}</h2><img src='data:image/png;base64,{image}'/>"
        )
    matrix: dict[str, dict[str, int]] = data["confusion"]
    fired = sorted({name for row in matrix.values() for name in row})
    confusion_rows = "".join(
        f"<tr><td>{html.escape(injected)}</td>"
        + "".join(f"<td>{row.get(name, '')}</td>" for name in fired)
        + "</tr>"
        for injected, row in matrix.items()
    )
    confusion_html = (
        "<h2>Injected scenario against the diagnoses made</h2><table><tr><th>injected</th>"
        + "".join(f"<th>{html.escape(name)}</th>" for name in fired)
        + "</tr>"
        + confusion_rows
        + "</table>"
        if matrix
        else ""
    )
    clean = data["clean_week"]
    clean_text = (
        ""
        if clean is None
        else f"<p>Clean week: {clean['days']:g} days, {clean['false_actions']} false actions,"
        f" {len(clean.get('escalations', []))} escalations.</p>"
    )
    if data.get("predictive_week") is not None:
        clean_text += f"<p>{html.escape(capacity_text(data['predictive_week']))}</p>"
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>ooda chaos</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;"
        "border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>ooda chaos scorecard (seed {data['seed']})</h1>"
        f"<p>SLOs: p95 &lt; {slo.p95_ms:.0f} ms, availability &ge; {slo.availability:.1%}."
        " Means per run; MTTD over detected runs, MTTR over recovered runs.</p>"
        "<table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
        + confusion_html
        + clean_text
        + "".join(plots)
        + "</body></html>",
        encoding="utf-8",
    )
    return path
