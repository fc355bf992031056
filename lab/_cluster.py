"""The estate's control plane state and its controllers (deployment, scheduler, kubelet, HPA,
disruption budgets).

Objects are plain dataclasses with times as epoch seconds (pods are rows of a ``PodTable``) so
that the 15 s simulation tick stays cheap however many pods run; ``FakeKubernetes`` turns them
into the official client models on read. Controllers find the Deployments that need work with
column operations and only then walk those Deployments' pods.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lab._pods import CrashLoop, Pod, PodTable
from lab._settings import LabSettings, ServiceModelSettings, ServiceSettings

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s utilrand alphabet
_ZONES = "abc"
IMAGE_REGISTRY = "registry.example.com/shop"
IMAGE_TAG = "1.4.2"


def random_suffix(rng: np.random.Generator, length: int) -> str:
    return "".join(_NAME_ALPHABET[i] for i in rng.integers(0, len(_NAME_ALPHABET), length))


def random_uid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _node_name(i: int, region: str) -> str:
    """EC2-style private DNS names, unique for any number of nodes."""
    return f"ip-10-{i // 250}-{i % 250 + 1}-{10 + i % 240}.{region}.compute.internal"


@dataclass
class Node:
    name: str
    zone: str
    cpu_cores: float
    memory_bytes: int
    created_at: float
    uid: str
    labels: dict[str, str]
    unschedulable: bool = False
    """Cordoned: the scheduler places no new pod here."""
    cordon_manager: str | None = None
    """The field manager that last set ``spec.unschedulable`` (None: unset), shown in
    ``managedFields`` as the API server shows who owns a field."""
    annotations: dict[str, str] = field(default_factory=dict)
    ready: bool = True
    """Whether the kubelet posts status; False from the moment the node dies."""
    down_since: float | None = None
    """When the kubelet stopped posting (None while it posts)."""
    disk_size_bytes: float = 100 * 2**30
    """Size of the node's root filesystem (images, logs, emptyDirs)."""
    disk_used_bytes: float = 35 * 2**30
    disk_fill_bps: float = 0.0
    """Bytes per second the filesystem fills by beyond its steady state (a fault's doing)."""
    disk_pressure: bool = False
    """The kubelet's DiskPressure condition (available under its hard eviction threshold)."""
    last_eviction: float = -math.inf
    """When the kubelet last evicted a pod for disk pressure."""
    packet_loss: float = 0.0
    """Share of packets lost on the node's network path."""
    tcp_out_segs: float = 0.0
    """node-exporter's ``node_netstat_Tcp_OutSegs`` counter."""
    tcp_retrans_segs: float = 0.0
    """node-exporter's ``node_netstat_TcpExt_TCPRetransSegs`` counter."""

    @property
    def disk_available_ratio(self) -> float:
        """Share of the root filesystem still free."""
        return max(0.0, 1.0 - self.disk_used_bytes / self.disk_size_bytes)

    @property
    def schedulable(self) -> bool:
        """Whether the scheduler may place a pod here (cordon and the NoSchedule taints)."""
        return not self.unschedulable and self.ready and not self.disk_pressure


@dataclass
class ReplicaSet:
    """One pod template of a Deployment; the lab's templates differ only by image and by
    ``kubectl rollout restart``'s ``restartedAt`` annotation."""

    template_hash: str
    image: str
    revision: int
    uid: str
    created_at: float
    restarted_at: str | None = None
    """The template's ``kubectl.kubernetes.io/restartedAt`` (RFC 3339), None when unset."""

    @property
    def template(self) -> tuple[str, str | None]:
        """What tells two templates apart: the image and the restart stamp."""
        return self.image, self.restarted_at


@dataclass
class Deployment:
    service: int
    name: str
    replicas: int
    uid: str
    created_at: float
    replica_sets: list[ReplicaSet]
    """Oldest first; the one with the highest revision is the current template."""
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)
    """User annotations; the revision annotation is derived from the current ReplicaSet."""

    @property
    def current(self) -> ReplicaSet:
        return max(self.replica_sets, key=lambda rs: rs.revision)

    def replica_set(self, template_hash: str) -> ReplicaSet:
        return next(rs for rs in self.replica_sets if rs.template_hash == template_hash)


