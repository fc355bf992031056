"""The control loop's safety rules on the lab (DESIGN.md, "Safety").

A crash that survives restarts gets at most three, then the workload's breaker opens and a
human is called; a kind that keeps failing drops to propose-only; a refusal is not a failed
heal; dry-run changes nothing and uses no guard slot; undo and scale-in leave a human's change
alone; every registered runbook and scenario keeps its contract.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from actuators import (
    AUDIT_ID,
    CHANGED_AT,
    CHANGED_BY,
    FLOOR_BELOW,
    FLOOR_FOR,
    MERGE_PATCH,
    MIN_ORIGINAL,
    MIN_SET,
    Action,
    ActionContext,
    ConflictError,
    CordonNode,
    DrainNode,
    Guard,
    GuardKey,
    GuardRejectedError,
    GuardSettings,
    KubeClients,
    MalformedAnnotationError,
    RecreatePodElsewhere,
    RestartPod,
    SetHpaMinReplicas,
    ooda_floor,
    spy_on,
)
from contracts import HpaState, ScenarioId, WorkloadState
from lab import Lab, ScenarioInstance, TrafficSurgeFault, check_scenario, registered_scenarios
from ooda import (
    AuditEntry,
    AuditLog,
    Autonomy,
    AutonomySettings,
    ControlLoop,
    Diagnosis,
    ErrorBudget,
    OodaSettings,
    Plan,
    RuleScorer,
    Runbook,
    Snapshot,
    recover,
    reset_breaker,
)
from ooda._act import Actor, action_record
from ooda._journal import Journal
from ooda._records import IDLE
from ooda._run import STATE_FILE, RunState
from ooda.cli import main
from ooda.runbooks import check_runbook, registered_runbooks
from ooda.runbooks.traffic_surge import TrafficSurge
from tests._narrow import some
from tests.actuators._stubs import StubCore, make_node, make_pod
from tests.ooda._harness import START, crashlooping, lab_kube, lab_sleep, make_lab, make_loop
from tests.ooda._snapshots import region_snapshot

CHECKOUT = "shop/checkout"
TICK = timedelta(seconds=15)


# -- helpers --------------------------------------------------------------------------------


def applied(loop: ControlLoop, kind: str, since: datetime | None = None) -> list[AuditEntry]:
    """The ``kind`` actions the loop applied (not previews), at or after ``since``."""
    return [
        e
        for e in loop.audit.entries("action", since=since)
        if e.action == kind and e.outcome == "applied"
    ]


def mutations(spies: list[Any]) -> list[str]:
    return [m for spy in spies for m in spy.mutations]


def seed_failed_heals(audit: AuditLog, action: Action, times: list[datetime]) -> None:
    """Write, as the loop does, one applied ``action`` per time and a failed verdict on it."""
    key = GuardKey.of(action).as_dict()
    evidence = {"guard": key, "action": action_record(action), "scenario": "pod_crashloop"}
    for at in sorted(times):
        intent = audit.write(
            AuditEntry(
                at,
                "intent",
                action.service,
                action.kind,
                action.target,
                False,
                "applying",
                evidence,
            )
        )
        done = audit.write(
            AuditEntry(
                at,
                "action",
                action.service,
                action.kind,
                action.target,
                False,
                "applied",
                {**evidence, "deadline_s": 360.0},
                ref=intent,
            )
        )
        audit.write(
            AuditEntry(
                at + timedelta(minutes=6),
                "verification",
                action.service,
                action.kind,
                action.target,
                False,
                "failed",
                {"guard": key, "reason": "still crash-looping"},
                ref=done,
            )
        )


def tick_until(lab: Lab, loop: ControlLoop, minutes: float, stop: Any = None) -> bool:
    """Tick for ``minutes`` of lab time, or until ``stop()`` holds (then True)."""
    for _ in range(int(minutes * 60 / TICK.total_seconds())):
        lab.step(TICK)
        loop.tick()
        if stop is not None and stop():
            return True
    return False


# -- 1. flapping: a crash that survives restarts --------------------------------------------


def test_a_persistent_crash_gets_one_restart_then_is_left_alone_until_reset() -> None:
    """The replacement crash-loops the same way: the restart failed, the loop escalates and
    never restarts checkout again (another restart would fail the same way) until a human's
    reset, which the running loop honours on its next tick."""
    lab = make_lab()
    kube, spies = spy_on(lab_kube(lab))
    loop = make_loop(lab, kube=kube)
    lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP_PERSISTENT, "checkout"))
    failed = lambda: bool(loop.audit.entries("verification"))  # noqa: E731
    assert tick_until(lab, loop, 30, failed)
    failed_at, changed = lab.clock.now(), len(mutations(spies))
    assert [v.outcome for v in loop.audit.entries("verification")] == ["failed"]
    assert len(applied(loop, "restart_pod")) == 1
    escalations = [e for e in loop.audit.entries("escalation") if e.at == failed_at]
    assert [e.outcome for e in escalations] == ["heal failed"]
    assert escalations[0].evidence["workload"] == CHECKOUT

    tick_until(lab, loop, 60)
    now = lab.clock.now()
    assert crashlooping(lab, "checkout"), "the crash is still there"
    quiet = [e for e in loop.audit.entries(since=failed_at) if e.service == "checkout"]
    assert not [e for e in quiet if e.kind in ("intent", "action")], "restarted again"
    assert mutations(spies)[changed:] == []
    refusals = [e.outcome for e in quiet if e.kind == "refusal"]
    assert refusals and all("another try would fail the same way" in r for r in refusals)
    assert not loop.guard.is_open(CHECKOUT, now), "one failure is not a breaker's three"

    reset_breaker(loop.audit, CHECKOUT, "sre@example.com", "ConfigMap fixed, try again", now)
    tick_until(lab, loop, 1)
    assert len(applied(loop, "restart_pod", now)) == 1, "the reset was not honoured at once"


def test_the_breaker_opens_after_repeated_failed_heals_and_leaves_the_workload_alone() -> None:
    """With a breaker of one failure, the failed restart opens it: "circuit breaker open" is
    escalated and nothing acts on checkout while it is open."""
    lab = make_lab()
    kube, spies = spy_on(lab_kube(lab))
    loop = make_loop(lab, OodaSettings(guard=GuardSettings(breaker_failures=1)), kube=kube)
    lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP_PERSISTENT, "checkout"))
    assert tick_until(lab, loop, 30, lambda: loop.guard.is_open(CHECKOUT, lab.clock.now()))
    opened_at, changed = lab.clock.now(), len(mutations(spies))
    escalations = [e for e in loop.audit.entries("escalation") if e.at == opened_at]
    assert [e.outcome for e in escalations] == ["circuit breaker open"]
    tick_until(lab, loop, 30)
    assert loop.guard.is_open(CHECKOUT, lab.clock.now())
    quiet = [e for e in loop.audit.entries(since=opened_at) if e.service == "checkout"]
    assert not [e for e in quiet if e.kind in ("intent", "action")], "acted behind the breaker"
    assert mutations(spies)[changed:] == []
    refusals = [e.outcome for e in quiet if e.kind == "refusal"]
    assert refusals and all("circuit breaker of shop/checkout open" in r for r in refusals)


def test_an_open_breaker_closes_by_itself_after_its_time() -> None:
    """With ``breaker_open_for`` of 15 minutes, nothing happens while it is open and the
    workload is acted on again once it has closed."""
    lab = make_lab()
    guard = GuardSettings(
        breaker_failures=1,
        breaker_open_for=timedelta(minutes=15),
        breaker_window=timedelta(minutes=10),
    )
    loop = make_loop(lab, OodaSettings(guard=guard))
    lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP_PERSISTENT, "checkout"))
    assert tick_until(lab, loop, 60, lambda: loop.guard.is_open(CHECKOUT, lab.clock.now()))
    opened_at = lab.clock.now()
    until = loop.guard.open_breakers(opened_at)[CHECKOUT]
    assert until == opened_at + timedelta(minutes=15)
    tick_until(lab, loop, 25)
    later = applied(loop, "restart_pod", opened_at)
    assert later, "the workload was never acted on again after the breaker closed"
    assert all(e.at >= until for e in later), "acted while the breaker was open"


def test_a_crash_loop_that_replacement_heals_takes_exactly_one_restart() -> None:
    """The plain crash loop is healed by one restart, verified, and nothing follows."""
    lab = make_lab()
    loop = make_loop(lab)
    record = lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"))
    tick_until(lab, loop, 30)
    restarts = applied(loop, "restart_pod")
    assert [r.target for r in restarts] == [f"pod/shop/{record.target}"]
    assert [v.outcome for v in loop.audit.entries("verification")] == ["healed"]
    assert crashlooping(lab, "checkout") == []
    assert not loop.guard.is_open(CHECKOUT, lab.clock.now())


# -- 2. the failed-heal budget drives autonomy ----------------------------------------------


def test_the_budget_counts_failed_heals_per_kind_over_a_rolling_week() -> None:
    """Four failures act, the fifth drops the kind to propose-only, another kind is
    untouched, and a failure older than seven days stops counting."""
    budget = ErrorBudget(AutonomySettings())
    for hour in range(4):
        budget.record_failure("restart_pod", START + timedelta(hours=hour))
    assert not budget.standing("restart_pod", START + timedelta(hours=4)).propose_only
    budget.record_failure("restart_pod", START + timedelta(hours=4))
    standing = budget.standing("restart_pod", START + timedelta(hours=5))
    assert standing.propose_only and standing.failed == 5
    assert "5 failed heals in the last 7 days" in standing.why
    assert not budget.standing("set_hpa_min", START + timedelta(hours=5)).propose_only
    week = START + timedelta(days=7)
    assert budget.standing("restart_pod", week).propose_only, "exactly 7 days old still counts"
    aged = budget.standing("restart_pod", week + timedelta(minutes=1))
    assert aged.failed == 4 and not aged.propose_only


def test_a_kind_out_of_budget_is_only_proposed_while_a_kind_with_budget_acts() -> None:
    """Five failed restarts in the audit log (replayed at start-up): the crash loop's restart
    is proposed, with no mutating call; raising an HPA floor still acts."""
    audit = AuditLog(":memory:")
    old = RestartPod("shop", "checkout", pod="checkout-old")
    seed_failed_heals(audit, old, [START - timedelta(days=d) for d in range(1, 6)])
    lab = make_lab()
    kube, spies = spy_on(lab_kube(lab))
    loop = make_loop(lab, kube=kube, audit=audit)
    assert loop.budget.standing("restart_pod", START).propose_only
    lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"))
    tick_until(lab, loop, 8)
    proposed = [e for e in audit.entries("decision", since=START) if e.action == "restart_pod"]
    assert proposed and all(e.outcome.startswith("proposed: ") for e in proposed)
    assert "5 failed heals in the last 7 days" in proposed[0].outcome
    assert loop.stats.proposed["restart_pod"] == len(proposed)
    assert mutations(spies) == []
    assert not audit.entries("intent", since=START) and not applied(loop, "restart_pod", START)
    assert crashlooping(lab, "checkout"), "only a human may restart it now"

    # A surge: set_hpa_min has its whole budget and acts.
    lab.inject(
        TrafficSurgeFault(factor=3.0, ramp=timedelta(minutes=3), duration=timedelta(minutes=20))
    )
    tick_until(lab, loop, 4)
    assert applied(loop, "set_hpa_min")
    assert set(mutations(spies)) == {"patch_namespaced_horizontal_pod_autoscaler"}


def test_failed_heals_older_than_a_week_age_out_of_the_budget() -> None:
    """Four failures this week and one eight days ago: the kind still acts."""
    audit = AuditLog(":memory:")
    old = RestartPod("shop", "checkout", pod="checkout-old")
    days = [1.0, 2.0, 3.0, 4.0, 8.0]
    seed_failed_heals(audit, old, [START - timedelta(days=d) for d in days])
    lab = make_lab()
    loop = make_loop(lab, audit=audit)
    assert loop.budget.failed("restart_pod", START) == 4
    lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"))
    tick_until(lab, loop, 3)
    assert len(applied(loop, "restart_pod", START)) == 1
    assert not [e for e in audit.entries("decision") if e.outcome.startswith("proposed")]


def test_ooda_status_shows_a_propose_only_kind_and_an_open_breaker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ooda status`` rebuilds budget and breakers from the log and reports both."""
    path = tmp_path / "audit.db"
    audit = AuditLog(path)
    now = datetime.now(UTC)
    times = [now - timedelta(days=3), now - timedelta(days=2)]
    times += [now - timedelta(minutes=m) for m in (50, 30, 10)]
    seed_failed_heals(audit, RestartPod("shop", "checkout", pod="checkout-1"), times)
    audit.write(
        AuditEntry(now, "escalation", "ooda-forecaster", "model_fallback",
                   "model/ooda-forecaster@champion", False, "live MASE 9.10", {"version": "4"})
    )  # fmt: skip
    audit.close()
    assert main(["status", "--audit", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    watch = next(line for line in lines if line.startswith("model watches:"))
    assert "forecaster fallback v4: live MASE 9.10" in watch
    restart = next(line for line in lines if "restart_pod" in line)
    assert "propose-only" in restart and " 5 " in restart
    surge = next(line for line in lines if "set_hpa_min" in line)
    assert "propose-only" not in surge and " act " in surge
    breakers = next(line for line in lines if line.startswith("open circuit breakers:"))
    assert CHECKOUT in breakers


def test_ooda_status_tells_an_idle_standby_from_a_service_it_cannot_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An idle service is not "not acted on": its pods' own faults still are."""
    AuditLog(tmp_path / "audit.db").close()
    problems = [
        {"service": "checkout", "stage": "input", "reason": IDLE},
        {"service": "payments", "stage": "input", "reason": "newest sample has NaN in ['cpu']"},
    ]
    state = RunState("eu-central-1", 1, False, "2026-03-02T09:00:00+00:00", problems=problems)
    state.save(tmp_path / STATE_FILE)
    assert main(["status", "--audit", str(tmp_path / "audit.db")]) == 0
    lines = capsys.readouterr().out.splitlines()
    idle = next(line for line in lines if "checkout" in line)
    assert idle.strip().startswith("idle: checkout") and "pods' own faults" in idle
    bad = next(line for line in lines if "payments" in line)
    assert bad.strip().startswith("not acted on: payments")


def test_status_and_breaker_reset_refuse_a_missing_audit_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong ``--audit`` path is an error (exit 2), never a fresh empty log."""
    missing = tmp_path / "typo.db"
    for command in (["status"], ["breaker", "reset", CHECKOUT, "--reason", "fixed"]):
        assert main([*command, "--audit", str(missing)]) == 2
        assert f"no audit log at {missing}" in capsys.readouterr().out
    assert not missing.exists()


def test_a_breaker_reset_names_a_workload_and_a_reason_and_says_when_none_was_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A blank or malformed key, or a blank reason, never reaches the log; a reset of a key
    whose breaker is not open (a typo) is recorded but says so."""
    path = tmp_path / "audit.db"
    audit = AuditLog(path)
    now = datetime.now(UTC)
    times = [now - timedelta(minutes=m) for m in (50, 30, 10)]
    seed_failed_heals(audit, RestartPod("shop", "checkout", pod="checkout-1"), times)
    audit.close()
    base = ["breaker", "reset", "--audit", str(path)]
    for workload, reason in (("", "fixed"), ("checkout", "fixed"), ("a/b/c", "x"), (CHECKOUT, " ")):
        with pytest.raises(SystemExit) as refused:
            main([*base, workload, "--reason", reason])
        assert refused.value.code == 2, (workload, reason)
    capsys.readouterr()
    assert not AuditLog(path).entries("reset"), "nothing was recorded"
    assert main([*base, "shop/chekout", "--reason", "typo"]) == 0
    assert f"shop/chekout had no open breaker; open ones: {CHECKOUT}" in capsys.readouterr().out
    assert main([*base, CHECKOUT, "--reason", "fixed the config"]) == 0
    assert "no open breaker" not in capsys.readouterr().out
    assert [e.target for e in AuditLog(path).entries("reset")] == ["shop/chekout", CHECKOUT]


def test_status_names_a_state_file_no_run_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    AuditLog(tmp_path / "audit.db").close()
    for content in ("[1]", '{"region": "eu"}', "not json"):
        (tmp_path / "state.json").write_text(content)
        args = ["status", "--audit", str(tmp_path / "audit.db"), "--state"]
        assert main([*args, str(tmp_path / "state.json")]) == 0
        assert "state.json is not a state `ooda run` wrote" in capsys.readouterr().out


# -- 3. refusals are not failed heals -------------------------------------------------------


def _no_failure_on_record(loop: ControlLoop, kind: str, breakers: list[str]) -> None:
    """Neither live nor replayed from the log does ``kind`` carry a failure or a breaker."""
    now = loop.clock.now()
    assert loop.stats.failed[kind] == 0
    assert loop.budget.failed(kind, now) == 0
    assert not loop.budget.standing(kind, now).propose_only
    assert not any(loop.guard.is_open(b, now) for b in breakers)
    assert not [e for e in loop.audit.entries("escalation") if "breaker" in e.outcome]
    guard, budget = Guard(), ErrorBudget(AutonomySettings())
    recover(loop.audit, guard, budget)
    assert budget.failed(kind, now) == 0 and guard.open_breakers(now) == {}


def test_guard_refusals_are_audited_as_refused_and_never_count_as_failures() -> None:
    """An earlier restart still awaiting its verdict makes the guard refuse every new one:
    each refusal is audited and counted as refused, and more of them than the breaker's and
    the budget's limits open no breaker and cost no budget."""
    lab = make_lab()
    guard = Guard(OodaSettings().guard)
    guard.record_applied(RestartPod("shop", "checkout", pod="checkout-earlier"), START)
    loop = make_loop(lab, guard=guard)
    lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"))
    tick_until(lab, loop, 26)
    refusals = [e for e in loop.audit.entries("refusal") if e.action == "restart_pod"]
    assert len(refusals) >= 5
    assert all(e.outcome.startswith("refused: ") for e in refusals)
    assert "awaits its verdict" in refusals[0].outcome
    assert loop.stats.refused["restart_pod"] == len(refusals)
    assert not applied(loop, "restart_pod")
    _no_failure_on_record(loop, "restart_pod", [CHECKOUT])


class MoveLoopingPod(Runbook):
    """A test runbook: move a crash-looping pod to another node (a node-scoped action)."""

    name = "test_move_looping_pod"
    scenarios = (ScenarioId.POD_CRASHLOOP,)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        if not workload.crashlooping:
            return None
        return Diagnosis(
            ScenarioId.POD_CRASHLOOP,
            snapshot.region,
            service,
            workload.workload,
            0.9,
            {},
            self.name,
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        pod = snapshot.workloads[diagnosis.service].crashlooping[0]
        return RecreatePodElsewhere(snapshot.namespace, diagnosis.service, pod=pod.name)


def test_a_precondition_refusal_is_refused_not_failed() -> None:
    """Two of three nodes cordoned: moving the crash-looping pod off the third is refused by
    the node-pool limit, tick after tick, with no mutating call, no failure, no breaker."""
    lab = make_lab()
    record = lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"))
    core: Any = lab.kube.core_v1
    sick = core.read_namespaced_pod(record.target, "shop").spec.node_name
    for node in core.list_node().items:
        if node.metadata.name != sick:
            core.patch_node(
                node.metadata.name, {"spec": {"unschedulable": True}}, _content_type=MERGE_PATCH
            )
    kube, spies = spy_on(lab_kube(lab))
    settings = OodaSettings()
    loop = ControlLoop(
        settings,
        clock=lab.clock,
        source=lab.source,
        scorer=RuleScorer(),
        kube=kube,
        audit=AuditLog(":memory:"),
        sleep=lab_sleep(lab),
        runbooks=[MoveLoopingPod(settings)],
    )
    tick_until(lab, loop, 20)
    results = [e for e in loop.audit.entries("action") if e.action == "recreate_pod_elsewhere"]
    assert len(results) >= 4, "more refusals than it takes failures to open a breaker"
    assert all(e.outcome.startswith("refused: ") for e in results)
    assert "2 of 3 nodes" in results[0].outcome and "already out" in results[0].outcome
    assert loop.stats.refused["recreate_pod_elsewhere"] >= 1
    assert mutations(spies) == []
    _no_failure_on_record(loop, "recreate_pod_elsewhere", [CHECKOUT, f"node/{sick}"])


def test_a_refused_action_does_not_free_the_node_slot_of_another() -> None:
    """A cordon of node x awaits its verdict; a drain of x refused for a bare pod must not
    make the guard forget it: a node action on y is still refused."""
    guard = Guard()
    guard.record_applied(CordonNode("shop", "checkout", node="x"), START)
    core = StubCore([make_node("x"), make_node("y")], [make_pod("lonely", "x", owner=None)])
    settings = OodaSettings()
    actor = Actor(
        settings,
        [],
        guard,
        ErrorBudget(settings.autonomy),
        Journal(AuditLog(":memory:")),
        ActionContext(KubeClients(core, None, None), sleep=lambda _s: None),
    )
    drain = DrainNode("shop", "checkout", node="x")
    diagnosis = Diagnosis(ScenarioId.POD_CRASHLOOP, "eu-west-1", "checkout", CHECKOUT, 0.9, {}, "t")
    later = START + timedelta(minutes=1)
    assert actor.act(Plan(diagnosis, drain, Autonomy.ACT, timedelta(minutes=10)), later) is None
    refused = actor.journal.audit.entries("action")
    assert [e.outcome[:9] for e in refused] == ["refused: "]
    assert actor.journal.stats.refused["drain_node"] == 1
    with pytest.raises(GuardRejectedError, match="one node action at a time: node/x"):
        guard.check(CordonNode("shop", "payments", node="y"), later)


# -- 4. dry-run uses no guard slot ----------------------------------------------------------


def test_a_dry_run_period_leaves_the_guard_free_for_the_live_loop() -> None:
    """Previews of a restart take no cooldown, blast-radius or in-flight slot: a live loop on
    the same guard restarts the pod at once after switching."""
    lab = make_lab()
    guard = Guard(OodaSettings().guard)
    kube, spies = spy_on(lab_kube(lab))
    preview = make_loop(lab, OodaSettings(dry_run=True), kube=kube, guard=guard)
    lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"))
    tick_until(lab, preview, 6)
    previews = [e for e in preview.audit.entries("action") if e.outcome == "dry-run"]
    assert len(previews) == 2 and previews[-1].at >= START + timedelta(minutes=5)
    assert mutations(spies) == []
    switched = lab.clock.now()
    live = make_loop(lab, guard=guard)
    tick_until(lab, live, 1)
    assert len(applied(live, "restart_pod")) == 1, "the dry run held a guard slot"
    assert not live.audit.entries("refusal")
    assert applied(live, "restart_pod")[0].at - switched <= timedelta(minutes=1)


# -- 6. undo and scale-in respect a human's change ------------------------------------------


def _hpa_ctx(lab: Lab, ref: str = "") -> ActionContext:
    return ActionContext(lab_kube(lab), sleep=lab_sleep(lab), now=lab.clock.now, audit_ref=ref)


def test_an_hpa_ooda_changed_says_so_in_its_annotations() -> None:
    """After apply the HPA names ooda, the time and the audit entry, and the floor it found."""
    lab = make_lab()
    hpas: Any = lab.kube.autoscaling_v2
    found = hpas.read_namespaced_horizontal_pod_autoscaler("checkout", "shop").spec.min_replicas
    SetHpaMinReplicas("shop", "checkout", hpa="checkout", min_replicas=found + 3).apply(
        _hpa_ctx(lab, "42")
    )
    notes = hpas.read_namespaced_horizontal_pod_autoscaler("checkout", "shop").metadata.annotations
    assert notes[CHANGED_BY] == "ooda" and notes[AUDIT_ID] == "42"
    assert datetime.fromisoformat(notes[CHANGED_AT]) == lab.clock.now().replace(microsecond=0)
    assert (notes[MIN_SET], notes[MIN_ORIGINAL]) == (str(found + 3), str(found))


def test_raising_a_floor_over_edited_annotations_takes_the_floor_it_finds_as_a_humans() -> None:
    """Annotations that no longer parse cannot prove the floor is ooda's: a raise takes the
    current minReplicas as the original, rewrites sound annotations and records why."""
    lab = make_lab()
    hpas: Any = lab.kube.autoscaling_v2
    found = hpas.read_namespaced_horizontal_pod_autoscaler("checkout", "shop").spec.min_replicas
    hpas.patch_namespaced_horizontal_pod_autoscaler(
        "checkout",
        "shop",
        {"metadata": {"annotations": {MIN_SET: str(found), MIN_ORIGINAL: "one"}}},
        _content_type=MERGE_PATCH,
    )
    action = SetHpaMinReplicas("shop", "checkout", hpa="checkout", min_replicas=found + 2)
    result = action.apply(_hpa_ctx(lab, "11"))
    assert "original-min-replicas='one'" in result.before["malformed_annotations"]
    notes = hpas.read_namespaced_horizontal_pod_autoscaler("checkout", "shop").metadata.annotations
    assert (notes[MIN_SET], notes[MIN_ORIGINAL]) == (str(found + 2), str(found))


def test_undo_of_a_floor_refuses_when_a_human_changed_it_since() -> None:
    """A human moved minReplicas after ooda: undo raises ConflictError and leaves it; without
    the human's change the same undo restores the floor it found."""
    lab = make_lab()
    hpas: Any = lab.kube.autoscaling_v2
    found = hpas.read_namespaced_horizontal_pod_autoscaler("checkout", "shop").spec.min_replicas
    action = SetHpaMinReplicas("shop", "checkout", hpa="checkout", min_replicas=found + 3)
    result = action.apply(_hpa_ctx(lab, "7"))
    hpas.patch_namespaced_horizontal_pod_autoscaler(
        "checkout", "shop", {"spec": {"minReplicas": found + 5}}, _content_type=MERGE_PATCH
    )
    with pytest.raises(ConflictError, match="someone else changed it"):
        action.undo(_hpa_ctx(lab), result)
    hpa = hpas.read_namespaced_horizontal_pod_autoscaler("checkout", "shop")
    assert hpa.spec.min_replicas == found + 5

    other = SetHpaMinReplicas("shop", "frontend", hpa="frontend", min_replicas=found + 3)
    done = other.apply(_hpa_ctx(lab, "8"))
    assert other.undo(_hpa_ctx(lab, "9"), done) is not None
    hpa = hpas.read_namespaced_horizontal_pod_autoscaler("frontend", "shop")
    assert hpa.spec.min_replicas == done.before["min_replicas"]
    assert MIN_SET not in (hpa.metadata.annotations or {})


def _floor(lab: Lab) -> tuple[int, dict[str, str]]:
    hpa = lab.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler("checkout", "shop")
    assert hpa.spec is not None and hpa.metadata is not None
    return some(hpa.spec.min_replicas), dict(hpa.metadata.annotations or {})


def _floor_for(purpose: str, replicas: int) -> SetHpaMinReplicas:
    return SetHpaMinReplicas(
        "shop", "checkout", hpa="checkout", min_replicas=replicas, purpose=purpose
    )


def test_a_floor_raised_over_another_purposes_floor_releases_back_to_it() -> None:
    """A surge's floor raised over the floor a regional failover set (the standby taking the
    users) goes back to the failover's floor when the surge is over, with the failover's
    annotations, so the failover's own undo still finds its floor and sets back the first."""
    lab = make_lab()
    found, _ = _floor(lab)
    failover = _floor_for("region_failover", found + 2)
    held = failover.apply(_hpa_ctx(lab, "1"))
    _floor_for("traffic_surge", found + 5).apply(_hpa_ctx(lab, "2"))
    value, notes = _floor(lab)
    assert (value, notes[FLOOR_FOR], ooda_floor(notes, value)) == (
        found + 5,
        "traffic_surge",
        found + 2,
    ), "the surge's floor releases to the failover's"
    # The surge runbook releases to the floor ooda_floor names.
    _floor_for("traffic_surge", found + 2).apply(_hpa_ctx(lab, "3"))
    value, notes = _floor(lab)
    assert (value, notes[FLOOR_FOR], notes[MIN_ORIGINAL]) == (
        found + 2,
        "region_failover",
        str(found),
    )
    assert FLOOR_BELOW not in notes
    assert failover.undo(_hpa_ctx(lab, "4"), held) is not None
    value, notes = _floor(lab)
    assert value == found and MIN_SET not in notes


def test_a_lower_floor_undone_under_another_leaves_the_stack_not_the_pods() -> None:
    """The failover sets its floors back while a surge's floor stands on them: minReplicas
    stays the surge's, and the surge's release then goes to what was there before both.
    Undoing the surge's raise itself restores the failover's layer as it was."""
    lab = make_lab()
    found, _ = _floor(lab)
    failover = _floor_for("region_failover", found + 2)
    held = failover.apply(_hpa_ctx(lab, "1"))
    surge = _floor_for("traffic_surge", found + 5)
    raised = surge.apply(_hpa_ctx(lab, "2"))
    assert surge.undo(_hpa_ctx(lab, "3"), raised) is not None
    value, notes = _floor(lab)
    assert (value, notes[FLOOR_FOR], notes[MIN_ORIGINAL]) == (
        found + 2,
        "region_failover",
        str(found),
    )
    surge.apply(_hpa_ctx(lab, "4"))
    left = failover.undo(_hpa_ctx(lab, "5"), held)
    assert left is not None and left.after["left_stack"]
    value, notes = _floor(lab)
    assert (value, notes[FLOOR_FOR], ooda_floor(notes, value)) == (
        found + 5,
        "traffic_surge",
        found,
    )
    assert FLOOR_BELOW not in notes


def test_ooda_floor_is_only_the_floor_ooda_itself_set() -> None:
    """The original floor comes back only while minReplicas is still ooda's value."""
    notes = {MIN_SET: "8", MIN_ORIGINAL: "3"}
    assert ooda_floor(notes, 8) == 3
    assert ooda_floor(notes, 10) is None, "a human raised it since: theirs"
    assert ooda_floor(notes, 5) is None, "a human lowered it since: theirs"
    assert ooda_floor({}, 8) is None and ooda_floor(None, 8) is None
    with pytest.raises(MalformedAnnotationError, match="min-replicas='eight' is not a replica"):
        ooda_floor({MIN_SET: "eight", MIN_ORIGINAL: "3"}, 8, "hpa/shop/checkout")


def _quiet_snapshot(min_replicas: int, annotations: dict[str, str]) -> Snapshot:
    """Frontend at low, steady load for 30 minutes, its HPA floor at ``min_replicas``."""
    at = START
    stamps = pd.date_range(end=at, periods=30, freq="1min")
    history = pd.DataFrame(
        {
            "timestamp": stamps,
            "service": "frontend",
            "request_rate": 100.0,
            "ready_pods": 3.0,
            "cpu_utilisation": 0.5,
            "p95_latency_ms": 80.0,
            "error_rate": 0.0,
        }
    )
    hpa = HpaState("frontend", min_replicas, 30, min_replicas, min_replicas, 0.6, annotations)
    workload = WorkloadState(
        "shop", "frontend", "frontend", min_replicas, min_replicas, 1, None, (), hpa
    )
    return region_snapshot(at, {"frontend": workload}, {"frontend": history})


def test_the_traffic_runbook_lowers_its_own_floor_but_never_a_humans() -> None:
    """Load has been low for half an hour: a floor ooda raised comes down to the one it
    found; a floor a human set since (or set without ooda) is left where it is."""
    runbook = TrafficSurge(OodaSettings())
    raised = (START - timedelta(minutes=30)).isoformat()
    ours = {MIN_SET: "8", MIN_ORIGINAL: "3", CHANGED_AT: raised, CHANGED_BY: "ooda"}
    snapshot = _quiet_snapshot(8, ours)
    diagnosis = runbook.matches(snapshot, "frontend")
    assert diagnosis is not None and diagnosis.evidence["direction"] == "in"
    action = runbook.propose(diagnosis, snapshot)
    assert isinstance(action, SetHpaMinReplicas) and action.min_replicas == 3

    assert runbook.matches(_quiet_snapshot(10, ours), "frontend") is None
    assert runbook.matches(_quiet_snapshot(10, {}), "frontend") is None


# -- 7. every registered runbook and scenario keeps its contract ----------------------------


@pytest.mark.parametrize("name", sorted(registered_runbooks()))
def test_every_registered_runbook_passes_its_contract(name: str) -> None:
    """``check_runbook`` over each registered runbook."""
    check_runbook(registered_runbooks()[name])


@pytest.mark.parametrize("scenario_id", sorted(registered_scenarios()), ids=str)
def test_every_registered_scenario_passes_its_contract(scenario_id: ScenarioId) -> None:
    """``check_scenario`` over each registered lab scenario."""
    record = check_scenario(registered_scenarios()[scenario_id], seed=1)
    assert record.scenario == scenario_id
