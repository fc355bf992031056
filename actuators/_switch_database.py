"""Switch a database's traffic to its secondary by repointing an ``ExternalName`` Service.

Applications reach a managed database (RDS, Aurora, a DynamoDB-fronting proxy) through a
Service of type ExternalName -- ``orders-db`` -> ``orders.primary.example.internal`` -- so the
cluster's DNS answers with a CNAME and the endpoint changes without a redeploy. The switch
rewrites ``spec.externalName`` to the secondary's name; connections move as clients reconnect.

A secondary is only worth switching to when it is healthy and close to the primary: reads from
a replica that lags serve stale data, and writes sent to one whose lag is large lose whatever
it has not replayed. The action refuses unless the runbook observed the secondary healthy and
its replica lag within the bound. ``traffic`` says which traffic the named Service carries
(a database with separate read and write endpoints has one Service each), and is recorded on
the Service. Undo points the Service back at the endpoint it found, unless it changed since.

A read replica takes no writes. Where the database is an Aurora cluster (``cluster``), moving
the writes first fails the cluster over to the secondary (RDS ``FailoverDBCluster`` through
boto3), which promotes it to writer and makes the old writer a reader: reversible, unlike
promoting a plain read replica, which ends its replication for good and which ooda never
does. Undo fails the cluster back to the writer it found, unless someone failed it over since.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import (
    ConflictError,
    GuardRejectedError,
    PermanentActuatorError,
    TemporaryActuatorError,
    call_cloud,
)
from actuators._kube import MERGE_PATCH
from contracts import ActionKind

#: The endpoint ooda found before it switched, and which traffic it switched.
ORIGINAL_ENDPOINT = "ooda.dev/original-external-name"
SWITCHED_TRAFFIC = "ooda.dev/switched-traffic"
TRAFFIC = ("reads", "reads_and_writes")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@register_action
@dataclass(frozen=True)
class SwitchDatabase(Action):
    """Point the ExternalName Service ``db_service`` at ``secondary``."""

    db_service: str = ""
    """The ExternalName Service the application resolves its database through."""
    secondary: str = ""
    """DNS name of the secondary (replica) endpoint."""
    replica_lag_s: float = float("inf")
    """The secondary's replica lag as observed by the runbook, seconds."""
    max_replica_lag_s: float = 30.0
    """Largest lag a switch is allowed at."""
    secondary_healthy: bool = False
    """Whether the runbook observed the secondary healthy (status, connections, latency)."""
    traffic: str = "reads"
    """``reads`` or ``reads_and_writes``: the traffic the Service carries, and so switches."""
    cluster: str = ""
    """The Aurora DB cluster failed over to ``secondary_instance`` when writes move ("": the
    secondary takes writes as it is, a DynamoDB global table's other region, say)."""
    secondary_instance: str = ""
    """The ``DBInstanceIdentifier`` of the secondary, the cluster member failed over to."""

    kind = ActionKind.SWITCH_DATABASE

    @property
    def target(self) -> str:
        return f"service/{self.namespace}/{self.db_service}"

    @property
    def disrupts(self) -> bool:
        """A cluster failover pauses every write while the writer changes (about half a
        minute on Aurora): disruptive. Repointing a Service moves connections as clients
        reconnect, and is not."""
        return bool(self.cluster)

    def _read(self, ctx: ActionContext) -> Any:
        return self.call(
            ctx,
            lambda: ctx.api.core_v1.read_namespaced_service(self.db_service, self.namespace),
            f"read service {self.namespace}/{self.db_service}",
        )

    def _patch(self, ctx: ActionContext, endpoint: str, notes: dict[str, str | None]) -> None:
        body = {
            "metadata": {"annotations": {**ctx.annotations(self.kind), **notes}},
            "spec": {"externalName": endpoint},
        }
        self.call(
            ctx,
            lambda: ctx.api.core_v1.patch_namespaced_service(
                self.db_service, self.namespace, body, _content_type=MERGE_PATCH
            ),
            f"point service {self.namespace}/{self.db_service} at {endpoint}",
        )

    def _refuse(self, reason: str) -> GuardRejectedError:
        return GuardRejectedError(self.kind, self.target, reason)

    def apply(self, ctx: ActionContext) -> ActionResult:
        if self.traffic not in TRAFFIC:
            raise PermanentActuatorError(
                f"traffic must be one of {list(TRAFFIC)}, got {self.traffic!r}"
            )
        if not (len(self.secondary) <= 253 and _DNS_NAME.match(self.secondary)):
            raise PermanentActuatorError(f"secondary must be a DNS name, got {self.secondary!r}")
        if not self.secondary_healthy:
            raise self._refuse(f"secondary {self.secondary} is not healthy")
        if not self.replica_lag_s <= self.max_replica_lag_s:  # NaN is refused too
            raise self._refuse(
                f"secondary {self.secondary} lags {self.replica_lag_s} s, more than the"
                f" {self.max_replica_lag_s} s bound"
            )
        svc = self._read(ctx)
        if svc.spec.type != "ExternalName":
            raise self._refuse(
                f"service {self.namespace}/{self.db_service} is of type {svc.spec.type!r}, not"
                " ExternalName; there is no endpoint name to switch"
            )
        current = svc.spec.external_name
        before: dict[str, Any] = {"external_name": current, "traffic": self.traffic}
        after: dict[str, Any] = {"external_name": self.secondary, "traffic": self.traffic}
        failed_over = False
        if self.cluster and self.traffic == "reads_and_writes":
            writer = self._writer(ctx)
            before |= {"cluster": self.cluster, "cluster_writer": writer}
            after |= {"cluster": self.cluster, "cluster_writer": self.secondary_instance}
            failed_over = writer != self.secondary_instance
            if failed_over and not ctx.dry_run:
                self._failover(ctx, self.secondary_instance)
        changed = current != self.secondary
        if changed and not ctx.dry_run:
            notes = {ORIGINAL_ENDPOINT: current, SWITCHED_TRAFFIC: self.traffic}
            self._patch(ctx, self.secondary, notes)
        undoable = changed or failed_over
        return ActionResult(self.kind, self.target, ctx.dry_run, before, after, undoable)

    def _rds(self, ctx: ActionContext) -> Any:
        if ctx.cloud.rds is None:
            raise PermanentActuatorError(
                f"failing cluster {self.cluster} over needs an RDS client, got None"
            )
        return ctx.cloud.rds

    def _writer(self, ctx: ActionContext) -> str:
        """The cluster's writer now; refused unless ``secondary_instance`` is a member."""
        rds = self._rds(ctx)
        found = call_cloud(
            lambda: rds.describe_db_clusters(DBClusterIdentifier=self.cluster)["DBClusters"],
            f"describe cluster {self.cluster}",
        )
        members = {
            str(m["DBInstanceIdentifier"]): bool(m.get("IsClusterWriter"))
            for cluster in found
            for m in cluster.get("DBClusterMembers", [])
        }
        if self.secondary_instance not in members:
            raise self._refuse(
                f"{self.secondary_instance!r} is no member of cluster {self.cluster}"
                f" ({sorted(members)}): nothing to fail over to"
            )
        writers = [name for name, writer in members.items() if writer]
        if len(writers) != 1:
            raise TemporaryActuatorError(
                f"cluster {self.cluster} has {len(writers)} writers now (failing over?)"
            )
        return writers[0]

    def _failover(self, ctx: ActionContext, instance: str) -> None:
        rds = self._rds(ctx)
        call_cloud(
            lambda: rds.failover_db_cluster(
                DBClusterIdentifier=self.cluster, TargetDBInstanceIdentifier=instance
            ),
            f"fail cluster {self.cluster} over to {instance}",
        )

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Point the Service back at the endpoint it had, unless it was repointed since."""
        if result.dry_run or not result.undoable:
            return None
        now = self._read(ctx).spec.external_name
        ours = result.after["external_name"]
        if now != ours:
            raise ConflictError(
                f"service {self.namespace}/{self.db_service} points at {now!r} since ooda"
                f" switched it to {ours!r}; someone else changed it, so it is left alone"
            )
        undone: dict[str, Any] = {}
        found = result.before.get("cluster_writer")
        if found is not None and found != result.after.get("cluster_writer"):
            writer = self._writer(ctx)
            if writer != result.after["cluster_writer"]:
                raise ConflictError(
                    f"cluster {self.cluster}'s writer is {writer!r} since ooda failed it over"
                    f" to {result.after['cluster_writer']!r}; someone else did, so it is left"
                )
            self._failover(ctx, str(found))
            undone["cluster_writer"] = found
        previous = str(result.before["external_name"])
        if now != previous:
            self._patch(ctx, previous, {ORIGINAL_ENDPOINT: None, SWITCHED_TRAFFIC: None})
        return self.undone(result, {"external_name": previous, **undone})
