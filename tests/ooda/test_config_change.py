"""A crash loop that began right after a ConfigMap its pods read was changed is the change's:
no restart (the replacement would re-read the same config). When the loop saw the key vanish
and the crashing pods' logs name it, the diagnosis names the key and the loop proposes to put
it back (propose-only by default; allowed, the restore heals); when it cannot name it, one
escalation names the ConfigMap, who changed it and when. A change long before the crash, or
only the install of the ConfigMap, leaves the restart as it was."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from actuators import spy_on
from contracts import ScenarioId
from lab import Lab, ScenarioInstance
from ooda import AuditEntry, OodaSettings
from ooda._approve import ApprovalError, approve
from ooda._cluster_state import read_workloads
from ooda._recover import reset_breaker
from ooda.runbooks.pod_crashloop import crash_began
from tests._narrow import some
from tests.ooda._harness import crashlooping, lab_kube, make_lab, make_loop, run

T = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
BACKOFF = OodaSettings().policy.crash_backoff


def _edit(lab: Lab, service: str, data: dict[str, str | None]) -> None:
    lab.kube.core_v1.edit_config_map(f"{service}-config", data, "kubectl-edit", lab.clock_s)


def _break_config(lab: Lab, key: str) -> datetime:
    """A ``kubectl edit`` removes ``key`` from checkout's ConfigMap: a pod crash-loops."""
    params: dict[str, float | str] = {"pick": 0.3, "configmap_key": key}
    instance = ScenarioInstance(ScenarioId.POD_CRASHLOOP_PERSISTENT, "checkout", params=params)
    return lab.inject(instance).injected_at


def test_the_start_of_a_crash_loop_is_read_back_from_its_restarts() -> None:
    assert crash_began(0, T, BACKOFF) == T
    assert crash_began(1, T, BACKOFF) == T  # the first crash may still be in its back-off
    assert crash_began(3, T, BACKOFF) == T - timedelta(seconds=30)  # 10 s + 20 s
    # 10+20+40+80+160 s, then the 5-minute cap for each further wait.
    assert crash_began(8, T, BACKOFF) == T - timedelta(seconds=310 + 2 * 300)


def test_only_a_change_after_its_creation_is_a_config_change() -> None:
    lab = make_lab()
    kube = lab_kube(lab)
    before = read_workloads(kube, "shop", ["checkout", "payments"])
    assert before["checkout"].config_changes == (), "installing a ConfigMap is no change"
    run_to = lab.clock.now() + timedelta(minutes=3)
    lab.step(run_to - lab.clock.now())
    _edit(lab, "checkout", {"FEATURE_FLAGS": "checkout-v2=off"})
    after = read_workloads(kube, "shop", ["checkout", "payments"])
    [change] = after["checkout"].config_changes
    assert (change.kind, change.name, change.manager) == (
        "ConfigMap",
        "checkout-config",
        "kubectl-edit",
    )
    assert change.at == lab.clock.now().replace(microsecond=0)
    assert after["payments"].config_changes == (), "payments reads its own ConfigMap"


def _proposals(entries: list[AuditEntry]) -> list[AuditEntry]:
    return [e for e in entries if e.outcome.startswith("proposed")]