@dataclass
class Hpa:
    service: int
    name: str
    min_replicas: int
    max_replicas: int
    target_utilisation: int
    uid: str
    created_at: float
    desired_replicas: int
    current_utilisation: int | None = None
    last_sync: float = -math.inf
    last_scale_time: float | None = None
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    """(time, recommendation), decreasing: the scale-down stabilisation window."""
    scale_ups: deque[tuple[float, int]] = field(default_factory=deque)
    annotations: dict[str, str] = field(default_factory=dict)
    changed: tuple[float, str] | None = None
    """(time, field manager) of the newest spec or metadata patch, None when as created."""


@dataclass
class Pdb:
    """A PodDisruptionBudget: exactly one of ``min_available`` / ``max_unavailable`` is set."""

    name: str
    uid: str
    created_at: float
    labels: dict[str, str]
    match_labels: dict[str, str] | None
    """None selects no pod, an empty dict every pod (policy/v1)."""
    min_available: int | str | None
    max_unavailable: int | str | None


@dataclass(frozen=True)
class PdbStatus:
    current_healthy: int
    desired_healthy: int
    expected_pods: int
    disruptions_allowed: int


@dataclass(frozen=True)
class _Usage:
    """What the HPA controller reads per service in one pass."""

    total: list[float]
    """Sum of the CPU utilisations (of the request) of the pods with a usable metric."""
    measured: list[int]
    """Pods with a usable metric: Ready, with two samples in the metrics window."""
    pods: list[int]
    """Every pod of the service."""


