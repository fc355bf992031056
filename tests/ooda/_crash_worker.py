"""Runs a loop on the lab until a chosen moment, saves the lab, then dies by SIGKILL.

Used by ``test_restart.py``: ``python tests/ooda/_crash_worker.py OUTDIR CASE...`` (with the
repository root on ``PYTHONPATH``). The heavy imports are paid once; each case then runs in a
forked child that writes ``OUTDIR/CASE/lab.pkl`` and ``OUTDIR/CASE/audit.db`` and kills
itself with SIGKILL: no ``finally``, no atexit, no SQLite close, as when a node dies. The
parent records how each child ended in ``OUTDIR/CASE/status.json``.

Cases:

* ``applied``: a crash loop; killed right after the restart is applied, before its verdict.
* ``in_flight``: a persistent crash loop; killed right after the first restart is applied.
* ``breaker``: a persistent crash loop under :data:`BREAKER` (a breaker of one failure);
  killed right after the workload's breaker opened.
* ``intent``: a crash loop; killed inside the audit write of the intent, before the act.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from actuators import GuardSettings
from contracts import ScenarioId
from lab import CrashLoopFault, Lab, ScenarioInstance
from ooda import AuditEntry, AuditLog, ControlLoop, OodaSettings
from tests.ooda._harness import make_lab, make_loop

#: The settings of the ``breaker`` case: its one failed restart opens the breaker.
BREAKER = OodaSettings(guard=GuardSettings(breaker_failures=1))
#: Simulated minutes a case may run before it gives up (and exits 3 instead of dying).
MAX_MINUTES = 90


def save_and_die(lab: Lab, case_dir: Path) -> None:
    """Write the estate where the next process finds it, then SIGKILL this process."""
    (case_dir / "lab.pkl").write_bytes(pickle.dumps(lab))
    os.kill(os.getpid(), signal.SIGKILL)


class DieOnIntent(AuditLog):
    """An audit log whose process dies right after an intent is durably written."""

    lab: Lab
    case_dir: Path

    def write(self, entry: AuditEntry) -> int:
        new_id = super().write(entry)
        if entry.kind == "intent":
            save_and_die(self.lab, self.case_dir)
        return new_id


def _applied(loop: ControlLoop) -> bool:
    return any(a.outcome == "applied" for a in loop.audit.entries("action"))


def run_case(case: str, case_dir: Path) -> None:
    lab = make_lab()
    audit_path = case_dir / "audit.db"
    done: Callable[[ControlLoop], bool]
    if case == "intent":
        audit = DieOnIntent(audit_path)
        audit.lab, audit.case_dir = lab, case_dir
        loop = make_loop(lab, audit=audit)
        lab.inject(CrashLoopFault(service="checkout"))
        done = _applied  # never reached: the intent write kills the process first
    else:
        settings = BREAKER if case == "breaker" else OodaSettings()
        loop = make_loop(lab, settings, audit=AuditLog(audit_path))
        if case == "applied":
            lab.inject(CrashLoopFault(service="checkout"))
            done = _applied
        elif case == "in_flight":
            lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP_PERSISTENT, "checkout"))
            done = _applied
        elif case == "breaker":
            lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP_PERSISTENT, "checkout"))
            done = lambda loop: loop.guard.is_open("shop/checkout", lab.clock.now())  # noqa: E731
        else:
            raise SystemExit(f"unknown case {case!r}")
    for _ in range(MAX_MINUTES * 4):
        lab.step(timedelta(seconds=15))
        loop.tick()
        if done(loop):
            save_and_die(lab, case_dir)
    raise SystemExit(3)


def main(out: Path, cases: list[str]) -> None:
    for case in cases:
        case_dir = out / case
        case_dir.mkdir(parents=True, exist_ok=True)
        pid = os.fork()
        if pid == 0:  # the child: run until the chosen moment, then die
            try:
                run_case(case, case_dir)
            except BaseException as exc:  # report how the child failed, never return into main
                print(f"{case}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        signalled = os.WIFSIGNALED(status)
        (case_dir / "status.json").write_text(
            json.dumps(
                {
                    "signal": os.WTERMSIG(status) if signalled else None,
                    "exit": None if signalled else os.WEXITSTATUS(status),
                }
            )
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
