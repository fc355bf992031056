"""Incidents: what the loop saw and did about one failure, kept where the audit log is.

The audit log holds what the loop decided and did, but not what it looked at: the SLIs
around the failure, the anomaly scores, the forecast band, the call graph and its ranked
root causes, the log templates that surged. :class:`IncidentRecorder` writes that as
``context`` entries of the same log (so it is shared and hash-chained with the rest,
SQLite or PostgreSQL alike): one when a service's first decision, proposal, refusal or
escalation opens an incident, one whenever the diagnosed root cause changes while it is
open, and one with the SLIs since then when a verdict closes it. :func:`incidents` reads
them back, each with its entries, for the incident pages.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from ooda._audit import AuditEntry, AuditStore
from ooda._logs import TemplateSurge, template_surges
from ooda._records import Orientation, Snapshot

#: Entries that open an incident for their service.
OPENING = ("decision", "escalation", "refusal")
#: Entries that belong to an open incident.
FOLLOWING = (*OPENING, "intent", "action", "verification", "undo", "finding")
#: The service metrics a page plots.
SLI_COLUMNS = ("p95_latency_ms", "error_rate", "request_rate")


@dataclass
class _Open:
    context_id: int
    last_at: datetime
    top: str | None


def _series(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {
        "timestamp": [pd.Timestamp(t).isoformat() for t in frame["timestamp"]]
    }
    for column in columns:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").astype(float)
            out[column] = [None if pd.isna(v) else round(float(v), 6) for v in values]
    return out


def causes_record(orientation: Orientation | None) -> list[dict[str, Any]]:
    """The ranked causes as a context entry keeps them."""
    if orientation is None:
        return []
    return [
        {
            "component": c.component,
            "kind": str(c.kind),
            "score": round(c.score, 4),
            "anomaly": round(c.anomaly, 2),
            "path": list(c.path),
            "owners": list(c.owners),
            "changes": list(c.changes),
        }
        for c in orientation.causes[:5]
    ]


@dataclass
class IncidentRecorder:
    """Writes each incident's context into the audit log as the loop goes."""

    audit: AuditStore
    gap: timedelta = timedelta(minutes=30)
    """An entry this long after the last one of its service opens a new incident."""
    _open: dict[str, _Open] = field(default_factory=dict)
    _scores: dict[str, deque[tuple[str, float]]] = field(default_factory=dict)

    def note_scores(self, at: datetime, scores: dict[str, float]) -> None:
        """Keep the last two hours of anomaly scores per service (the page plots them)."""
        for service, score in scores.items():
            history = self._scores.setdefault(service, deque(maxlen=120))
            history.append((at.isoformat(), round(float(score), 4)))

    def record(
        self,
        written: Sequence[AuditEntry],
        snapshot: Snapshot,
        metrics: pd.DataFrame,
        context: Callable[[str], dict[str, Any]],
    ) -> None:
        """Open, follow and close incidents from this tick's entries; ``context(service)``
        gives the graph, causes and logs of a service when an incident opens."""
        for entry in written:
            service, at = entry.service, entry.at
            current = self._open.get(service)
            if current is not None and at - current.last_at > self.gap:
                del self._open[service]
                current = None
            if current is None and entry.kind in OPENING and entry.id is not None:
                evidence = {**context(service), **self._now(snapshot, metrics, service)}
                cid = self._write(at, service, "opened", evidence, entry.id)
                tops = evidence.get("causes") or [{}]
                self._open[service] = _Open(cid, at, tops[0].get("component"))
            elif current is not None and entry.kind in FOLLOWING:
                current.last_at = at
                if entry.kind == "verification" and not entry.outcome.startswith("pending"):
                    evidence = self._now(snapshot, metrics, service)
                    self._write(at, service, "verdict", evidence, current.context_id)
        for service, current in self._open.items():
            orientation = snapshot.orientation.get(service)
            top = orientation.top if orientation is not None else None
            if top is not None and top.component != current.top:
                current.top = top.component
                evidence = {"symptom": orientation.why if orientation else "", "causes": []}
                evidence["causes"] = causes_record(orientation)
                self._write(snapshot.at, service, "diagnosed", evidence, current.context_id)

    def _now(self, snapshot: Snapshot, metrics: pd.DataFrame, service: str) -> dict[str, Any]:
        mine = metrics[metrics["service"] == service] if len(metrics) else metrics
        out: dict[str, Any] = {"sli": _series(mine, SLI_COLUMNS) if len(mine) else {}}
        out["scores"] = list(self._scores.get(service, ()))
        forecast = snapshot.forecast
        if forecast is not None:
            rows = forecast.frame[forecast.frame["service"] == service]
            out["forecast"] = _series(rows, ("q10", "q50", "q90"))
            out["forecast_version"] = forecast.model_version
        return out

    def _write(
        self, at: datetime, service: str, what: str, evidence: dict[str, Any], ref: int
    ) -> int:
        entry = AuditEntry(at, "context", service, "none", service, False, what, evidence, ref)
        return self.audit.write(entry)


#: The window a log template's recent rate is compared with.
LOG_BASELINE = timedelta(minutes=30)
#: The most lines read of one pod's log (its newest): a chatty pod costs a bounded read.
LOG_TAIL_LINES = 20_000


