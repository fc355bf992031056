"""Incident pages: one self-contained HTML page per incident, and an index of them.

Each page holds the timeline (symptom, detection, diagnosis, decision, action, verdict, undo
or escalation), the call graph below the service with the ranked root causes highlighted
(an inline SVG: the best cause red, the next ones amber, numbered), the SLIs around the
incident with the anomaly score and the forecast band against the actual request rate (one
matplotlib figure, inlined), the log templates that surged, and every audit entry's
evidence. No script and no external resource: a page opens from disk, from ``ooda serve-ui``,
or attached to a ticket.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from ooda._incidents import Incident

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.badge{padding:1px 6px;border-radius:4px;background:#eee}
.healed{background:#c8f0c8}.failed,.escalated{background:#f6c8c8}.proposed{background:#fde7b0}
ol#timeline li{margin:2px 0}ol#timeline .at{font-family:monospace;color:#555}
pre{background:#f6f6f6;padding:6px;overflow-x:auto;font-size:12px}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""
_CAUSE_FILL = ("#e53935", "#fb8c00", "#fdd835", "#fff59d", "#fff9c4")
#: Nodes on one row of the graph.
_PER_ROW = 5


def _e(value: object) -> str:
    return html.escape(str(value))


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        '<link rel="icon" href="data:,">'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _hm(at: datetime | str) -> str:
    return pd.Timestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def timeline(incident: Incident) -> list[tuple[str, str, str]]:
    """``(time, stage, what)`` in order: the symptom and detection the context saw, then what
    the audit log says was decided and done."""
    c = incident.context
    out: list[tuple[str, str, str]] = []
    if c.get("normal_until"):
        symptom = c.get("symptom") or "metrics left their normal"
        out.append(
            (c["normal_until"], "symptom", f"{symptom} (the metrics before this are the normal)")
        )
    detected = next((at for at, score in c.get("scores", []) if score >= 0.5), None)
    if detected is not None:
        out.append((detected, "detection", "anomaly score crossed 0.5"))
    else:  # a runbook's own signal (a trend, a lag, a replica's latency) saw it first
        first = next((e for e in incident.entries if e.kind in ("decision", "refusal")), None)
        if first is not None and first.evidence.get("runbook"):
            why = first.evidence.get("reason", "")
            out.append(
                (first.at.isoformat(), "detection", f"{first.evidence['runbook']} runbook: {why}")
            )
    causes = c.get("causes") or []
    if causes:
        ranked = ", ".join(f"{x['component']} ({x['kind']})" for x in causes[:3])
        out.append((incident.opened_at.isoformat(), "diagnosis", f"root causes: {ranked}"))
    stage = {
        "decision": "decision",
        "intent": "action",
        "action": "action",
        "verification": "verification",
        "undo": "undo",
        "escalation": "escalation",
        "refusal": "decision",
        "finding": "finding",
    }
    for entry in incident.entries:
        what = f"{entry.action} {entry.target}: {entry.outcome}"
        if entry.kind == "finding" and entry.outcome == "resolved":
            what = f"finding resolved: {entry.evidence.get('text', '')}"
        elif entry.kind == "finding":
            what = f"for the owners of {entry.target}: {entry.evidence.get('text', '')}"
        if entry.dry_run:
            what += " (dry-run)"
        out.append((entry.at.isoformat(), stage[entry.kind], what))
    return sorted(out, key=lambda row: pd.Timestamp(row[0]))


def _layers(graph: dict[str, list[str]], root: str) -> list[list[str]]:
    depth = {root: 0}
    queue = [root]
    while queue:
        node = queue.pop(0)
        for dep in graph.get(node, []):
            if dep not in depth:
                depth[dep] = depth[node] + 1
                queue.append(dep)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for node, d in sorted(depth.items(), key=lambda kv: (kv[1], kv[0])):
        layers[d].append(node)
    # A wide layer (a service's nodes, databases, topics) wraps onto several rows.
    return [layer[i : i + _PER_ROW] for layer in layers for i in range(0, len(layer), _PER_ROW)]


def graph_svg(incident: Incident) -> str:
    """The graph below the service, top down; ranked causes filled and numbered."""
    c = incident.context
    graph: dict[str, list[str]] = c.get("graph") or {incident.service: []}
    kinds: dict[str, str] = c.get("kinds") or {}
    rank = {x["component"]: i for i, x in enumerate(c.get("causes") or [])}
    layers = _layers(graph, incident.service)
    width = max(len(layer) for layer in layers) * 200 + 40
    height = len(layers) * 70 + 30
    pos: dict[str, tuple[float, float]] = {}
    for d, layer in enumerate(layers):
        step = width / (len(layer) + 1)
        for i, node in enumerate(layer):
            pos[node] = (step * (i + 1), 30 + 70 * d)
    parts = [
        f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height}" role="img" aria-label="call graph and root causes">'
    ]
    for node, deps in graph.items():
        for dep in deps:
            if node in pos and dep in pos:
                (x1, y1), (x2, y2) = pos[node], pos[dep]
                parts.append(
                    f'<line x1="{x1:.0f}" y1="{y1 + 14}" x2="{x2:.0f}" y2="{y2 - 14}" '
                    'stroke="#999" stroke-width="1"/>'
                )
    for node, (x, y) in pos.items():
        r = rank.get(node)
        fill = _CAUSE_FILL[r] if r is not None and r < len(_CAUSE_FILL) else "#e3f2fd"
        cls = "node root-cause" if r == 0 else ("node cause" if r is not None else "node")
        label = node if len(node) <= 26 else node[:12] + "…" + node[-12:]
        badge = f"#{r + 1} " if r is not None else ""
        parts.append(
            f'<g class="{cls}" data-node="{_e(node)}" data-rank="{"" if r is None else r + 1}">'
            f"<title>{_e(node)} ({_e(kinds.get(node, 'service'))})</title>"
            f'<rect x="{x - 85:.0f}" y="{y - 14}" width="170" height="28" rx="6" '
            f'fill="{fill}" stroke="#555"/>'
            f'<text x="{x:.0f}" y="{y + 4}" text-anchor="middle">{_e(badge + label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _frame(series: dict[str, list[Any]]) -> pd.DataFrame:
    if not series or not series.get("timestamp"):
        return pd.DataFrame()
    frame = pd.DataFrame(series)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame.drop_duplicates("timestamp").sort_values("timestamp")


def sli_plot(incident: Incident) -> str:
    """The SLIs, the anomaly score and the forecast band as one inlined PNG."""
    c = incident.context
    sli = pd.concat([_frame(c.get("sli", {})), _frame(c.get("sli_after", {}))])
    if not sli.empty:
        sli = sli.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    slo = c.get("slo") or {}
    fig, axes = plt.subplots(4, 1, figsize=(11, 8.5), sharex=True)
    panels = (
        ("p95_latency_ms", "p95 ms", slo.get("p95_ms")),
        ("error_rate", "error rate", slo.get("max_error_rate")),
        ("request_rate", "requests/s", None),
    )
    for ax, (column, label, objective) in zip(axes, panels, strict=False):
        if column in sli:
            ax.plot(sli["timestamp"], sli[column], color="#1565c0", lw=1.2, label="actual")
        if objective is not None:
            ax.axhline(objective, color="#c62828", ls="--", lw=1, label="objective")
        ax.set_ylabel(label)
    forecast = _frame(c.get("forecast", {}))
    if not forecast.empty:
        ax = axes[2]
        ax.fill_between(
            forecast["timestamp"],
            forecast["q10"],
            forecast["q90"],
            color="#90caf9",
            alpha=0.4,
            label="forecast 80 %",
        )
        ax.plot(forecast["timestamp"], forecast["q50"], color="#1e88e5", ls=":", label="median")
    scores = pd.DataFrame(c.get("scores") or [], columns=["timestamp", "score"])
    if not scores.empty:
        scores["timestamp"] = pd.to_datetime(scores["timestamp"], utc=True, format="ISO8601")
        axes[3].plot(scores["timestamp"], scores["score"], color="#6a1b9a", lw=1.2)
        axes[3].axhline(0.5, color="#c62828", ls="--", lw=1)
    axes[3].set_ylabel("anomaly score")
    for entry in incident.entries:
        if entry.kind in ("action", "verification", "escalation", "decision"):
            for ax in axes:
                ax.axvline(pd.Timestamp(entry.at), color="#2e7d32", lw=0.8, alpha=0.6)
    for ax in axes[:3]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{incident.service}: SLIs, forecast and anomaly score (green: ooda's entries)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img id="sli-plot" alt="SLIs around the incident" src="data:image/png;base64,{data}">'


def _log_line(surge: dict[str, Any]) -> str:
    return f"<code>{_e(surge['template'])}</code> ({surge['baseline']} → {surge['recent']})"


def incident_html(incident: Incident) -> str:
    """The page of one incident."""
    c = incident.context
    outcome = incident.outcome
    rows = "".join(
        f'<li data-stage="{_e(stage)}"><span class="at">{_e(_hm(at))}</span> '
        f"<b>{_e(stage)}</b> {_e(what)}</li>"
        for at, stage, what in timeline(incident)
    )
    causes = "".join(
        f"<tr><td>{i + 1}</td><td>{_e(x['component'])}</td><td>{_e(x['kind'])}</td>"
        f"<td>{x['score']:.2f}</td><td>{x['anomaly']:.1f}</td>"
        f"<td>{_e(' > '.join(x['path']))}</td>"
        f"<td>{'<br>'.join(_e(c) for c in x.get('changes', []))}</td>"
        f"<td>{'<br>'.join(_log_line(s) for s in x.get('logs', []))}</td></tr>"
        for i, x in enumerate(c.get("causes") or [])
    )
    logs = "".join(
        f"<tr><td><code>{_e(x['template'])}</code></td><td>{x['baseline']}</td>"
        f"<td>{x['recent']}</td><td>{x['score']:.1f}</td></tr>"
        for x in c.get("log_surges") or []
    )
    unranked = f'<p id="unranked">not ranked: {_e(c["unranked"])}</p>' if c.get("unranked") else ""
    evidence = "".join(
        f"<details><summary>#{e.id} {_e(_hm(e.at))} {_e(e.kind)} {_e(e.action)}: "
        f"{_e(e.outcome)}</summary><pre>{_e(json.dumps(e.evidence, indent=1, default=str))}"
        "</pre></details>"
        for e in incident.entries
    )
    body = (
        '<p><a href="index.html">all incidents</a></p>'
        f"<h1>Incident {incident.id}: {_e(incident.service)} — {_e(incident.scenario)}</h1>"
        f'<p>opened {_e(_hm(incident.opened_at))}; outcome <span class="badge {_e(outcome)}" '
        f'id="outcome">{_e(outcome)}</span></p>'
        f'<h2>Timeline</h2><ol id="timeline">{rows}</ol>'
        f"<h2>Root causes</h2>{graph_svg(incident)}{unranked}"
        '<table id="causes"><tr><th>#</th><th>component</th><th>kind</th><th>score</th>'
        f"<th>peak z</th><th>path</th><th>changes before</th><th>its log surges</th></tr>"
        f"{causes}</table>"
        f"<h2>SLIs, forecast and anomaly score</h2>{sli_plot(incident)}"
        '<h2>Log templates that surged</h2><table id="log-surges"><tr><th>template</th>'
        f"<th>before (30 min)</th><th>since</th><th>log2 ratio</th></tr>{logs}</table>"
        f'<h2>Audit evidence</h2><div id="evidence">{evidence}</div>'
    )
    return _page(f"ooda incident {incident.id}", body)


def index_html(incidents: Sequence[Incident]) -> str:
    """The list of incidents, newest first."""
    rows = "".join(
        f'<tr><td><a href="incident-{i.id}.html">{i.id}</a></td><td>{_e(_hm(i.opened_at))}</td>'
        f"<td>{_e(i.service)}</td><td>{_e(i.scenario)}</td>"
        f"<td>{_e((i.context.get('causes') or [{}])[0].get('component', ''))}</td>"
        f'<td><span class="badge {_e(i.outcome)}">{_e(i.outcome)}</span></td></tr>'
        for i in sorted(incidents, key=lambda i: i.opened_at, reverse=True)
    )
    body = (
        f"<h1>ooda incidents ({len(incidents)})</h1>"
        '<table id="incidents"><tr><th>id</th><th>opened</th><th>service</th><th>scenario</th>'
        f"<th>root cause</th><th>outcome</th></tr>{rows}</table>"
    )
    return _page("ooda incidents", body)


def write_pages(incidents: Sequence[Incident], out: Path, only: int | None = None) -> list[Path]:
    """The index and each incident's page (only ``only``'s when given) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(index_html(incidents), encoding="utf-8")
    written = [index]
    for incident in incidents:
        if only is None or incident.id == only:
            page = out / f"incident-{incident.id}.html"
            page.write_text(incident_html(incident), encoding="utf-8")
            written.append(page)
    return written
