"""Scorecards people read: a rich table in the terminal and an HTML report with plots."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.table import Table

from ooda._runs import Mode, Run
from ooda._settings import SloSettings


def _t(at: datetime | None, origin: datetime) -> str:
    if at is None:
        return "never"
    minutes = (at - origin).total_seconds() / 60.0
    return f"+{minutes:.1f} min"


COLUMNS = (
    "scenario",
    "loop",
    "injected",
    "detected",
    "SLO breached",
    "breach min",
    "action",
    "healed",
    "healed",
    "p95 ms",
    "avail.",
)


def title(run: Run) -> str:
    """A scenario's human title."""
    return run.scenario.replace("_", " ")


def slo_service(run: Run) -> str:
    """The service whose SLO a demo run is judged on: the one the fault hits."""
    return run.instance.service


def _cells(run: Run) -> list[str]:
    origin = run.injected_at
    on = run.mode is Mode.ON
    p95, availability = run.sli(slo_service(run))
    return [
        title(run),
        "on" if on else "off",
        f"{origin:%H:%M}",
        _t(run.detected_at, origin) if on else "-",
        _t(run.breached_at, origin),
        str(run.breach_minutes),
        run.action if on else "-",
        _t(run.healed_at, origin) if on else "-",
        ("yes" if run.healed else "no") if on else "-",
        f"{p95:.0f}",
        f"{availability * 100:.3f} %",
    ]


def scorecard(runs: Sequence[Run]) -> Table:
    """One row per scenario run: timeline of the heal and the SLIs over the scenario."""
    table = Table(title="ooda scorecard (embedded estate; times after injection)")
    for column in COLUMNS:
        table.add_column(column, no_wrap=column in {"scenario", "loop"})
    for run in runs:
        cells = _cells(run)
        cells[8] = {"yes": "[green]yes[/]", "no": "[red]no[/]"}.get(cells[8], cells[8])
        table.add_row(*cells)
    return table


def plot_runs(runs: Sequence[Run], service: str, slo: SloSettings, heading: str) -> str:
    """p95 and 5xx of ``service`` around the injection, one line per run; a base64 PNG."""
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    styles = {Mode.ON: "-", Mode.OFF: "--", Mode.REACTIVE: ":"}
    for run in runs:
        rows = run.metrics[run.metrics["service"] == service]
        minutes = (rows["timestamp"] - run.injected_at).dt.total_seconds() / 60.0
        label = {Mode.ON: "ooda", Mode.OFF: "off", Mode.REACTIVE: "reactive"}[run.mode]
        axes[0].plot(minutes, rows["p95_latency_ms"], styles[run.mode], label=label)
        axes[1].plot(minutes, rows["error_rate"] * 100, styles[run.mode], label=label)
        for event in run.events:
            if event.kind == "action" and run.mode is Mode.ON:
                x = (event.at - run.injected_at).total_seconds() / 60.0
                for ax in axes:
                    ax.axvline(x, color="tab:green", alpha=0.4, lw=1)
    axes[0].axhline(slo.p95_ms, color="tab:red", lw=0.8, label="SLO")
    axes[1].axhline(slo.max_error_rate * 100, color="tab:red", lw=0.8)
    for ax in axes:
        ax.axvline(0, color="black", lw=0.8)
    axes[0].set_ylabel("p95 latency (ms)")
    axes[1].set_ylabel("5xx (%)")
    axes[1].set_xlabel("minutes since injection (green: ooda's actions)")
    axes[0].legend(loc="upper right")
    axes[0].set_title(heading)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_report(runs: Sequence[Run], slo: SloSettings, path: Path) -> Path:
    """Write an HTML report: the scorecard as a table and one plot per scenario."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(run)) + "</tr>"
        for run in runs
    ]
    by_scenario: dict[str, list[Run]] = {}
    for run in runs:
        by_scenario.setdefault(run.scenario, []).append(run)
    plots = "".join(
        f"<h2>{html.escape(title(group[0]))}</h2><img src='data:image/png;base64,"
        + plot_runs(
            group,
            slo_service(group[0]),
            slo,
            f"{title(group[0])} — {slo_service(group[0])}",
        )
        + "'/>"
        for group in by_scenario.values()
    )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>ooda demo report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;"
        "border-bottom:1px solid #ddd}</style></head><body><h1>ooda demo report</h1>"
        f"<p>SLOs: p95 &lt; {slo.p95_ms:.0f} ms, availability &ge; {slo.availability:.1%}.</p>"
        "<table><tr>"
        + "".join(f"<th>{h}</th>" for h in COLUMNS)
        + "</tr>"
        + "".join(rows)
        + "</table>"
        + plots
        + "</body></html>",
        encoding="utf-8",
    )
    return path
