"""The action registry and the contract every registered action passes.

Dry-run is a faithful preview: every registered action, aimed at a real object of the lab,
reads and describes but makes no mutating call on any of the API objects or cloud clients
(``check_action``). A kind added later is covered here automatically, or fails here until it
is given a target.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from actuators import (
    GATEWAY_GROUP,
    GATEWAY_VERSION,
    HTTPROUTES,
    Action,
    ActionContext,
    ActionResult,
    ArgoRollback,
    CloudClients,
    CordonNode,
    DrainNode,
    KillContainer,
    PatchHpa,
    RateLimit,
    RecreatePodElsewhere,
    RedriveQueue,
    Reroute,
    RestartPod,
    RestoreConfigKey,
    RollbackDeployment,
    RolloutRestart,
    ScaleConsumers,
    ScaleDeployment,
    SetHpaMinReplicas,
    ShiftRegionTraffic,
    SwitchDatabase,
    action_class,
    check_action,
    register_action,
    registered_actions,
    spy_on,
    spy_on_cloud,
)
from contracts import ActionKind, UnknownIdError
from lab import Lab, LabSettings, SimClock
from tests.actuators._route53 import weighted_name
from tests.k8s._backends import ARGO_CRD, HTTPROUTE_CRD, external_name_service, http_route

NS = "shop"
ARGO = ("argoproj.io", "v1alpha1", "argocd", "applications")


def _argo_app(name: str) -> dict[str, Any]:
    source = {"repoURL": "https://git.example.com/shop.git", "path": "checkout"}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {"source": source, "syncPolicy": {"automated": {"prune": True}}},
        "status": {
            "history": [
                {"id": 1, "revision": "a1b2c3d", "source": source},
                {"id": 2, "revision": "b2c3d4e", "source": source},
            ]
        },
    }


@dataclass
class Estate:
    """A lab prepared so that every action kind has a real target."""

    lab: Lab
    pod: str
    node: str
    cloud: CloudClients = field(default_factory=CloudClients)
    """An in-process SQS (moto) with a queue, its dead-letter queue and a poison message, and
    Route 53 with a name weighted over two regions."""
    zone: str = ""

    def sleep(self, seconds: float) -> None:
        self.lab.step(timedelta(seconds=max(1.0, seconds)))


def _sqs_with_poison() -> CloudClients:
    """Queue ``orders`` (dead-letter queue ``orders-dlq``) holding a message received twice."""
    sqs = boto3.client("sqs", region_name="eu-west-1")
    dlq = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": "50"}
    url = sqs.create_queue(QueueName="orders", Attributes={"RedrivePolicy": json.dumps(policy)})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
    return CloudClients(sqs=sqs)


def _weighted_name(cloud: CloudClients) -> tuple[CloudClients, str]:
    """``cloud`` with Route 53: ``shop.example.com`` weighted 100 eu-west-1, 0 eu-central-1."""
    route53 = boto3.client("route53", region_name="us-east-1")
    zone = route53.create_hosted_zone(Name="example.com.", CallerReference="ooda-registry")
    zone_id = str(zone["HostedZone"]["Id"])
    weighted_name(route53, zone_id)
    return replace(cloud, route53=route53), zone_id


@pytest.fixture(scope="module")
def estate() -> Iterator[Estate]:
    lab = Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 6, tzinfo=UTC)))
    kube: Any = lab.kube
    lab.step(timedelta(minutes=2))
    # A second revision of checkout to roll back from.
    kube.apps_v1.patch_namespaced_deployment(
        "checkout",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": "c:2"}]}}}},
        _content_type="application/strategic-merge-patch+json",
    )
    lab.step(timedelta(minutes=3))
    # payments without an HPA, so that its replicas may be set directly.
    kube.autoscaling_v2.delete_namespaced_horizontal_pod_autoscaler("payments", NS)
    # Argo CD's Application CRD and one Application with two deployed revisions.
    kube.apiextensions_v1.create_custom_resource_definition(ARGO_CRD)
    kube.custom_objects.create_namespaced_custom_object(*ARGO, _argo_app("checkout"))
    # The database checkout reads through an ExternalName Service, and the route to payments.
    kube.core_v1.create_namespaced_service(NS, external_name_service("orders-db"))
    # The lab installed Gateway API's HTTPRoute CRD (for its upstream's route) already.
    assert kube.apiextensions_v1.read_custom_resource_definition(HTTPROUTE_CRD["metadata"]["name"])
    route = http_route("payments", {"payments-eu": 100, "payments-us": 0})
    kube.custom_objects.create_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, NS, HTTPROUTES, route
    )
    pod = kube.core_v1.list_namespaced_pod(NS, label_selector="app=checkout").items[0]
    with mock_aws():
        cloud, zone = _weighted_name(_sqs_with_poison())
        yield Estate(lab, pod.metadata.name, pod.spec.node_name, cloud, zone)


TARGETS: dict[ActionKind, Callable[[Estate], Action]] = {
    ActionKind.RESTART_POD: lambda e: RestartPod(NS, "checkout", pod=e.pod),
    ActionKind.RECREATE_POD_ELSEWHERE: lambda e: RecreatePodElsewhere(NS, "checkout", pod=e.pod),
    ActionKind.CORDON_NODE: lambda e: CordonNode(NS, "checkout", node=e.node),
    ActionKind.DRAIN_NODE: lambda e: DrainNode(NS, "checkout", node=e.node),
    ActionKind.SET_HPA_MIN: lambda e: SetHpaMinReplicas(
        NS, "frontend", hpa="frontend", min_replicas=7
    ),
    ActionKind.PATCH_HPA: lambda e: PatchHpa(
        NS, "frontend", hpa="frontend", min_replicas=4, max_replicas=25, target_cpu_utilization=50
    ),
    ActionKind.SCALE_DEPLOYMENT: lambda e: ScaleDeployment(
        NS, "payments", deployment="payments", replicas=5
    ),
    ActionKind.ROLLBACK_DEPLOYMENT: lambda e: RollbackDeployment(
        NS, "checkout", deployment="checkout"
    ),
    ActionKind.ROLLOUT_RESTART: lambda e: RolloutRestart(NS, "checkout", deployment="checkout"),
    ActionKind.ARGO_ROLLBACK: lambda e: ArgoRollback(NS, "checkout", application="checkout"),
    ActionKind.RATE_LIMIT: lambda e: RateLimit(NS, "frontend", "surge", rps=200),
    ActionKind.SWITCH_DATABASE: lambda e: SwitchDatabase(
        NS,
        "checkout",
        db_service="orders-db",
        secondary="orders.secondary.db.example.com",
        replica_lag_s=2.0,
        secondary_healthy=True,
    ),
    ActionKind.REROUTE: lambda e: Reroute(
        NS, "checkout", route="payments", weights=(("payments-eu", 50), ("payments-us", 50))
    ),
    ActionKind.SCALE_CONSUMERS: lambda e: ScaleConsumers(
        NS, "payments", deployment="payments", replicas=5, partitions=6
    ),
    ActionKind.KILL_CONTAINER: lambda e: KillContainer(NS, "checkout", pod=e.pod),
    ActionKind.REDRIVE_QUEUE: lambda e: RedriveQueue(
        NS, "checkout", queue="orders", max_receive_count=1, dead_letter_after=5
    ),
    ActionKind.RESTORE_CONFIG_KEY: lambda e: RestoreConfigKey(
        NS,
        "checkout",
        config_map="checkout-config",
        key="PAYMENTS_API_URL",
        value="https://payments.internal",
    ),
    ActionKind.SHIFT_REGION_TRAFFIC: lambda e: ShiftRegionTraffic(
        "example.com.",
        "shop.example.com.",
        hosted_zone_id=e.zone,
        weights=(("eu-west-1", 0), ("eu-central-1", 100)),
    ),
}


def test_every_action_kind_is_registered_and_has_a_target_here() -> None:
    """The registry holds one class per ActionKind, and this file aims each at the lab."""
    assert set(registered_actions()) == set(ActionKind)
    assert set(TARGETS) == set(registered_actions())


@pytest.mark.parametrize("kind", sorted(registered_actions()), ids=str)
def test_dry_run_of_every_registered_action_makes_no_mutating_call(
    kind: ActionKind, estate: Estate
) -> None:
    """``check_action``: the preview of each kind makes no mutating call, while the same
    action run for real on a copy of the estate does (so the target is one it would change)."""
    action = TARGETS[kind](estate)
    assert type(action) is registered_actions()[kind]
    ctx = ActionContext(estate.lab.kube.clients(), sleep=estate.sleep, cloud=estate.cloud)
    check_action(action, ctx)
    twin = replace(estate, lab=copy.deepcopy(estate.lab))  # one queue: only redrive uses it
    kube, spies = spy_on(twin.lab.kube.clients())
    cloud, cloud_spies = spy_on_cloud(twin.cloud)
    action.apply(ActionContext(kube, sleep=twin.sleep, cloud=cloud))
    mutations = [m for spy in (*spies, *cloud_spies) for m in spy.mutations]
    assert mutations, f"{kind} would change nothing here"


def test_the_preview_describes_what_the_action_would_do(estate: Estate) -> None:
    """A drain's preview names the pods it would evict and leaves the node schedulable."""
    ctx = ActionContext(estate.lab.kube.clients(), dry_run=True, sleep=estate.sleep)
    result = DrainNode(NS, "checkout", node=estate.node).apply(ctx)
    assert result.dry_run and f"{NS}/{estate.pod}" in result.after["would_evict"]
    core: Any = estate.lab.kube.core_v1
    assert not core.read_node(estate.node).spec.unschedulable


def test_a_kind_registered_twice_is_refused() -> None:
    """A second class for a registered kind raises, and the first stays registered."""

    @dataclass(frozen=True)
    class Impostor(RestartPod):
        def apply(self, ctx: ActionContext) -> ActionResult:  # pragma: no cover
            raise AssertionError("never registered")

    with pytest.raises(ValueError, match="registered twice"):
        register_action(Impostor)
    assert action_class(ActionKind.RESTART_POD) is RestartPod


def test_an_unknown_kind_names_the_registered_ones() -> None:
    """Looking up a kind nobody registered fails with the list of known kinds."""
    with pytest.raises(UnknownIdError, match="restart_pod"):
        action_class("reboot_cluster")
