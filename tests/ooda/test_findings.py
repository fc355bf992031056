"""Findings: what a heal that worked leaves for the owners (the leak behind a restart, the node
a drain left cordoned), opened once after the verified heal, kept in the audit log, posted as
a ticket, shown by ``ooda status`` and the incident page, and carried over a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from actuators import MERGE_PATCH, Guard
from contracts import ScenarioId
from lab import Lab, ScenarioInstance
from lab._kubelet import kill_node, revive_node
from ooda import ControlLoop, OodaSettings
from ooda._audit import AuditEntry, AuditLog
from ooda._autonomy import ErrorBudget
from ooda._escalate import Alert, Escalator, alert_of
from ooda._incident_page import incident_html
from ooda._incidents import incidents
from ooda._recover import recover
from ooda._settings import EscalationSettings
from ooda.cli import main

from ._harness import lab_kube, make_lab, make_loop, run


def _leak(lab: Lab, stagger: float = 0.8) -> str:
    """Two of checkout's pods leak, reaching their limits 15 and about 19 minutes on."""
    instance = ScenarioInstance(
        ScenarioId.MEMORY_LEAK,
        "checkout",
        magnitude=2.0,
        params={"pick": 0.0, "to_limit_s": 900.0, "stagger": stagger},
    )
    return lab.inject(instance).target


@dataclass(frozen=True)
class Leaked:
    loop: ControlLoop
    path: Path


@pytest.fixture(scope="module")
def leaked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Leaked]:
    """Thirty minutes of the loop on a lab where two of checkout's pods leak."""
    lab = make_lab()
    path = tmp_path_factory.mktemp("findings") / "audit.db"
    loop = make_loop(lab, audit=AuditLog(path))
    run(lab, loop, 2)
    _leak(lab)
    run(lab, loop, 30)
    yield Leaked(loop, path)
    loop.audit.close()


def test_a_leak_restarted_pod_by_pod_opens_one_finding_after_the_first_heal(
    leaked: Leaked,
) -> None:
    audit = leaked.loop.audit
    restarts = audit.entries("action")
    healed = [v for v in audit.entries("verification") if v.outcome == "healed"]
    findings = audit.entries("finding")
    assert len(restarts) >= 2 and len(healed) >= 2, "the leak's replicas were restarted in turn"
    assert len(findings) == 1, findings
    finding = findings[0]
    assert finding.ref == healed[0].id, "opened by the first verified heal"
    assert restarts[0].at < healed[0].at <= finding.at
    assert finding.target == "deployment/shop/checkout" and finding.outcome == "open"
    assert "leaks memory" in finding.evidence["text"] and "fix the leak" in finding.evidence["text"]
    assert finding.evidence["scenario"] == "memory_leak"
    decision = audit.entries("decision")[0]
    assert decision.evidence["follow_up"]["subject"] == finding.target, "said when decided"
    assert audit.verify().ok


def test_a_drained_node_is_left_for_a_human_to_repair_and_uncordon() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 2)
    node = lab.cluster.nodes[0]
    kill_node(node, lab.clock_s)
    run(lab, loop, 12)
    drains = [v for v in loop.audit.entries("verification") if v.action == "drain_node"]
    assert [v.outcome for v in drains][:1] == ["healed"], drains
    findings = [f for f in loop.audit.entries("finding") if f.target == f"node/{node.name}"]
    assert len(findings) == 1, loop.audit.entries("finding")
    assert "uncordon" in findings[0].evidence["text"]
    assert findings[0].evidence["scenario"] == "node_not_ready"
    # Repaired but still cordoned: the work is not done.
    revive_node(lab.cluster, node, lab.clock_s)
    run(lab, loop, 2)
    assert [f.outcome for f in loop.audit.entries("finding")] == ["open"]
    # A human uncordons it: the finding resolves, and its ticket with it.
    lab_kube(lab).core_v1.patch_node(
        node.name, {"spec": {"unschedulable": None}}, _content_type=MERGE_PATCH
    )
    run(lab, loop, 1)
    opened, resolved = loop.audit.entries("finding")
    assert (resolved.outcome, resolved.ref, resolved.target) == (
        "resolved",
        opened.id,
        opened.target,
    )
    alerts = [a for a in alert_of_all(loop.audit.entries()) if a.name == "OodaFinding"]
    assert [a.resolved for a in alerts] == [False, True]
    assert alerts[0].labels == alerts[1].labels, "the same alert, so Alertmanager resolves it"


def test_a_restarted_loop_still_resolves_the_findings_left_open() -> None:
    lab = make_lab()
    audit = AuditLog(":memory:")
    loop = make_loop(lab, audit=audit)
    run(lab, loop, 2)
    node = lab.cluster.nodes[0]
    kill_node(node, lab.clock_s)
    run(lab, loop, 12)
    assert [f.outcome for f in audit.entries("finding")] == ["open"]
    again = make_loop(lab, audit=audit)
    revive_node(lab.cluster, node, lab.clock_s)
    lab_kube(lab).core_v1.patch_node(
        node.name, {"spec": {"unschedulable": None}}, _content_type=MERGE_PATCH
    )
    run(lab, again, 1)
    assert [f.outcome for f in audit.entries("finding")] == ["open", "resolved"]


