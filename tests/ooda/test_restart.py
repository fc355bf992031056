"""State survives a restart: a loop killed with SIGKILL is replaced by one that remembers.

A worker process (``_crash_worker.py``) runs a loop on the lab with a file audit log and dies
by SIGKILL at a chosen moment, leaving the estate pickled next to the log. Each test then
loads that estate, opens the same log and starts a fresh ``ControlLoop``, as a restarted pod
would, and checks what the new loop rebuilt from the log and what it does (and does not do).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab import Lab
from ooda import AuditEntry, AuditLog, AuditStore, ControlLoop, OodaSettings
from tests.ooda._crash_worker import BREAKER
from tests.ooda._harness import crashlooping, make_loop, run

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("_crash_worker.py")
CASES = ("applied", "in_flight", "breaker", "intent")


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run every case of the worker once (one import, one forked child per case)."""
    out = tmp_path_factory.mktemp("crashed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(WORKER), str(out), *CASES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def restart(crashed: Path, case: str) -> tuple[Lab, ControlLoop]:
    """The estate as the killed process left it, and a new loop on the same audit log."""
    case_dir = crashed / case
    status = json.loads((case_dir / "status.json").read_text())
    assert status["signal"] == signal.SIGKILL, f"{case}: the worker did not die by SIGKILL"
    lab: Lab = pickle.loads((case_dir / "lab.pkl").read_bytes())
    settings = BREAKER if case == "breaker" else OodaSettings()
    return lab, make_loop(lab, settings, audit=AuditLog(case_dir / "audit.db"))


def restarts(audit: AuditStore, outcome: str = "applied") -> list[AuditEntry]:
    """The restart_pod action entries with ``outcome``."""
    return [
        a for a in audit.entries("action") if a.action == "restart_pod" and a.outcome == outcome
    ]


def test_a_pending_verification_is_rebuilt_judged_and_not_repeated(crashed: Path) -> None:
    """Killed between the act and its verdict: the new loop judges the action, once."""
    lab, loop = restart(crashed, "applied")
    [action] = restarts(loop.audit)
    assert loop.audit.entries("verification") == [], "the worker died before the verdict"
    assert [(p.audit_id, str(p.action.kind)) for p in loop.pending] == [
        (action.id, "restart_pod")
    ], "the pending verification was not rebuilt from the audit log"
    assert loop.pending[0].applied_at == action.at
    run(lab, loop, 8)
    assert restarts(loop.audit) == [action], "the restarted loop repeated the action"
    assert len(loop.audit.entries("intent")) == 1
    verdicts = [v for v in loop.audit.entries("verification") if v.ref == action.id]
    assert [v.outcome for v in verdicts] == ["healed"]
    assert crashlooping(lab, "checkout") == []
    assert loop.pending == []
    assert loop.audit.verify().ok


def test_an_action_awaiting_its_verdict_holds_its_workload_after_a_restart(crashed: Path) -> None:
    """A restart in a crash that survives the heal does not restart the next pod at once."""
    lab, loop = restart(crashed, "in_flight")
    [action] = restarts(loop.audit)
    assert [p.audit_id for p in loop.pending] == [action.id]
    restarted_at = lab.clock.now()
    run(lab, loop, 5)  # inside the runbook's 6-minute deadline
    assert restarts(loop.audit) == [action], "a second restart while the first awaits its verdict"
    assert crashlooping(lab, "checkout"), "the persistent crash loop is still there"
    refused = [r for r in loop.audit.entries("refusal") if r.at >= restarted_at]
    assert refused and "awaits its verdict" in refused[0].outcome
    run(lab, loop, 2)  # past the deadline: judged, and failed
    verdicts = [v for v in loop.audit.entries("verification") if v.ref == action.id]
    assert [v.outcome for v in verdicts] == ["failed"]
    # Another restart would fail the same way, and a second restart of ooda remembers that.
    again = make_loop(lab, audit=loop.audit)
    failed_at = lab.clock.now()
    run(lab, again, 10)
    assert restarts(loop.audit) == [action], "restarted again where a restart had failed"
    refused = [r for r in loop.audit.entries("refusal") if r.at > failed_at]
    assert refused and all("would fail the same way" in r.outcome for r in refused)


def test_an_open_breaker_stays_open_after_a_restart(crashed: Path) -> None:
    """Three failed heals opened the breaker; a restart does not close it."""
    lab, loop = restart(crashed, "breaker")
    before = restarts(loop.audit)
    assert len(before) == 1
    assert [e.outcome for e in loop.audit.entries("escalation")][-1] == "circuit breaker open"
    now = lab.clock.now()
    assert loop.guard.is_open("shop/checkout", now), "the breaker was forgotten on restart"
    run(lab, loop, 15)
    assert restarts(loop.audit) == before, "the restarted loop restarted a pod past the breaker"
    assert crashlooping(lab, "checkout")
    refused = [r for r in loop.audit.entries("refusal") if r.at > now]
    assert refused and all("circuit breaker of shop/checkout open" in r.outcome for r in refused)


def test_an_intent_without_a_result_is_closed_as_interrupted_and_not_repeated(
    crashed: Path,
) -> None:
    """Killed between intent and act: recorded as interrupted, never repeated, across
    restarts."""
    lab, loop = restart(crashed, "intent")
    [intent] = loop.audit.entries("intent")
    interrupted = loop.audit.entries("action")
    assert len(interrupted) == 1, "the restart did not close the intent"
    assert interrupted[0].ref == intent.id
    assert interrupted[0].outcome.startswith("interrupted")
    assert loop.pending == [], "an interrupted act has no result to verify"
    looping = crashlooping(lab, "checkout")
    assert looping, "the worker died before the act: the pod still crash-loops"
    run(lab, loop, 10)
    assert restarts(loop.audit) == [], "the interrupted action was repeated"
    assert crashlooping(lab, "checkout") == looping
    # A second restart: the intent is closed already, and still holds the workload.
    again = make_loop(lab, audit=loop.audit)
    assert len(loop.audit.entries("action")) == 1, "the intent was closed twice"
    run(lab, again, 10)
    assert restarts(loop.audit) == [], "the interrupted action was repeated after a 2nd restart"
    assert loop.audit.verify().ok
