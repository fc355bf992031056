"""Escalation: tell a human when the loop cannot or may not finish the job.

Four things need a human, and each already leaves an audit entry: a heal that failed (and
a workload whose circuit breaker opened), a runbook that found no safe action, an action held
at propose-only, and a forecaster the accuracy watch stopped trusting. A fifth needs one
later: a finding, what a heal that worked left for the owners (``OodaFinding``, severity
``ticket`` by default, open for a week, resolved at once when ooda sees the work done: a
drained node back in service) -- the leak behind a restart, the node a drain left cordoned,
the release rolled back. After every tick,
:class:`Escalator` turns the new such entries into alerts and posts them to Alertmanager's v2
API (``POST /api/v2/alerts``) and to a generic webhook. An alert carries the audit evidence
and a link to the incident; Alertmanager groups and deduplicates on its labels (alert name,
service, action), so a repeated escalation of the same trouble updates one alert rather than
paging twice.

With ``notify`` on, the webhook also gets a notice (severity info) of every applied action
and every heal verified, so that the team's channel shows what ooda did without anyone paged.

Delivery never stops the loop: a receiver that is down is retried with backoff within the
tick's budget and then logged; the audit entry stays the record either way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ooda._audit import AuditEntry
from ooda._settings import EscalationSettings

log = logging.getLogger("ooda.escalate")


@dataclass(frozen=True)
class Alert:
    """One escalation, as Alertmanager's v2 API takes it."""

    name: str
    severity: str
    labels: dict[str, str]
    summary: str
    audit_id: int
    evidence: dict[str, Any] = field(default_factory=dict)
    finding: bool = False
    """A finding: open for ``finding_for``, not ``active_for``."""
    resolved: bool = False
    """Ends now: the work it asked for is seen done (Alertmanager resolves it)."""

    def body(self, settings: EscalationSettings, starts_at: str, ends_at: str) -> dict[str, Any]:
        """The v2 ``postableAlert``."""
        link = settings.incident_url.format(audit_id=self.audit_id)
        return {
            "labels": {"alertname": self.name, "severity": self.severity, **self.labels},
            "annotations": {
                "summary": self.summary,
                "audit_id": str(self.audit_id),
                "evidence": json.dumps(self.evidence, sort_keys=True, default=str),
                "incident": link,
            },
            "startsAt": starts_at,
            "endsAt": ends_at,
            "generatorURL": link,
        }


def _labels(entry: AuditEntry, namespace: str, region: str) -> dict[str, str]:
    """What Alertmanager groups and deduplicates on."""
    return {
        "service": entry.service,
        "namespace": namespace,
        "region": region,
        "action": entry.action,
    }


#: Every alert ooda raises (``alert_of``'s names).
ALERT_NAMES = (
    "OodaHealFailed",
    "OodaBreakerOpen",
    "OodaNeedsHuman",
    "OodaActionProposed",
    "OodaForecasterFallback",
    "OodaDetectorFallback",
    "OodaFinding",
)


def alert_of(
    entry: AuditEntry, namespace: str, region: str, finding_severity: str = "ticket"
) -> Alert | None:
    """The alert an audit entry calls for (None: it needs no human)."""
    if entry.id is None or entry.dry_run:
        return None
    labels = _labels(entry, namespace, region)
    if entry.kind == "finding":
        labels["subject"] = entry.target
        labels["scenario"] = str(entry.evidence.get("scenario", ""))
        summary = f"{entry.service}: {entry.evidence.get('text', entry.target)}"
        evidence = dict(entry.evidence)
        resolved = entry.outcome == "resolved"
        return Alert(
            "OodaFinding", finding_severity, labels, summary, entry.id, evidence, True, resolved
        )
    if entry.kind == "escalation":
        if entry.action == "model_fallback":
            detector = entry.evidence.get("model") == "detector"
            name = "OodaDetectorFallback" if detector else "OodaForecasterFallback"
            severity = "warning"
        elif entry.outcome == "circuit breaker open":
            name, severity = "OodaBreakerOpen", "critical"
        elif entry.outcome == "heal failed":
            name, severity = "OodaHealFailed", "warning"
        else:
            name, severity = "OodaNeedsHuman", "warning"
        summary = f"{entry.service}: {entry.outcome} ({entry.action} on {entry.target})"
        if entry.action == "model_fallback":
            summary = f"{entry.service}: {entry.outcome}"
    elif entry.kind == "decision" and entry.outcome.startswith("proposed"):
        name, severity = "OodaActionProposed", "warning"
        summary = f"{entry.service}: {entry.action} on {entry.target} awaits a human"
        summary += f" ({entry.outcome.removeprefix('proposed:').strip()})"
    else:
        return None
    return Alert(name, severity, labels, summary, entry.id, dict(entry.evidence))