def test_a_removed_key_the_pods_miss_is_named_and_its_restore_proposed() -> None:
    lab = make_lab()
    kube, spies = spy_on(lab_kube(lab))
    loop = make_loop(lab, kube=kube)
    run(lab, loop, 5)
    injected_at = _break_config(lab, "DB_POOL_SIZE")
    run(lab, loop, 40)
    assert crashlooping(lab, "checkout"), "a proposal changes nothing"
    assert loop.audit.entries("action") == [], "restarted into a broken config"
    assert [m for spy in spies for m in spy.mutations] == [], "changed something"
    proposals = _proposals(loop.audit.entries("decision"))
    assert proposals[0].at - injected_at <= timedelta(minutes=1)
    cooldown = OodaSettings().guard.cooldown
    gaps = [b.at - a.at for a, b in itertools.pairwise(proposals)]
    assert all(gap >= cooldown for gap in gaps), "proposed more than once a cooldown"
    for proposal in proposals:
        assert proposal.action == "restore_config_key"
        assert proposal.target == "configmap/shop/checkout-config"
        evidence = proposal.evidence
        assert evidence["config_change"].startswith("configmap/checkout-config changed at")
        missing = evidence["missing_config_key"]
        assert (missing["config_map"], missing["key"], missing["value"]) == (
            "checkout-config",
            "DB_POOL_SIZE",
            "20",
        )
        assert "DB_POOL_SIZE is not set" in missing["log"]
        assert any("DB_POOL_SIZE" in t["template"] for t in evidence["log_templates"])
        assert evidence["action"]["fields"]["value"] == "20"


def test_a_restore_the_operator_allows_heals_the_crash_loop() -> None:
    lab = make_lab()
    settings = OodaSettings()
    settings = replace(settings, autonomy=replace(settings.autonomy, propose_only=frozenset()))
    loop = make_loop(lab, settings)
    run(lab, loop, 5)
    _break_config(lab, "TLS_CA_BUNDLE")
    run(lab, loop, 15)
    restores = [e for e in loop.audit.entries("action") if e.outcome == "applied"]
    assert [e.action for e in restores] == ["restore_config_key"]
    data = some(lab.kube.core_v1.read_namespaced_config_map("checkout-config", "shop").data)
    assert data["TLS_CA_BUNDLE"] == "/etc/ssl/internal-ca.pem"
    assert crashlooping(lab, "checkout") == []
    verdicts = [e.outcome for e in loop.audit.entries("verification")]
    assert verdicts and verdicts[-1].startswith("healed"), verdicts


def test_a_removal_the_loop_did_not_see_is_escalated_naming_the_change() -> None:
    """ooda started after the key was removed: it cannot know the value, so it proposes
    nothing and escalates, naming the ConfigMap, who changed it and when."""
    lab = make_lab()
    kube, spies = spy_on(lab_kube(lab))
    run(lab, make_loop(lab, kube=kube), 1)
    injected_at = _break_config(lab, "DB_POOL_SIZE")
    lab.step(timedelta(seconds=30))
    loop = make_loop(lab, kube=kube)
    run(lab, loop, 40)
    assert crashlooping(lab, "checkout"), "nothing heals a broken config"
    assert loop.audit.entries("action") == [], "restarted into a broken config"
    assert _proposals(loop.audit.entries("decision")) == []
    assert [m for spy in spies for m in spy.mutations] == [], "changed something"
    escalations = loop.audit.entries("escalation")
    assert escalations[0].at - injected_at <= timedelta(minutes=2)
    for escalation in escalations:  # again every half hour while it lasts
        assert "configmap/checkout-config changed at" in escalation.outcome
        assert "by kubectl-edit" in escalation.outcome
        assert escalation.evidence["config_change"].startswith("configmap/checkout-config")
    gaps = [b.at - a.at for a, b in itertools.pairwise(escalations)]
    assert all(gap >= timedelta(minutes=30) for gap in gaps), "paged more than each half hour"


def test_a_config_change_long_before_the_crash_does_not_hold_back_the_restart() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    _edit(lab, "checkout", {"FEATURE_FLAGS": "checkout-v2=off"})
    run(lab, loop, 40)  # longer ago than the rollout window when the crash begins
    record = lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"))
    run(lab, loop, 15)
    restarts = [e for e in loop.audit.entries("action") if e.action == "restart_pod"]
    assert [r.target for r in restarts] == [f"pod/shop/{record.target}"]
    assert crashlooping(lab, "checkout") == []


