"""Leader election on a real Lease (the session's control plane): one leader at a time, the
renew deadline before the lease expires, a takeover only after a whole lease duration of
silence, a release handed over at the next retry."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from kubernetes import client, config

from lab.k8s import KubeCluster
from ooda._leader import LeaderElector
from ooda._settings import LeaderSettings
from tests._narrow import some


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def api(kube_cluster: KubeCluster) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(config.new_client_from_config(str(kube_cluster.kubeconfig)))


def _pair(api: client.CoordinationV1Api) -> tuple[LeaderElector, LeaderElector, Ticker, Ticker]:
    settings = LeaderSettings(enabled=True, lease=f"ooda-{uuid.uuid4().hex[:6]}")
    ta, tb = Ticker(), Ticker()
    a = LeaderElector(api, "default", settings, "replica-a", monotonic=ta)
    b = LeaderElector(api, "default", settings, "replica-b", monotonic=tb)
    return a, b, ta, tb


def test_one_leader_and_a_takeover_only_after_a_lease_of_silence(
    api: client.CoordinationV1Api,
) -> None:
    a, b, ta, tb = _pair(api)
    assert a.try_acquire_or_renew() and a.is_leader()
    assert not b.try_acquire_or_renew() and not b.is_leader() and b.holder == "replica-a"
    # a renews every 2 s: b never takes over, however long it waits
    for _ in range(10):
        ta.t += 2
        tb.t += 2
        assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    # a goes silent: a stops counting itself the leader after the renew deadline (10 s),
    # b takes over only after the lease duration (15 s) without a change it could see
    ta.t += 10
    assert not a.is_leader()
    tb.t += 14
    assert not b.try_acquire_or_renew()
    tb.t += 2
    assert b.try_acquire_or_renew() and b.is_leader()
    lease = api.read_namespaced_lease(a.settings.lease, "default")
    assert lease.spec is not None
    assert lease.spec.holder_identity == "replica-b" and lease.spec.lease_transitions == 1
    # a comes back: it sees b's lease and stays a standby
    assert not a.try_acquire_or_renew() and not a.is_leader()


def test_a_release_hands_over_at_the_next_retry(api: client.CoordinationV1Api) -> None:
    a, b, _, tb = _pair(api)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert not a.is_leader()
    tb.t += 2
    assert b.try_acquire_or_renew() and b.holder == "replica-b"


def test_two_candidates_writing_at_once_make_one_leader(api: client.CoordinationV1Api) -> None:
    a, b, ta, tb = _pair(api)
    assert a.try_acquire_or_renew()
    ta.t += 30
    tb.t += 30
    # both saw the same expired record; both try to take it with the same resourceVersion
    stale = api.read_namespaced_lease(a.settings.lease, "default")
    assert stale.spec is not None
    b._observed = (
        stale.spec.holder_identity,
        stale.spec.renew_time,
        stale.spec.lease_transitions,
    )
    b._observed_at = tb.t - 20
    original_read = api.read_namespaced_lease

    class Racing:
        """b reads the lease a is about to overwrite (the write race)."""

        def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
            return stale

        def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease) -> None:
            api.replace_namespaced_lease(name, namespace, body)

    assert a.try_acquire_or_renew()  # a renews first: the resourceVersion moves on
    b.api = Racing()
    assert not b.try_acquire_or_renew() and not b.is_leader()  # 409 on the stale version
    b.api = api
    assert some(original_read(a.settings.lease, "default").spec).holder_identity == "replica-a"


def test_the_lease_settings_must_stop_the_leader_before_a_standby_may_take_over() -> None:
    from ooda._config import LeaderConfig

    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaderConfig(renew_deadline=timedelta(seconds=20))
