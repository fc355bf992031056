"""``ooda run``: the control loop on the wall clock, against one configured region.

Wiring: the region's Prometheus through ``features.PrometheusSource``, its cluster through the
official ``kubernetes`` client (a kubeconfig or the in-cluster identity), the models through
the Ray Serve endpoints (or threshold rules), the audit log from the configuration. The loop
ticks every ``loop.tick``; a SIGTERM or SIGINT lets the tick in progress finish -- an action
under way is applied and its result recorded, never left between intent and result by us --
and then the process exits 0. With ``leader.enabled`` several replicas run and only the
holder of a Lease ticks (``ooda._leader``); a replica that becomes the leader builds its loop
then, from the audit log, and one that loses the Lease stops acting at once.

After each tick the run writes what an operator asks first (``ooda status``): the last tick,
what the loop cannot trust and why, the actions awaiting verification. Each new audit entry
(a decision, an action, a verdict, a skipped target) becomes one JSON log line carrying its
audit id, and ``/metrics`` (``RunMetrics``) counts ticks, decisions, actions and refusals;
what needs a human goes to Alertmanager and a webhook (``ooda._escalate``).

Exit codes: 0 stopped cleanly (or ``--once`` ticked on trusted data); 2 the configuration,
the kubeconfig or a flag is wrong; 3 ``--once`` ticked but could not trust what it read
(metrics or cluster unreachable; it took no action on what it could not see).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from contracts import CloudClients, KubeClients, WallClock
from features import PrometheusSource
from ooda._audit import AuditEntry, AuditError, open_audit
from ooda._config import AwsConfig, OodaConfig, RegionConfig
from ooda._detector_watch import DetectorRegistry
from ooda._errors import ConfigError
from ooda._escalate import Escalator
from ooda._leader import LeaderElector
from ooda._loop import ControlLoop
from ooda._model_watch import ForecasterRegistry
from ooda._run_metrics import RunMetrics
from ooda._scoring import Scorer
from ooda._settings import OodaSettings

log = logging.getLogger("ooda.run")
decisions = logging.getLogger("ooda.audit")

#: Exit codes of ``ooda run``.
EXIT_OK, EXIT_CONFIG, EXIT_UNTRUSTED = 0, 2, 3
#: Where a run keeps the state ``ooda status`` shows, beside the audit log.
STATE_FILE = "run-state.json"


def connect_kube(region: RegionConfig) -> KubeClients:
    """The official client's API objects for ``region``'s cluster (``ConfigError`` when the
    kubeconfig is missing, unreadable or names no such context)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if region.in_cluster:
            config.load_incluster_config()
            api = client.ApiClient()
        else:
            path = Path(os.path.expanduser(str(region.kubeconfig or "~/.kube/config")))
            if not path.is_file():
                raise ConfigError(f"region {region.name}: no kubeconfig at {path}")
            api = config.new_client_from_config(config_file=str(path), context=region.context)
    except ConfigException as exc:
        raise ConfigError(f"region {region.name}: kubeconfig unusable: {exc}") from None
    return KubeClients(
        core_v1=client.CoreV1Api(api),
        apps_v1=client.AppsV1Api(api),
        autoscaling_v2=client.AutoscalingV2Api(api),
        policy_v1=client.PolicyV1Api(api),
        custom_objects=client.CustomObjectsApi(api),
        networking_v1=client.NetworkingV1Api(api),
        coordination_v1=client.CoordinationV1Api(api),
    )


def connect_cloud(region: RegionConfig) -> CloudClients:
    """The boto3 clients of ``region``'s AWS account (none where the configuration names none)."""
    if region.aws is None:
        return CloudClients()
    return CloudClients(sqs=aws_client(region.aws, "sqs"), rds=aws_client(region.aws, "rds"))


def aws_client(aws: AwsConfig, service: Literal["sqs", "rds", "route53"]) -> Any:
    """A boto3 client of ``service`` in ``aws``'s account, with its timeouts and retries."""
    import boto3
    from botocore.config import Config

    timeout = aws.timeout.total_seconds()
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": aws.max_attempts, "mode": "standard"},
    )
    url = aws.endpoints.get(service, aws.endpoint_url)
    return boto3.client(service, region_name=aws.region_name, endpoint_url=url, config=config)