def pod_log_surges(
    read_log: Callable[[str], str],
    pods: Sequence[str],
    since: datetime,
    now: datetime,
    most_pods: int = 5,
) -> list[TemplateSurge]:
    """The templates that surged in the logs of a service's pods (the first ``most_pods``)
    from ``since`` on, against the :data:`LOG_BASELINE` before (``read_log(pod)`` gives that
    span with RFC 3339 stamps, or its newest lines up to a cap), strongest first.

    Rates are per pod-minute of log actually read: a pod counts for the part of each window
    its log covers, and a pod whose log does not reach back before ``since`` (started since,
    or cut by the cap) is left out, so new pods or a chatty pod's cut log never pass for a
    surge. No pod with a baseline: no surge."""
    start, since_ts, now_ts = (pd.Timestamp(t) for t in (since - LOG_BASELINE, since, now))
    baseline: list[str] = []
    recent: list[str] = []
    baseline_minutes = recent_minutes = 0.0
    for pod in pods[:most_pods]:
        lines: list[tuple[pd.Timestamp, str]] = []
        for line in read_log(pod).splitlines():
            stamp, _, text = line.partition(" ")
            try:
                at = pd.Timestamp(stamp)
            except ValueError:
                continue
            if at >= start:
                lines.append((at, text))
        first = min((at for at, _ in lines), default=None)
        if first is None or first >= since_ts:
            continue
        baseline += [text for at, text in lines if at < since_ts]
        recent += [text for at, text in lines if at >= since_ts]
        baseline_minutes += (since_ts - first).total_seconds() / 60.0
        recent_minutes += max(0.0, (now_ts - since_ts).total_seconds() / 60.0)
    if baseline_minutes <= 0 or recent_minutes <= 0:
        return []
    return template_surges(
        baseline, recent, baseline_minutes=baseline_minutes, recent_minutes=recent_minutes
    )


def log_surges(
    read_log: Callable[[str], str], pods: Sequence[str], since: datetime, now: datetime
) -> list[dict[str, Any]]:
    """:func:`pod_log_surges` as the incident record keeps them (the eight strongest)."""
    surges = pod_log_surges(read_log, pods, since, now)
    return [
        {
            "template": s.template,
            "baseline": s.baseline,
            "recent": s.recent,
            "score": s.score,
            "example": s.example,
        }
        for s in surges[:8]
    ]


def cause_logs(
    causes: list[dict[str, Any]], surges_of: Callable[[str], list[dict[str, Any]]], most: int = 3
) -> None:
    """Each ranked cause's log evidence, in place (``logs``): the templates that surged in its
    own pods' logs (a service), or those in its user's logs that name it (a database, topic,
    queue, upstream or node has no pods; the service calling it on the symptom's path says
    "timeout on payments-db"). A template names one cause at most, the best ranked it names,
    so a line that mentions a table called like a topic is not evidence against the topic."""
    claimed: set[str] = set()
    for cause in causes:
        if cause["kind"] == "service":
            found = surges_of(cause["component"])
        else:  # its user on the symptom's path (the service that calls it), else its owners
            path = cause.get("path") or []
            users = [path[-2]] if len(path) >= 2 else list(cause["owners"])[:1]
            word = re.compile(rf"(?<![\w.-]){re.escape(str(cause['component']))}(?![\w-])", re.I)
            found = [s for o in users for s in surges_of(o) if word.search(s["template"])]
        fresh = [
            s for s in sorted(found, key=lambda s: -s["score"]) if s["template"] not in claimed
        ]
        cause["logs"] = fresh[:most]
        claimed |= {s["template"] for s in fresh}


@dataclass(frozen=True)
class Incident:
    """One incident read back from the audit log."""

    id: int
    """The id of its opening context entry."""
    service: str
    opened_at: datetime
    entries: tuple[AuditEntry, ...]
    """Its decisions, actions, verdicts, escalations and findings, oldest first."""
    context: dict[str, Any]
    """The opening context, later diagnoses and the verdict's SLIs merged."""

    @property
    def scenario(self) -> str:
        """The scenario its first decision named."""
        return next(
            (str(e.evidence["scenario"]) for e in self.entries if "scenario" in e.evidence), ""
        )

    @property
    def outcome(self) -> str:
        """Healed, failed, escalated, proposed, refused or open."""
        for entry in reversed(self.entries):
            if entry.kind == "verification" and not entry.outcome.startswith("pending"):
                return entry.outcome.split(":")[0]
            if entry.kind == "escalation":
                return "escalated"
        if any(e.kind == "decision" and e.outcome.startswith("proposed") for e in self.entries):
            return "proposed"
        if any(e.kind == "refusal" for e in self.entries):
            return "refused"
        return "open"


def incidents(audit: AuditStore) -> list[Incident]:
    """Every incident in the log, oldest first."""
    everything = audit.entries()
    contexts = [e for e in everything if e.kind == "context"]
    opening = [c for c in contexts if c.outcome == "opened" and c.id is not None]
    out = []
    for i, opened in enumerate(opening):
        nxt = next((o for o in opening[i + 1 :] if o.service == opened.service), None)
        first, last = opened.ref or 0, (nxt.ref if nxt is not None and nxt.ref else None)
        entries = tuple(
            e
            for e in everything
            if e.service == opened.service
            and e.kind in FOLLOWING
            and e.id is not None
            and e.id >= first
            and (last is None or e.id < last)
        )
        context = dict(opened.evidence)
        for update in contexts:
            if update.ref == opened.id:
                if update.outcome == "verdict":
                    context["sli_after"] = update.evidence.get("sli", {})
                    context["scores"] = update.evidence.get("scores", context.get("scores"))
                else:
                    context.update(update.evidence)
        assert opened.id is not None
        out.append(Incident(opened.id, opened.service, opened.at, entries, context))
    return out
