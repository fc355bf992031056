"""A stub cluster for actuator tests: V1 nodes and pods behind the CoreV1Api calls that node
and pod actions make, with every call recorded (objects the lab cannot hold: bare pods, pods
with emptyDir volumes, labelled node pools, NotReady nodes); and the verification windows
their checks judge."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from kubernetes import client

from actuators import POOL_LABELS, ActionContext, CallSpy, KubeClients, spy_on
from contracts import VerifyWindow, WorkloadState

NS = "shop"


def make_node(name: str, pool: str = "a", *, ready: bool = True, cordoned: bool = False) -> Any:
    """A V1Node of ``pool``: Ready or NotReady, cordoned or not."""
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=name, labels={POOL_LABELS[0]: pool}),
        spec=client.V1NodeSpec(unschedulable=cordoned or None),
        status=client.V1NodeStatus(
            conditions=[client.V1NodeCondition(type="Ready", status=str(ready))]
        ),
    )


def make_pod(
    name: str,
    node: str = "n1",
    *,
    owner: str | None = "ReplicaSet",
    controller: bool = True,
    empty_dir: bool = False,
    app: str = "checkout",
    annotations: dict[str, str] | None = None,
) -> Any:
    """A V1Pod of ``app`` on ``node``, owned by a controller of kind ``owner`` (None: bare)."""
    refs = None
    if owner is not None:
        refs = [
            client.V1OwnerReference(
                api_version="apps/v1", kind=owner, name=f"{app}-x", uid="u1", controller=controller
            )
        ]
    volumes = [client.V1Volume(name="scratch", empty_dir=client.V1EmptyDirVolumeSource())]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace=NS,
            labels={"app": app},
            owner_references=refs,
            annotations=annotations,
        ),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name=app, image=f"{app}:1")],
            node_name=node,
            volumes=volumes if empty_dir else None,
        ),
        status=client.V1PodStatus(phase="Running", container_statuses=[]),
    )


class StubCore:
    """The CoreV1Api calls node and pod actions make, over a fixed set of V1 objects."""

    def __init__(self, nodes: list[Any], pods: list[Any] | None = None) -> None:
        self.nodes = {n.metadata.name: n for n in nodes}
        self.pods = {p.metadata.name: p for p in pods or []}
        self.evicted: list[str] = []

    def read_node(self, name: str, **_: Any) -> Any:
        return self.nodes[name]

    def list_node(self, **_: Any) -> Any:
        return client.V1NodeList(items=list(self.nodes.values()))

    def read_namespaced_pod(self, name: str, namespace: str, **_: Any) -> Any:
        return self.pods[name]

    def list_pod_for_all_namespaces(self, field_selector: str = "", **_: Any) -> Any:
        """Every pod, or those on one node (``spec.nodeName=<node>``)."""
        node = field_selector.partition("=")[2] if "spec.nodeName" in field_selector else ""
        pods = self.pods.values()
        return client.V1PodList(items=[p for p in pods if not node or p.spec.node_name == node])

    def patch_node(self, name: str, body: Any, **_: Any) -> Any:
        self.nodes[name].spec.unschedulable = body["spec"]["unschedulable"]
        return self.nodes[name]

    def create_namespaced_pod_eviction(self, name: str, namespace: str, body: Any, **_: Any) -> Any:
        self.evicted.append(name)
        del self.pods[name]
        return client.V1Status(status="Success")


def context(core: StubCore) -> tuple[ActionContext, list[CallSpy]]:
    """A context over ``core`` whose calls are all recorded."""
    kube, spies = spy_on(KubeClients(core, None, None, None, None))
    return ActionContext(kube, sleep=lambda _s: None), spies


def mutations(spies: list[CallSpy]) -> list[str]:
    return [m for spy in spies for m in spy.mutations]


def verify_window(
    workload: WorkloadState,
    minutes: dict[str, list[float]],
    applied_at: datetime,
    *,
    judged_after: int = 3,
    deadline_after: int = 10,
) -> VerifyWindow:
    """The window a check judges ``judged_after`` minutes after an action of ``applied_at``:
    one row a minute after it per value in ``minutes``' columns, the SLO p95 150 ms and 0.1 %
    errors, two healthy minutes to heal."""
    n = len(next(iter(minutes.values())))
    rows = pd.DataFrame(
        {"timestamp": [applied_at + timedelta(minutes=i + 1) for i in range(n)], **minutes}
    )
    return VerifyWindow(
        rows,
        workload,
        applied_at,
        applied_at + timedelta(minutes=judged_after),
        applied_at + timedelta(minutes=deadline_after),
        150.0,
        0.001,
        2,
    )