def test_a_rollout_after_the_crash_loop_began_is_not_blamed_for_it() -> None:
    """The config broke checkout; ten minutes later someone ships a new image. Its pods crash
    too (they read the same config), but the crash loop is older than the rollout: no
    rollback, no restart, the config change stays the suspect."""
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 5)
    _break_config(lab, "TLS_CA_BUNDLE")
    run(lab, loop, 10)
    image = lab.kube.apps_v1.read_namespaced_deployment("checkout", "shop")
    container = some(image.spec.template.spec).containers[0]
    body = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": container.name, "image": f"{container.image}1"}]}
            }
        }
    }
    lab.kube.apps_v1.patch_namespaced_deployment("checkout", "shop", body)
    run(lab, loop, 25)
    dep = lab.kube.apps_v1.read_namespaced_deployment("checkout", "shop")
    assert int(some(some(dep.metadata).annotations)["deployment.kubernetes.io/revision"]) >= 2
    assert crashlooping(lab, "checkout")
    assert loop.audit.entries("action") == [], "acted on a crash the config change caused"
    proposals = _proposals(loop.audit.entries("decision"))
    assert proposals and all(e.action == "restore_config_key" for e in proposals)
    assert all(e.evidence["missing_config_key"]["key"] == "TLS_CA_BUNDLE" for e in proposals)


def test_a_later_edit_by_the_same_hand_does_not_hide_the_suspect() -> None:
    """``managedFields`` keep one time per manager: a harmless ``kubectl edit`` of a feature
    flag ten minutes into the crash loop overwrites the time of the edit that broke it. The
    loop remembers what it saw, so nothing is restarted and the escalations keep naming the
    first edit."""
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 5)
    broken_at = _break_config(lab, "DB_POOL_SIZE").replace(microsecond=0)
    run(lab, loop, 10)
    _edit(lab, "checkout", {"FEATURE_FLAGS": "checkout-v2=off"})
    run(lab, loop, 30)
    assert crashlooping(lab, "checkout")
    assert loop.audit.entries("action") == [], "restarted into a broken config"
    proposals = _proposals(loop.audit.entries("decision"))
    assert len(proposals) >= 2
    changed = f"changed at {broken_at:%H:%M:%S}"
    assert all(changed in e.evidence["config_change"] for e in proposals)


def test_an_approved_restore_is_applied_and_verified_by_the_running_loop() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 5)
    _break_config(lab, "DB_POOL_SIZE")
    run(lab, loop, 3)
    proposal = _proposals(loop.audit.entries("decision"))[0]
    assert proposal.id is not None
    done = approve(loop.audit, proposal.id, lab_kube(lab), OodaSettings(), "ana", lab.clock.now())
    assert done.outcome == "applied"
    config_map = lab.kube.core_v1.read_namespaced_config_map("checkout-config", "shop")
    assert some(config_map.data)["DB_POOL_SIZE"] == "20"
    with pytest.raises(ApprovalError, match="was approved by ana"):
        approve(loop.audit, proposal.id, lab_kube(lab), OodaSettings(), "bo", lab.clock.now())
    run(lab, loop, 10)
    applied = next(e for e in loop.audit.entries("action") if e.evidence.get("approved_by"))
    verdicts = [e for e in loop.audit.entries("verification") if e.ref == applied.id]
    assert [v.outcome.split(":")[0] for v in verdicts] == ["healed"], verdicts
    assert crashlooping(lab, "checkout") == []


def test_only_a_proposal_may_be_approved() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 1)
    with pytest.raises(ApprovalError, match="no audit entry 4242"):
        approve(loop.audit, 4242, lab_kube(lab), OodaSettings(), "ana", lab.clock.now())
    reset = reset_breaker(loop.audit, "shop/checkout", "ana", "test", lab.clock.now())
    with pytest.raises(ApprovalError, match="is a reset"):
        approve(loop.audit, reset, lab_kube(lab), OodaSettings(), "ana", lab.clock.now())
