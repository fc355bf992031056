"""Scale consumers on the lab: through the Deployment's scale where no HPA manages it, through
the HPA's floor where one does, never past the partition count, and back on undo."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from actuators import (
    ACTION,
    MERGE_PATCH,
    MIN_ORIGINAL,
    MIN_SET,
    ActionContext,
    ConflictError,
    GuardRejectedError,
    PermanentActuatorError,
    ScaleConsumers,
    spy_on,
)
from lab import Lab, LabSettings, SimClock

NS = "shop"


@pytest.fixture
def lab() -> Lab:
    """payments (3 replicas) has no HPA; checkout (3 replicas) has one, 3..30."""
    lab = Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 6, tzinfo=UTC)))
    lab.kube.autoscaling_v2.delete_namespaced_horizontal_pod_autoscaler("payments", NS)
    return lab


def _ctx(lab: Lab) -> ActionContext:
    return ActionContext(lab.kube.clients(), sleep=lambda _s: None)


def _replicas(lab: Lab, name: str) -> int:
    scale: Any = lab.kube.apps_v1.read_namespaced_deployment_scale(name, NS)
    return int(scale.spec.replicas)


def _hpa(lab: Lab) -> Any:
    return lab.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler("checkout", NS)


def test_scales_the_deployment_without_an_hpa_and_undo_scales_back(lab: Lab) -> None:
    action = ScaleConsumers(NS, "payments", "lag", deployment="payments", replicas=5, partitions=6)
    result = action.apply(_ctx(lab))
    assert _replicas(lab, "payments") == 5
    assert result.before == {"replicas": 3, "hpa": None}
    assert result.after == {"replicas": 5, "capped_at_partitions": False}
    deployment: Any = lab.kube.apps_v1.read_namespaced_deployment("payments", NS)
    notes = deployment.metadata.annotations
    assert notes[ACTION] == "scale_consumers"

    action.undo(_ctx(lab), result)
    assert _replicas(lab, "payments") == 3


def test_never_more_consumers_than_partitions(lab: Lab) -> None:
    action = ScaleConsumers(NS, "payments", deployment="payments", replicas=12, partitions=4)
    result = action.apply(_ctx(lab))
    assert _replicas(lab, "payments") == 4 and result.after["capped_at_partitions"]


def test_refuses_when_every_partition_has_its_consumer(lab: Lab) -> None:
    kube, spies = spy_on(lab.kube.clients())
    action = ScaleConsumers(NS, "payments", deployment="payments", replicas=5, partitions=3)
    with pytest.raises(GuardRejectedError, match="3 consumers already for 3 partitions"):
        action.apply(ActionContext(kube, sleep=lambda _s: None))
    assert [m for spy in spies for m in spy.mutations] == []
    assert _replicas(lab, "payments") == 3


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"replicas": 5, "partitions": 0}, "partitions must be >= 1, got 0"),
        ({"replicas": 60, "partitions": 80}, "within 1..50, got 60"),
        ({"replicas": 2, "partitions": 8}, "asked for 2, 3 run already"),
    ],
    ids=["no-partitions", "past-the-cap", "fewer"],
)
def test_refuses_bad_values(lab: Lab, fields: dict[str, Any], match: str) -> None:
    kube, spies = spy_on(lab.kube.clients())
    with pytest.raises(PermanentActuatorError, match=match):
        ScaleConsumers(NS, "payments", deployment="payments", **fields).apply(
            ActionContext(kube, sleep=lambda _s: None)
        )
    assert [m for spy in spies for m in spy.mutations] == []


def test_raises_the_hpa_floor_where_an_hpa_scales_the_consumers(lab: Lab) -> None:
    """The Deployment is left to its HPA, whose minReplicas carries ooda's floor annotations."""
    action = ScaleConsumers(NS, "checkout", deployment="checkout", replicas=6, partitions=8)
    result = action.apply(_ctx(lab))
    hpa = _hpa(lab)
    assert hpa.spec.min_replicas == 6
    notes = hpa.metadata.annotations
    assert (notes[MIN_SET], notes[MIN_ORIGINAL], notes[ACTION]) == ("6", "3", "scale_consumers")
    assert _replicas(lab, "checkout") == 3, "the HPA, not ooda, scales the Deployment"
    assert result.before["hpa"] == "checkout" and result.after["replicas"] == 6

    action.undo(_ctx(lab), result)
    hpa = _hpa(lab)
    assert hpa.spec.min_replicas == 3 and MIN_SET not in (hpa.metadata.annotations or {})


def test_hpa_undo_refuses_a_floor_moved_since(lab: Lab) -> None:
    action = ScaleConsumers(NS, "checkout", deployment="checkout", replicas=6, partitions=8)
    result = action.apply(_ctx(lab))
    lab.kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "checkout", NS, {"spec": {"minReplicas": 9}}, _content_type=MERGE_PATCH
    )
    with pytest.raises(ConflictError, match="minReplicas is 9"):
        action.undo(_ctx(lab), result)
    assert _hpa(lab).spec.min_replicas == 9


def test_refuses_an_hpa_already_at_its_maximum(lab: Lab) -> None:
    lab.kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "checkout", NS, {"spec": {"maxReplicas": 3}}, _content_type=MERGE_PATCH
    )
    kube, spies = spy_on(lab.kube.clients())
    action = ScaleConsumers(NS, "checkout", deployment="checkout", replicas=6, partitions=8)
    with pytest.raises(GuardRejectedError, match=r"maxReplicas \(3\)"):
        action.apply(ActionContext(kube, sleep=lambda _s: None))
    assert [m for spy in spies for m in spy.mutations] == []