def test_a_restarted_loop_does_not_open_the_same_finding_again() -> None:
    """The leak's first verified restart opens the finding; the loop restarts; the second
    replica's verified restart, under the new process, opens none (one a day per subject)."""
    lab = make_lab()
    audit = AuditLog(":memory:")
    loop = make_loop(lab, audit=audit)
    run(lab, loop, 2)
    _leak(lab)
    for _ in range(30):
        if audit.entries("finding"):
            break
        run(lab, loop, 1)
    assert len(audit.entries("finding")) == 1
    healed_before = len([v for v in audit.entries("verification") if v.outcome == "healed"])
    again = make_loop(lab, audit=audit)
    run(lab, again, 20)
    healed = [v for v in audit.entries("verification") if v.outcome == "healed"]
    assert len(healed) > healed_before, "a heal was verified by the restarted loop"
    assert len(audit.entries("finding")) == 1, audit.entries("finding")


def alert_of_all(entries: list[AuditEntry]) -> list[Alert]:
    return [a for e in entries if (a := alert_of(e, "shop", "eu-west-1")) is not None]


def test_a_restart_that_heals_a_crash_loop_leaves_no_finding() -> None:
    from lab import CrashLoopFault

    lab = make_lab()
    loop = make_loop(lab)
    lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 8)
    assert [v.outcome for v in loop.audit.entries("verification")] == ["healed"]
    assert loop.audit.entries("finding") == []


def test_a_finding_is_a_ticket_open_for_a_week_not_a_page(leaked: Leaked) -> None:
    posted: list[Any] = []

    def receive(request: httpx.Request) -> httpx.Response:
        posted.extend(json.loads(request.content))
        return httpx.Response(200)

    settings = EscalationSettings(alertmanager_url="http://am.test", finding_severity="backlog")
    escalator = Escalator(
        settings, "shop", "eu-west-1", transport=httpx.MockTransport(receive), sleep=lambda _: None
    )
    alerts = escalator.escalate(leaked.loop.audit.entries())
    tickets = [a for a in posted if a["labels"]["alertname"] == "OodaFinding"]
    assert len(tickets) == 1 and [a.name for a in alerts].count("OodaFinding") == 1
    ticket = tickets[0]
    assert ticket["labels"]["severity"] == "backlog"
    assert ticket["labels"]["subject"] == "deployment/shop/checkout"
    assert ticket["labels"]["scenario"] == "memory_leak"
    assert "leaks memory" in ticket["annotations"]["summary"]
    starts = datetime.fromisoformat(ticket["startsAt"])
    ends = datetime.fromisoformat(ticket["endsAt"])
    assert ends - starts == settings.finding_for


def test_a_finding_is_on_the_incident_page_and_in_ooda_status(
    leaked: Leaked, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = leaked.loop.audit
    (finding,) = audit.entries("finding")
    page = next(incident_html(i) for i in incidents(audit) if finding in i.entries)
    assert "for the owners of deployment/shop/checkout" in page
    assert main(["status", "--audit", str(leaked.path)]) == 0
    out = capsys.readouterr().out
    assert "findings for the owners" in out and "deployment/shop/checkout" in out


def test_a_restart_keeps_the_finding_an_unverified_heal_will_open(tmp_path: Path) -> None:
    lab = make_lab()
    path = tmp_path / "audit.db"
    loop = make_loop(lab, audit=AuditLog(path))
    run(lab, loop, 2)
    _leak(lab)
    for _ in range(30 * 4):
        run(lab, loop, 0.25)
        if loop.audit.entries("action"):
            break
    assert loop.audit.entries("verification") == []
    settings = OodaSettings()
    found = recover(loop.audit, Guard(settings.guard), ErrorBudget(settings.autonomy))
    (pending,) = found.pending
    assert pending.finding is not None
    assert pending.finding.subject == "deployment/shop/checkout"
    assert "leaks memory" in pending.finding.text


def test_the_same_subject_opens_again_once_the_period_is_over() -> None:
    lab = make_lab()
    settings = OodaSettings()
    short = replace(settings.escalation, finding_every=timedelta(minutes=1))
    loop = make_loop(lab, replace(settings, escalation=short))
    run(lab, loop, 2)
    _leak(lab)
    run(lab, loop, 30)
    healed = [v for v in loop.audit.entries("verification") if v.outcome == "healed"]
    findings = loop.audit.entries("finding")
    assert len(healed) >= 2 and len(findings) == len(healed), (healed, findings)
