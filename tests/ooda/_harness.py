"""A loop on the lab, for tests of the loop's own logic (the models are a RuleScorer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from actuators import Guard
from contracts import KubeClients
from lab import Lab, LabSettings, SimClock
from ooda import AuditLog, AuditStore, ControlLoop, OodaSettings, RuleScorer
from tests._narrow import name_of, some

START = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def make_lab(seed: int = 3, hours: float = 2.0) -> Lab:
    lab = Lab(LabSettings(seed=seed), SimClock(START - timedelta(hours=hours)))
    lab.generate_history(days=hours / 24, incidents=False)
    return lab


def lab_kube(lab: Lab) -> KubeClients:
    k = lab.kube
    return KubeClients(
        k.core_v1,
        k.apps_v1,
        k.autoscaling_v2,
        k.policy_v1,
        k.custom_objects,
        coordination_v1=k.coordination_v1,
    )


def lab_sleep(lab: Lab) -> Any:
    """A backoff in the lab moves the estate on, as a real backoff lets the cluster move."""

    def sleep(seconds: float) -> None:
        lab.step(timedelta(seconds=max(1.0, seconds)))

    return sleep


def make_loop(
    lab: Lab,
    settings: OodaSettings | None = None,
    *,
    scorer: Any = None,
    source: Any = None,
    kube: KubeClients | None = None,
    audit: AuditStore | None = None,
    guard: Guard | None = None,
    models: Any = None,
) -> ControlLoop:
    settings = settings or OodaSettings()
    return ControlLoop(
        settings,
        clock=lab.clock,
        source=source or lab.source,
        scorer=scorer or RuleScorer(),
        kube=kube or lab_kube(lab),
        audit=audit or AuditLog(":memory:"),
        guard=guard,
        sleep=lab_sleep(lab),
        cloud=lab.cloud,
        models=models,
    )


def run(lab: Lab, loop: ControlLoop, minutes: float) -> None:
    for _ in range(int(minutes * 4)):
        lab.step(timedelta(seconds=15))
        loop.tick()


def crashlooping(lab: Lab, service: str) -> list[str]:
    pods = lab.kube.core_v1.list_namespaced_pod("shop", label_selector=f"app={service}").items
    return [
        name_of(p)
        for p in pods
        for s in some(p.status).container_statuses or []
        if (waiting := some(s.state).waiting) is not None and waiting.reason == "CrashLoopBackOff"
    ]


def play_on(lab: Lab, instance: Any, inject_at: datetime, end: datetime) -> Any:
    """A chaos instance played with ooda's loop on (rules scorer, default settings)."""
    from ooda._chaos import make_loop as make_chaos_loop
    from ooda._runs import Mode, run_mode

    settings = OodaSettings()
    return run_mode(
        lab,
        instance,
        inject_at,
        end,
        Mode.ON,
        lambda copy: make_chaos_loop(copy, settings, RuleScorer()),
        settings.slo,
        settings.loop.tick,
    )