def _scaled(value: int | str, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent rounding up, as the disruption controller does."""
    if isinstance(value, int):
        return value
    return math.ceil(int(value.rstrip("%")) * total / 100)


class Cluster:
    """Nodes, Deployments, pods and HPAs of one namespace, and the controllers acting on them."""

    def __init__(
        self,
        settings: LabSettings,
        rng: np.random.Generator,
        t0: float,
        initial_replicas: list[int],
    ) -> None:
        self.settings = settings
        self.services: tuple[ServiceSettings, ...] = settings.topology.services
        self._model: ServiceModelSettings = settings.model
        self._rng = rng
        self.cpu_requests = np.array([s.cpu_request_cores for s in self.services], dtype=float)
        topo = settings.topology
        self.nodes: list[Node] = []
        for i in range(topo.nodes):
            name = _node_name(i, topo.region)
            zone = f"{topo.region}{_ZONES[i % len(_ZONES)]}"
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.4xlarge",
                "topology.kubernetes.io/region": topo.region,
                "topology.kubernetes.io/zone": zone,
            }
            self.nodes.append(
                Node(
                    name=name,
                    zone=zone,
                    cpu_cores=topo.node_cpu_cores,
                    memory_bytes=topo.node_memory_bytes,
                    created_at=t0 - 30 * 86_400,
                    uid=random_uid(rng),
                    labels=labels,
                )
            )
        history = round(settings.hpa.metrics_window_s / settings.scrape.interval_s) + 1
        self.pod_table = PodTable([n.name for n in self.nodes], history)
        self._current_rs = np.zeros(len(self.services), dtype=np.int64)
        """Index of each Deployment's current ReplicaSet (the newest revision)."""
        self.deployments: dict[str, Deployment] = {}
        self.hpas: dict[str, Hpa] = {}
        self.pdbs: dict[str, Pdb] = {}
        self.pods: dict[str, Pod] = {}
        self.service_pods: list[list[Pod]] = [[] for _ in self.services]
        self.on_pod_removed: list[Callable[[Pod, float], None]] = []
        self.on_pod_created: list[Callable[[Pod, float], None]] = []
        """Called with each new pod (not yet scheduled) and the time; lets a fault doom it."""
        created = t0 - 7 * 86_400
        free = self._node_free_cpu()
        for i, svc in enumerate(self.services):
            template_hash = random_suffix(rng, 10)
            uid = random_uid(rng)
            image = f"{IMAGE_REGISTRY}/{svc.name}:{IMAGE_TAG}"
            self.deployments[svc.name] = Deployment(
                service=i,
                name=svc.name,
                replicas=initial_replicas[i],
                uid=uid,
                created_at=created,
                replica_sets=[ReplicaSet(template_hash, image, 1, random_uid(rng), created)],
            )
            self.hpas[svc.name] = Hpa(
                service=i,
                name=svc.name,
                min_replicas=svc.min_replicas,
                max_replicas=svc.max_replicas,
                target_utilisation=settings.hpa.target_cpu_utilisation,
                uid=random_uid(rng),
                created_at=created,
                desired_replicas=initial_replicas[i],
            )
            if topo.pdb_max_unavailable is not None:
                self.pdbs[svc.name] = Pdb(
                    name=svc.name,
                    # Not drawn from ``rng``: the estate's random stream stays as it was.
                    uid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"pdb/{topo.namespace}/{svc.name}")),
                    created_at=created,
                    labels={"app": svc.name},
                    match_labels={"app": svc.name},
                    min_available=None,
                    max_unavailable=topo.pdb_max_unavailable,
                )
            for _ in range(initial_replicas[i]):
                pod = self._create_pod(i, t0 - 3600.0)
                self._schedule(pod, t0 - 3600.0, free)
                pod.memory_bytes = svc.memory_base_bytes * pod.memory_scale

    # -- pods ---------------------------------------------------------------------------------

    def new_uid(self) -> str:
        return random_uid(self._rng)

    def pod_labels(self, pod: Pod) -> dict[str, str]:
        return {"app": self.services[pod.service].name, "pod-template-hash": pod.template_hash}

    def _create_pod(self, service: int, t: float) -> Pod:
        dep = self.deployments[self.services[service].name]
        current = dep.current
        template_hash = current.template_hash
        name = f"{dep.name}-{template_hash}-{random_suffix(self._rng, 5)}"
        while name in self.pods:
            name = f"{dep.name}-{template_hash}-{random_suffix(self._rng, 5)}"
        uid = random_uid(self._rng)
        pod = self.pod_table.add(
            name,
            service,
            dep.replica_sets.index(current),
            template_hash,
            uid,
            t,
            memory_scale=float(self._rng.uniform(0.9, 1.1)),
        )
        self.pods[name] = pod
        self.service_pods[service].append(pod)
        for callback in self.on_pod_created:
            callback(pod, t)
        return pod

    def remove_pod(self, name: str, t: float) -> Pod:
        pod = self.pods.pop(name)
        self.service_pods[pod.service].remove(pod)
        self.pod_table.remove(pod)
        for callback in self.on_pod_removed:
            callback(pod, t)
        return pod

    def replica_set_pods(self, t: float) -> tuple[list[list[int]], list[list[int]]]:
        """Pods and Ready pods at ``t`` of each Deployment (in service order), by ReplicaSet."""
        table = self.pod_table
        n = table.compact()
        width = max(len(dep.replica_sets) for dep in self.deployments.values())
        slot = table.service[:n] * width + table.replica_set[:n]
        size = len(self.services) * width
        pods = np.bincount(slot, minlength=size).reshape(-1, width)
        ready = np.bincount(slot, table.ready_now(t), minlength=size).reshape(-1, width)
        return pods.tolist(), ready.astype(np.int64).tolist()

    def _node_free_cpu(self) -> np.ndarray:
        """Unrequested CPU per node (requests taken off in pod creation order), -inf on a
        cordoned, NotReady or disk-pressured node: what the scheduler picks from."""
        table = self.pod_table
        free = np.array([node.cpu_cores for node in self.nodes], dtype=float)
        n = table.compact()
        node, service = table.node[:n], table.service[:n]
        scheduled = node >= 0
        np.subtract.at(free, node[scheduled], self.cpu_requests[service[scheduled]])
        free[[not node.schedulable for node in self.nodes]] = -math.inf
        return free

    def _schedule(self, pod: Pod, t: float, free: np.ndarray) -> None:
        """LeastAllocated scoring: the schedulable node with the most free CPU that fits."""
        request = self.services[pod.service].cpu_request_cores
        node = int(np.argmax(free))
        if free[node] < request:
            return  # stays Pending (Unschedulable); retried on the next reconcile
        free[node] -= request
        pod.node = self.nodes[node].name
        pod.started_at = t + self._model.pending_s
        pod.ready_at = pod.started_at + self._model.startup_s

    # -- controllers --------------------------------------------------------------------------

    def roll_out(
        self, dep: Deployment, image: str, t: float, restarted_at: str | None = None
    ) -> None:
        """A new pod template (``image``, and ``restarted_at`` for a rollout restart): the
        ReplicaSet that already has it (a rollback) or a new one.

        Either way it becomes the newest revision, as in the deployment controller; the next
        ``reconcile`` moves the pods over.
        """
        revision = dep.current.revision + 1
        for rs in dep.replica_sets:
            if rs.template == (image, restarted_at):
                rs.revision = revision
                break
        else:
            hashes = {rs.template_hash for rs in dep.replica_sets}
            template_hash = random_suffix(self._rng, 10)
            while template_hash in hashes:
                template_hash = random_suffix(self._rng, 10)
            uid = random_uid(self._rng)
            rs = ReplicaSet(template_hash, image, revision, uid, t, restarted_at)
            dep.replica_sets.append(rs)
        self._current_rs[dep.service] = dep.replica_sets.index(rs)

    def reconcile(self, t: float) -> None:
        """Deployment and ReplicaSet controllers, then the scheduler.

        The current ReplicaSet is brought to ``replicas``; older ones are scaled to zero once
        it has that many Ready pods (a surge rollout). Only Deployments with too few or too
        many current pods, or with old ones, are looked at pod by pod.
        """
        table = self.pod_table
        rows = table.compact()
        service = table.service[:rows]
        n = len(self.services)
        on_current = table.replica_set[:rows] == self._current_rs[service]
        pods = np.bincount(service, minlength=n)
        current = np.bincount(service[on_current], minlength=n)
        deployments = list(self.deployments.values())
        replicas = np.array([dep.replicas for dep in deployments], dtype=np.int64)
        for i in ((replicas != current) | (pods != current)).nonzero()[0].tolist():
            self._reconcile_deployment(deployments[i], t)
        unscheduled = (table.node[: table.compact()] < 0).nonzero()[0]
        if len(unscheduled):
            free = self._node_free_cpu()
            for row in unscheduled.tolist():
                self._schedule(table.pod(row), t, free)

    def _reconcile_deployment(self, dep: Deployment, t: float) -> None:
        current = dep.current.template_hash
        pods = [p for p in self.service_pods[dep.service] if p.template_hash == current]
        old = [p for p in self.service_pods[dep.service] if p.template_hash != current]
        missing = dep.replicas - len(pods)
        for _ in range(missing):
            self._create_pod(dep.service, t)
        if old and sum(p.ready(t) for p in pods) >= dep.replicas:
            for pod in old:
                self.remove_pod(pod.name, t)
        if missing < 0:
            # controller.ActivePods ordering: unscheduled, pending, not ready, more restarts,
            # newer -- those go first.
            victims = sorted(
                pods,
                key=lambda p: (
                    p.node is not None,
                    p.running(t),
                    p.ready(t),
                    -p.restarts,
                    -p.created_at,
                ),
            )[:-missing]
            for pod in victims:
                self.remove_pod(pod.name, t)

    def pdb_selects(self, pdb: Pdb, pod: Pod) -> bool:
        labels = self.pod_labels(pod).items()
        return pdb.match_labels is not None and pdb.match_labels.items() <= labels

    def pdb_status(self, pdb: Pdb, t: float) -> PdbStatus:
        """The disruption controller's view: healthy pods against what the budget needs.

        An evicted pod is gone at once here, so it stops counting as healthy until its
        replacement is Ready -- what the API server's ``disruptedPods`` bookkeeping achieves.
        """
        pods = [p for p in self.pods.values() if self.pdb_selects(pdb, p)]
        healthy = sum(p.ready(t) for p in pods)
        # getExpectedScale: the replicas of each Deployment owning a selected pod.
        scale = sum(
            self.deployments[self.services[s].name].replicas for s in {p.service for p in pods}
        )
        if pdb.max_unavailable is not None:
            expected = scale
            desired = max(0, expected - _scaled(pdb.max_unavailable, expected))
        elif isinstance(pdb.min_available, int):
            expected, desired = len(pods), pdb.min_available
        else:
            assert pdb.min_available is not None
            expected = scale
            desired = _scaled(pdb.min_available, expected)
        return PdbStatus(healthy, desired, expected, max(0, healthy - desired))

    def advance_crash(self, pod: Pod, t0: float, t1: float) -> float:
        """Kubelet restarts of a crash-looping pod in [t0, t1]; returns the seconds it ran."""
        crash = pod.crash
        assert crash is not None
        m = self._model
        ran = 0.0
        while crash.run_start < t1:
            ran += max(0.0, min(crash.run_end, t1) - max(crash.run_start, t0))
            if crash.run_end > t1:
                break
            pod.restarts += 1
            backoff = min(m.crash_backoff_s * 2**crash.backoffs, m.crash_backoff_max_s)
            crash.backoffs += 1
            crash.run_start = crash.run_end + backoff
            crash.run_end = crash.run_start + m.crash_run_s
        return ran

    def start_crash_loop(self, pod: Pod, t: float) -> None:
        """The container dies now and keeps dying after each CrashLoopBackOff delay."""
        pod.restarts += 1
        start = t + self._model.crash_backoff_s
        pod.crash = CrashLoop(run_start=start, run_end=start + self._model.crash_run_s)

    def hpa_sync(self, t: float) -> None:
        """One HPA controller pass over every HPA whose sync period has elapsed."""
        period = self.settings.hpa.sync_period_s
        due = [hpa for hpa in self.hpas.values() if t - hpa.last_sync >= period - 1e-6]
        if not due:
            return
        # CPU rate over the metrics window of each ready pod with two samples, / request.
        table = self.pod_table
        rows, rate = table.cpu_rate(t)
        service = table.service[rows]
        n = len(self.services)
        usage = _Usage(
            np.bincount(service, rate / self.cpu_requests[service], minlength=n).tolist(),
            np.bincount(service, minlength=n).tolist(),
            np.bincount(table.service[: table.compact()], minlength=n).tolist(),
        )
        for hpa in due:
            hpa.last_sync = t
            self._hpa_reconcile(hpa, t, usage)

    def _hpa_reconcile(self, hpa: Hpa, t: float, usage: _Usage) -> None:
        dep = self.deployments[hpa.name]
        current = dep.replicas
        if current > hpa.max_replicas:
            desired = hpa.max_replicas
        elif current < hpa.min_replicas:
            desired = hpa.min_replicas
        else:
            desired = self._hpa_recommend(hpa, current, t, usage)
        hpa.desired_replicas = desired
        if desired != current:
            if desired > current:
                hpa.scale_ups.append((t, desired - current))
            dep.replicas = desired
            dep.generation += 1  # through the scale subresource: a spec change
            hpa.last_scale_time = t

    def _hpa_recommend(self, hpa: Hpa, current: int, t: float, usage: _Usage) -> int:
        """The replica calculator plus the v2 behaviour (stabilisation and rate limits)."""
        cfg = self.settings.hpa
        total, measured = usage.total[hpa.service], usage.measured[hpa.service]
        if not measured:
            hpa.current_utilisation = None
            return current
        target = hpa.target_utilisation / 100.0
        hpa.current_utilisation = round(100 * total / measured)
        ratio = total / measured / target
        unready = usage.pods[hpa.service] - measured
        if ratio > 1.0 and unready:
            # Pods without a usable metric count as 0 % when scaling up (dampens thrash).
            ratio = total / (measured + unready) / target
        if abs(ratio - 1.0) <= cfg.tolerance:
            recommendation = current
        else:
            recommendation = math.ceil(total / target - 1e-9)
        recommendation = max(hpa.min_replicas, min(hpa.max_replicas, recommendation))
        # Monotonic deque: its head is the highest recommendation of the stabilisation window.
        window = hpa.recommendations
        while window and window[-1][1] <= recommendation:
            window.pop()
        window.append((t, recommendation))
        while window[0][0] < t - cfg.scale_down_stabilisation_s:
            window.popleft()
        if recommendation <= current:
            return min(current, window[0][1])
        ups = hpa.scale_ups
        while ups and ups[0][0] <= t - cfg.scale_up_period_s:
            ups.popleft()
        period_start = current - sum(n for _, n in ups)
        limit = max(
            math.ceil(period_start * (1 + cfg.scale_up_percent / 100)),
            period_start + cfg.scale_up_pods,
        )
        return max(current, min(recommendation, limit))
