"""Escalation: which audit entries page a human, and delivery through a real Alertmanager to
a local receiver (and a generic webhook), with a receiver that is down."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from lab.servers import AlertmanagerServer
from ooda._audit import AuditEntry, AuditLog
from ooda._escalate import Escalator, alert_of
from ooda._settings import EscalationSettings
from tests.conftest import Receiver

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _entry(kind: str, outcome: str, dry_run: bool = False, id_: int = 7) -> AuditEntry:
    return AuditEntry(
        AT, kind, "checkout", "restart_pod", "pod/shop/checkout-1", dry_run, outcome,
        {"reason": "p95 still 240 ms"}, None, id_,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "outcome", "name", "severity"),
    [
        ("escalation", "circuit breaker open", "OodaBreakerOpen", "critical"),
        ("escalation", "heal failed", "OodaHealFailed", "warning"),
        ("escalation", "config changed: a restart re-reads it", "OodaNeedsHuman", "warning"),
        ("decision", "proposed: restart_pod is propose-only", "OodaActionProposed", "warning"),
    ],
)
def test_what_needs_a_human_becomes_an_alert(
    kind: str, outcome: str, name: str, severity: str
) -> None:
    alert = alert_of(_entry(kind, outcome), "shop", "eu-west-1")
    assert alert is not None and (alert.name, alert.severity) == (name, severity)
    assert alert.labels == {
        "service": "checkout",
        "namespace": "shop",
        "region": "eu-west-1",
        "action": "restart_pod",
    }
    assert alert.audit_id == 7 and alert.evidence == {"reason": "p95 still 240 ms"}


@pytest.mark.parametrize(
    ("kind", "outcome", "dry_run"),
    [
        ("action", "applied", False),
        ("decision", "approved", False),
        ("verification", "healed", False),
        ("escalation", "heal failed", True),
    ],
)
def test_what_the_loop_handled_pages_nobody(kind: str, outcome: str, dry_run: bool) -> None:
    assert alert_of(_entry(kind, outcome, dry_run), "shop", "eu-west-1") is None


def test_alerts_reach_the_receiver_through_a_real_alertmanager_and_the_webhook(
    alertmanager: AlertmanagerServer, alert_receiver: Receiver, tmp_path
) -> None:
    audit = AuditLog(tmp_path / "audit.db")
    first = audit.write(
        AuditEntry(datetime.now(UTC), "escalation", "payments", "restart_pod", "pod/shop/p-1",
                   False, "circuit breaker open", {"failures": 3})
    )  # fmt: skip
    audit.write(
        AuditEntry(datetime.now(UTC), "finding", "payments", "drain_node", "node/worker-2",
                   False, "open", {"text": "node worker-2 stopped: repair it", "scenario":
                   "node_not_ready"}, ref=first)
    )  # fmt: skip
    settings = EscalationSettings(
        alertmanager_url=alertmanager.url,
        webhook_url=alert_receiver.url,
        incident_url="https://ooda.example/incidents/{audit_id}",
    )
    escalator = Escalator(settings, "shop", "eu-west-1")
    alerts = escalator.escalate(audit.entries())
    assert [a.name for a in alerts] == ["OodaBreakerOpen", "OodaFinding"]
    assert escalator.sent == 2
    direct = [b for b in alert_receiver.bodies if b.get("source") == "ooda"]
    assert direct[-1]["alerts"][0]["annotations"]["audit_id"] == str(first)  # type: ignore[index]
    deadline = time.monotonic() + 30
    routed: list[dict[str, object]] = []
    while time.monotonic() < deadline and not routed:
        routed = [
            a
            for b in alert_receiver.bodies
            if b.get("receiver") == "hook"
            for a in b["alerts"]  # type: ignore[attr-defined]
            if a["labels"]["alertname"] == "OodaBreakerOpen"
        ]
        time.sleep(0.2)
    assert routed, alert_receiver.bodies
    alert = routed[0]
    assert alert["labels"]["service"] == "payments" and alert["labels"]["severity"] == "critical"  # type: ignore[index]
    assert alert["annotations"]["incident"] == f"https://ooda.example/incidents/{first}"  # type: ignore[index]
    assert '"failures": 3' in alert["annotations"]["evidence"]  # type: ignore[index]
    listed = httpx.get(f"{alertmanager.url}/api/v2/alerts").json()
    assert any(a["labels"]["alertname"] == "OodaBreakerOpen" for a in listed)
    # A finding is a ticket that stays open for a week, not a page that ends in an hour.
    (ticket,) = [a for a in listed if a["labels"]["alertname"] == "OodaFinding"]
    assert ticket["labels"]["severity"] == "ticket"
    assert ticket["labels"]["subject"] == "node/worker-2"
    ends = datetime.fromisoformat(ticket["endsAt"].replace("Z", "+00:00"))
    assert ends - datetime.now(UTC) > settings.finding_for - timedelta(minutes=5)


def test_a_receiver_that_is_down_is_retried_then_logged_never_raised() -> None:
    calls: list[str] = []
    slept: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(503)

    escalator = Escalator(
        EscalationSettings(alertmanager_url="http://am.test:9093", attempts=3),
        "shop",
        "eu-west-1",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
    )
    alerts = escalator.escalate([_entry("escalation", "heal failed")])
    assert len(alerts) == 1 and escalator.sent == 0 and escalator.failed == 1
    assert calls == ["http://am.test:9093/api/v2/alerts"] * 3 and len(slept) == 2


def test_notices_of_what_ooda_did_go_to_the_webhook_only_and_only_when_asked() -> None:
    posted: list[tuple[str, dict[str, Any]]] = []  # JSON bodies

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append((request.url.host, json.loads(request.content)))
        return httpx.Response(200)

    entries = [
        _entry("action", "applied"),
        _entry("verification", "healed"),
        _entry("verification", "pending"),
        _entry("action", "applied", dry_run=True),
    ]
    for notify in (False, True):
        posted.clear()
        settings = EscalationSettings(
            alertmanager_url="http://am.test:9093", webhook_url="http://hook.test/", notify=notify
        )
        escalator = Escalator(settings, "shop", "eu-west-1", transport=httpx.MockTransport(handler))
        assert escalator.escalate(entries) == []  # nothing here needs a human
        if not notify:
            assert posted == [] and escalator.noticed == 0
            continue
        ((host, body),) = posted
        assert host == "hook.test" and escalator.noticed == 2
        alerts = body["alerts"]
        assert [a["labels"]["alertname"] for a in alerts] == ["OodaActionTaken", "OodaHealed"]
        assert {a["labels"]["severity"] for a in alerts} == {"info"}
