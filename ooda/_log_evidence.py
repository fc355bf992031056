"""Log evidence for the runbooks: which message templates surged in a failing service's pods.

A 5xx the pods return themselves shows in their own logs (a reset pooled connection, a stack
trace); one a load balancer, a zone or the network adds in front of them does not. A runbook
that restarts pods on a spike no rollout explains acts only on the first: the logs are the
evidence that the fault lives in the processes.

Read only for a service failing requests beyond its objective, from a few of its pods, and at
most once a minute per service: the templates of the last ``recent`` against the
``LOG_BASELINE`` before it, as the incident record ranks them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from contracts import WorkloadState
from ooda._incidents import LOG_BASELINE, pod_log_surges
from ooda._logs import TemplateSurge


@dataclass
class PodLogEvidence:
    """The surging templates of each failing service's pods, cached for the minute."""

    read_log: Callable[[str, int, str], str]
    """``(namespace, seconds, pod)`` -> the pod's last ``seconds`` of log with RFC 3339 stamps
    ("" where it cannot be read: no log is no evidence)."""
    recent: timedelta = timedelta(minutes=10)
    """The newest span judged against the baseline before it (the symptom's onset)."""
    most_pods: int = 3
    """Pods read per service."""
    _cache: dict[str, tuple[datetime, tuple[TemplateSurge, ...]]] = field(default_factory=dict)

    def surges(
        self, now: datetime, failing: Mapping[str, WorkloadState]
    ) -> dict[str, tuple[TemplateSurge, ...]]:
        """Per service of ``failing``: its pods' surging templates, strongest first."""
        minute = now.replace(second=0, microsecond=0)
        since = minute - self.recent
        span = round((now - since + LOG_BASELINE).total_seconds())
        kept: dict[str, tuple[datetime, tuple[TemplateSurge, ...]]] = {}
        for service, workload in failing.items():
            cached = self._cache.get(service)
            if cached is None or cached[0] != minute:
                pods = [p.name for p in workload.pods]
                read = partial(self.read_log, workload.namespace, span)
                cached = (minute, tuple(pod_log_surges(read, pods, since, now, self.most_pods)))
            kept[service] = cached
        self._cache = kept  # a service no longer failing is read afresh next time
        return {service: surges for service, (_, surges) in kept.items()}
