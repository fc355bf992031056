"""A stub cluster for actuator tests: V1 nodes and pods behind the CoreV1Api calls that node
and pod actions make, with every call recorded (objects the lab cannot hold: bare pods, pods
with emptyDir volumes, labelled node pools, NotReady nodes)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from actuators import POOL_LABELS, ActionContext, CallSpy, KubeClients, spy_on

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
        node = field_selector.partition("=")[2]
        return client.V1PodList(items=[p for p in self.pods.values() if p.spec.node_name == node])

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