def audit_line(entry: AuditEntry) -> str:
    """One audit entry as the JSON line ``ooda run`` prints for it."""
    return json.dumps(
        {
            "at": entry.at.isoformat(),
            "audit_id": entry.id,
            "kind": entry.kind,
            "service": entry.service,
            "action": entry.action,
            "target": entry.target,
            "outcome": entry.outcome,
            "dry_run": entry.dry_run,
            "ref": entry.ref,
        },
        sort_keys=True,
    )


#: What ``ooda status`` reads of a state file; one without them is not a state.
_STATE_KEYS = frozenset({"region", "pid", "dry_run", "last_tick", "ticks", "problems"})


@dataclass
class RunState:
    """What ``ooda status`` shows of a running loop (written after every tick)."""

    region: str
    pid: int
    dry_run: bool
    started: str
    last_tick: str | None = None
    ticks: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    pending: list[dict[str, str]] = field(default_factory=list)
    leader: str | None = None
    role: str = "single"
    """``single`` (no election), ``leader`` or ``standby``."""

    def save(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> dict[str, Any] | None:
        """The state last written at ``path`` (None: no run wrote one)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not data.keys() >= _STATE_KEYS:
            return None  # not a state this class wrote
        return data


class Runner:
    """Ticks a loop on the wall clock until stopped; with an elector, only while it leads.

    ``make_loop`` builds the control loop, which rebuilds its memory from the audit log: a
    replica builds a new one each time it becomes the leader, so it starts from everything
    the previous leader recorded (an action it left between intent and result is marked
    interrupted and not repeated).
    """

    def __init__(
        self,
        make_loop: Callable[[], ControlLoop],
        settings: OodaSettings,
        *,
        elector: LeaderElector | None = None,
        metrics: RunMetrics | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.make_loop = make_loop
        self.settings = settings
        self.elector = elector
        self.loop: ControlLoop | None = None
        self.metrics = metrics or RunMetrics()
        self.escalator = Escalator(settings.escalation, settings.namespace, settings.region)
        self.stop = threading.Event()
        self.state_path = state_path or settings.workdir / STATE_FILE
        self.state = RunState(
            region=settings.region,
            pid=os.getpid(),
            dry_run=settings.dry_run,
            started=datetime.now(UTC).isoformat(),
        )
        self._seen = 0

    def run(self, once: bool = False) -> int:
        """Tick until :attr:`stop` is set (``once``: a single tick); the exit code."""
        period = self.settings.loop.tick.total_seconds()
        if self.elector is not None:
            self.elector.start()
        try:
            if once and self.elector is not None and not self._await_lease():
                log.warning("standby: %s holds the lease; nothing done", self.elector.holder)
                return EXIT_OK
            while not self.stop.is_set():
                began = time.monotonic()
                wait = period
                try:
                    if self._leading():
                        self.tick(settle=once)
                        if once:
                            return EXIT_UNTRUSTED if self.untrusted() else EXIT_OK
                    else:
                        self._stand_by()
                        assert self.elector is not None  # a standby checks at the Lease's pace
                        wait = min(period, self.elector.settings.retry_period.total_seconds())
                except AuditError as exc:
                    self._audit_down(exc)
                    if once:
                        return EXIT_UNTRUSTED
                self.stop.wait(max(0.0, wait - (time.monotonic() - began)))
            log.warning("stopped after %d ticks", self.state.ticks)
            return EXIT_OK
        finally:
            # Actions still running stop first, while this replica still holds the Lease: the
            # next leader never acts beside them.
            self._close_loop()
            if self.elector is not None:
                self.elector.stop()

    def _await_lease(self) -> bool:
        assert self.elector is not None
        cfg = self.elector.settings
        deadline = time.monotonic() + (cfg.lease_duration + 2 * cfg.retry_period).total_seconds()
        while time.monotonic() < deadline and not self.stop.is_set():
            if self.elector.is_leader():
                return True
            self.stop.wait(0.1)
        return self.elector.is_leader()

    def _leading(self) -> bool:
        """Whether to tick now; builds the loop on becoming the leader."""
        if self.elector is not None and not self.elector.is_leader():
            return False
        if self.loop is None:
            self.loop = self.make_loop()
            self._seen = max((e.id or 0 for e in self.loop.audit.entries()), default=0)
            if self.elector is not None:
                log.warning(
                    "leading as %s: memory rebuilt from the audit log", self.elector.identity
                )
        return True

    def _close_loop(self) -> None:
        if self.loop is None:
            return
        with contextlib.suppress(AuditError):
            # A drain still running stops before its next round and is recorded as refused.
            self.loop.close()
            self._print_new(self.loop)
        close = getattr(self.loop.source, "close", None)
        if callable(close):
            close()
        with contextlib.suppress(AuditError):
            self.loop.audit.close()
        self.loop = None

    def _audit_down(self, exc: AuditError) -> None:
        """No audit log, no action: drop the loop (the next one rebuilds its memory from the
        log when it is back), and say why everywhere a human looks."""
        log.error("audit log unavailable, acting on nothing until it is back: %s", exc)
        self._close_loop()
        self.state.problems = [{"service": "*", "stage": "audit", "reason": str(exc)}]
        self.metrics.mark_untrusted("*")
        self._save()

    def _stand_by(self) -> None:
        assert self.elector is not None
        if self.loop is not None:
            log.warning("lost the lease to %s: standing by", self.elector.holder)
            self._close_loop()
        self.state.leader = self.elector.holder
        self.state.role = "standby"
        self._save()

    def tick(self, settle: bool = False) -> None:
        """One tick, then its audit lines, metrics and state; with ``settle``, the actions it
        started beside it are waited for and recorded first (a single tick)."""
        loop = self.loop
        assert loop is not None
        began = time.perf_counter()
        loop.tick()
        if settle:
            loop.settle()
        elapsed = time.perf_counter() - began
        now = loop.clock.now()
        new = self._print_new(loop)
        alerts = self.escalator.escalate(new)
        self.metrics.observe_tick(loop, elapsed, new, now, [a.name for a in alerts])
        self.state.ticks += 1
        self.state.last_tick = now.isoformat()
        self.state.role = "leader" if self.elector is not None else "single"
        self.state.leader = self.elector.identity if self.elector is not None else None
        self.state.problems = [
            {"service": service, "stage": stage, "reason": reason}
            for (service, stage), reason in sorted(loop.journal.current_problems().items())
        ]
        self.state.pending = [
            {
                "kind": str(p.action.kind),
                "target": p.action.target,
                "since": p.applied_at.isoformat(),
                "deadline": p.deadline.isoformat(),
            }
            for p in loop.pending
        ]
        self._save()

    def _print_new(self, loop: ControlLoop) -> list[AuditEntry]:
        """Log the audit entries written since the last call, one line each; them."""
        new = loop.audit.entries(after_id=self._seen)
        for entry in new:
            decisions.info(audit_line(entry))
        if new:
            self._seen = new[-1].id or self._seen
        return new

    def _save(self) -> None:
        try:
            self.state.save(self.state_path)
        except OSError as exc:
            log.error("cannot write %s: %s", self.state_path, exc)

    def untrusted(self) -> bool:
        """Whether the last tick could not trust the metrics or the cluster."""
        if self.loop is None:
            return False
        return any(
            service == "*" and stage == "input"
            for service, stage in self.loop.journal.current_problems()
        )


def build_loop(
    config: OodaConfig,
    settings: OodaSettings,
    *,
    region: str | None = None,
    scorer: Scorer,
    kube: KubeClients | None = None,
    cloud: CloudClients | None = None,
    may_act: Callable[[], bool] | None = None,
    models: ForecasterRegistry | None = None,
    detectors: DetectorRegistry | None = None,
) -> ControlLoop:
    """The control loop of ``region`` wired to the real parts the configuration names;
    ``models`` and ``detectors``: the forecaster's and the detector's registries, which the
    live watches may roll back."""
    chosen = config.region(region)
    source = PrometheusSource(config.prometheus(chosen.name))
    audit_path = config.audit.path
    audit_path.parent.mkdir(parents=True, exist_ok=True)
    return ControlLoop(
        settings,
        clock=WallClock(),
        source=source,
        scorer=scorer,
        kube=kube if kube is not None else connect_kube(chosen),
        audit=open_audit(config.audit.url or audit_path),
        cloud=cloud if cloud is not None else connect_cloud(chosen),
        may_act=may_act,
        models=models,
        detectors=detectors,
    )