def notice_of(entry: AuditEntry, namespace: str, region: str) -> Alert | None:
    """The notice of an applied action or a verified heal (None: the entry is neither)."""
    if entry.id is None or entry.dry_run:
        return None
    labels = _labels(entry, namespace, region)
    if entry.kind == "action" and entry.outcome.startswith("applied"):
        name, summary = "OodaActionTaken", f"{entry.service}: {entry.action} on {entry.target}"
    elif entry.kind == "verification" and entry.outcome == "healed":
        name = "OodaHealed"
        summary = f"{entry.service}: {entry.action} on {entry.target} healed it"
    else:
        return None
    return Alert(name, "info", labels, summary, entry.id, dict(entry.evidence))


class Escalator:
    """Posts the alerts of new audit entries to Alertmanager and a webhook."""

    def __init__(
        self,
        settings: EscalationSettings,
        namespace: str,
        region: str,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.namespace = namespace
        self.region = region
        self._http = httpx.Client(timeout=settings.timeout.total_seconds(), transport=transport)
        self._sleep = sleep
        self.sent = 0
        """Alerts delivered (to at least one receiver)."""
        self.failed = 0
        """Deliveries given up on."""
        self.noticed = 0
        """Notices delivered to the webhook."""

    @property
    def enabled(self) -> bool:
        """Whether any receiver is configured."""
        return bool(self.settings.alertmanager_url or self.settings.webhook_url)

    def escalate(self, entries: Sequence[AuditEntry]) -> list[Alert]:
        """Send the alerts ``entries`` call for (and their notices, with ``notify``); returns
        the alerts."""
        severity = self.settings.finding_severity
        alerts = [a for e in entries if (a := alert_of(e, self.namespace, self.region, severity))]
        hook = self.settings.webhook_url
        if self.settings.notify and hook:
            notices = [n for e in entries if (n := notice_of(e, self.namespace, self.region))]
            if notices and self._post(hook, self._payload(self._bodies(notices, entries))):
                self.noticed += len(notices)
        if not alerts or not self.enabled:
            return alerts
        bodies = self._bodies(alerts, entries)
        delivered = False
        if self.settings.alertmanager_url:
            url = self.settings.alertmanager_url.rstrip("/") + "/api/v2/alerts"
            delivered |= self._post(url, bodies)
        if self.settings.webhook_url:
            delivered |= self._post(self.settings.webhook_url, self._payload(bodies))
        if delivered:
            self.sent += len(alerts)
        return alerts

    def _bodies(self, alerts: Sequence[Alert], entries: Sequence[AuditEntry]) -> list[Any]:
        by_id = {e.id: e for e in entries}
        bodies = []
        for alert in alerts:
            at = by_id[alert.audit_id].at
            ends = at + (self.settings.finding_for if alert.finding else self.settings.active_for)
            if alert.resolved:
                ends = at
            bodies.append(alert.body(self.settings, at.isoformat(), ends.isoformat()))
        return bodies

    def _payload(self, bodies: list[Any]) -> Any:
        return {"source": "ooda", "region": self.region, "alerts": bodies}

    def _post(self, url: str, payload: Any) -> bool:
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.settings.attempts)),
            wait=wait_exponential(multiplier=0.5, max=4),
            retry=retry_if_exception_type(httpx.HTTPError),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._http.post(url, json=payload)
                    if response.status_code >= 500 or response.status_code == 429:
                        raise httpx.HTTPStatusError(
                            f"{response.status_code}", request=response.request, response=response
                        )
        except httpx.HTTPError as exc:
            self.failed += 1
            log.error("escalation to %s failed: %s: %s", url, type(exc).__name__, exc)
            return False
        if response.status_code >= 400:
            self.failed += 1
            log.error("escalation to %s refused: %s %s", url, response.status_code, response.text)
            return False
        return True
