"""Lab settings: every number that shapes the simulated estate, with its default.

The defaults are tuned so that the steady state and normal daily peaks are comfortably inside
the SLOs (p95 < 150 ms, errors < 0.1 %), while a x3 traffic surge met only by the reactive HPA
breaches them for several minutes -- the gap predictive scaling is meant to close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts import ScenarioId
from lab._errors import SettingsError


@dataclass(frozen=True)
class ServiceSettings:
    """One service: a Deployment with an HPA, calling any number of later services."""

    name: str
    """Service, Deployment, HPA and container name; pods are labelled ``app=<name>``."""
    calls: str | tuple[str, ...] | None = None
    """The downstream service each request may call, several as a tuple, or None for a leaf."""
    fanout: float | tuple[float, ...] = 0.0
    """Downstream requests per request of this service (0.5: every other request calls it);
    a tuple when ``calls`` is one, a number per called service."""
    base_latency_ms: float = 15.0
    """Own median service time of a request with no queueing (downstream time excluded)."""
    capacity_rps: float = 100.0
    """Requests per second one pod serves when its CPU use equals its CPU request."""
    cpu_request_cores: float = 0.5
    """Container CPU request (the HPA's utilisation denominator)."""
    memory_limit_bytes: int = 512 * 2**20
    """Container memory limit."""
    memory_base_bytes: int = 200 * 2**20
    """Working set of an idle pod; it grows by up to 30 % with load."""
    min_replicas: int = 3
    """HPA minReplicas."""
    max_replicas: int = 30
    """HPA maxReplicas."""
    external_share: float = 0.0
    """Share of the external traffic (``TrafficSettings``) that enters at this service; when
    no service has a share, the first service receives all of it."""

    @property
    def downstream(self) -> tuple[tuple[str, float], ...]:
        """(called service, fanout) pairs, in the order ``calls`` names them."""
        if self.calls is None:
            return ()
        if isinstance(self.calls, str):
            if not isinstance(self.fanout, int | float):
                raise SettingsError(f"service {self.name!r} calls one service: fanout is a number")
            return ((self.calls, float(self.fanout)),)
        fanouts = self.fanout
        if isinstance(fanouts, int | float):
            fanouts = (fanouts,) * len(self.calls)
        if len(fanouts) != len(self.calls):
            raise SettingsError(
                f"service {self.name!r} calls {len(self.calls)} services"
                f" with {len(fanouts)} fanouts"
            )
        return tuple(zip(self.calls, map(float, fanouts), strict=True))


def _default_services() -> tuple[ServiceSettings, ...]:
    return (
        ServiceSettings("frontend", calls="checkout", fanout=0.5, base_latency_ms=15.0),
        ServiceSettings(
            "checkout", calls="payments", fanout=0.8, base_latency_ms=20.0, capacity_rps=50.0
        ),
        ServiceSettings("payments", base_latency_ms=25.0, capacity_rps=40.0),
    )


@dataclass(frozen=True)
class DatabaseSettings:
    """A managed database (RDS-like) with a primary and a read replica, reached through an
    ``ExternalName`` Service of the same name that points at one of them."""

    name: str
    """The database and its ExternalName Service (``payments-db``)."""
    service: str
    """The service whose requests read and write it."""
    reads_per_request: float = 3.0
    """Reads one request of ``service`` makes."""
    writes_per_request: float = 0.5
    """Writes one request makes (the replica takes none while the primary is its source)."""
    read_latency_ms: float = 1.5
    """Read latency of a healthy instance (CloudWatch ``ReadLatency``, milliseconds)."""
    write_latency_ms: float = 3.0
    """Write latency of a healthy primary."""
    replica_lag_s: float = 0.4
    """Replica lag of a healthy replica, seconds."""
    failover_s: float = 30.0
    """Seconds the instance a cluster fails over to answers nothing while it is promoted
    (Aurora: typically under 30 s)."""


@dataclass(frozen=True)
class TopicSettings:
    """A Kafka topic that one service's requests produce to and a consumer group (the pods
    of another service's Deployment) consumes."""

    name: str
    """Topic name."""
    producer: str
    """The service each of whose served requests produces ``messages_per_request``."""
    service: str
    """The service whose pods consume it (one consumer per Ready pod)."""
    group: str
    """Consumer group id."""
    partitions: int = 24
    """Partitions: no more consumers than this do work (24: a x5 backfill at the daily peak
    can still be drained by one consumer per partition)."""
    messages_per_request: float = 1.0
    """Messages produced per request ``producer`` serves."""
    consumer_rate: float = 60.0
    """Messages per second one consumer processes (its I/O, not its CPU, bounds it); with
    the default traffic the group runs at about half its capacity at the daily mean and
    keeps up with the daily peak, as the consumer pods follow the requests they serve."""
    rebalance_s: float = 3.0
    """Seconds the whole group stops consuming when a member joins or leaves (the eager
    rebalance protocol)."""
    commit_interval_s: float = 5.0
    """Seconds between two offset commits (Kafka's ``auto.commit.interval.ms``): a healthy
    group lags by about half of it in production."""


@dataclass(frozen=True)
class QueueSettings:
    """An SQS queue with a dead-letter queue, fed by one service and worked off by another."""

    name: str
    """Queue name (its dead-letter queue is ``<name>-dlq``)."""
    producer: str
    """The service each of whose served requests sends ``messages_per_request``."""
    service: str
    """The service whose pods are its workers."""
    messages_per_request: float = 0.5
    """Messages sent per request ``producer`` serves."""
    worker_rate: float = 25.0
    """Ordinary messages per second one worker pod processes (its threads together)."""
    worker_threads: int = 10
    """Messages one worker pod works on at once (a poison message holds one of them)."""
    poison_timeout_s: float = 5.0
    """Seconds a worker thread spends on a poison message before it gives up on it (its
    processing timeout); the message stays invisible until its visibility timeout."""
    visibility_timeout_s: float = 30.0
    """Seconds a received message stays invisible before it can be received again."""
    max_receive_count: int = 50
    """The RedrivePolicy's ``maxReceiveCount``: SQS moves a message received this often to the
    dead-letter queue by itself."""


@dataclass(frozen=True)
class UpstreamSettings:
    """A third-party API one service calls, with a rate quota, and its secondary region."""

    name: str
    """Upstream name (its HTTPRoute and primary backend)."""
    service: str
    """The service that calls it."""
    secondary: str
    """The secondary backend (the upstream's other region) the route can shift calls to."""
    calls_per_request: float = 1.0
    """Calls one request of ``service`` makes."""
    quota_rps: float = 1000.0
    """Calls per second the upstream accepts from us before it answers 429 (the default
    estate's payments make 120 a second, a x3.5 surge at the daily peak about 700)."""
    latency_ms: float = 8.0
    """Latency of one call, primary."""
    secondary_latency_ms: float = 15.0
    """Latency of one call to the secondary (further away; every call there adds the
    difference to the caller's own latency)."""
    secondary_quota_rps: float = 1000.0
    """Calls per second the secondary accepts from us before it answers 429."""
    retry_after_s: float = 1.0
    """The ``Retry-After`` of a 429; the caller's client waits that long before it retries."""
    max_retries: int = 2
    """Retries of a throttled call before the client gives up and the request fails."""


class _Unset(tuple[Any, ...]):
    """The type of :data:`_DEFAULT`: an empty tuple told apart from ``()`` by identity."""


#: "Not given": the default estate's dependencies with the default services, else none.
_DEFAULT: Any = _Unset()


_Dependency = DatabaseSettings | TopicSettings | QueueSettings | UpstreamSettings


def _default_databases() -> tuple[DatabaseSettings, ...]:
    return (DatabaseSettings("payments-db", "payments"),)


def _default_topics() -> tuple[TopicSettings, ...]:
    return (TopicSettings("orders", producer="checkout", service="payments", group="payments"),)


def _default_queues() -> tuple[QueueSettings, ...]:
    return (QueueSettings("receipts", producer="payments", service="checkout"),)


def _default_upstreams() -> tuple[UpstreamSettings, ...]:
    return (UpstreamSettings("card-gateway", "payments", secondary="card-gateway-dr"),)


@dataclass(frozen=True)
class TopologySettings:
    """Where the estate runs and what it runs."""

    region: str = "eu-west-1"
    """Region label put on every series and node."""
    namespace: str = "shop"
    """Namespace of every Deployment, pod and HPA."""
    nodes: int = 3
    """Number of worker nodes (one per availability zone, round robin)."""
    node_cpu_cores: float = 16.0
    """Allocatable CPU per node; pods that do not fit stay Pending (Unschedulable)."""
    node_memory_bytes: int = 64 * 2**30
    """Allocatable memory per node."""
    pdb_max_unavailable: int | None = None
    """Give each Deployment a PodDisruptionBudget (named as the service, ``app=<service>``)
    with this ``maxUnavailable``, as production services have (the demo's and ``ooda
    chaos``'s estates use 1); None: no budgets, as in a fresh namespace."""
    services: tuple[ServiceSettings, ...] = field(default_factory=_default_services)
    """Services in topological order (a service calls only later ones), so the calls form a
    DAG; external traffic enters where ``external_share`` says (default: the first service).
    ``lab.call_forest`` builds large ones."""
    databases: tuple[DatabaseSettings, ...] = _DEFAULT
    """Managed databases the services use; by default the estate's (``payments-db``) with
    the default services, none with any other."""
    topics: tuple[TopicSettings, ...] = _DEFAULT
    """Kafka topics and their consumer groups; by default the estate's (``orders``,
    produced by checkout, consumed by payments) with the default services, else none."""
    queues: tuple[QueueSettings, ...] = _DEFAULT
    """SQS queues and their workers; by default the estate's (``receipts``, sent by
    payments, worked off by checkout) with the default services, else none."""
    upstreams: tuple[UpstreamSettings, ...] = _DEFAULT
    """Third-party APIs the services call; by default the estate's (``card-gateway``,
    called by payments) with the default services, else none."""

    def __post_init__(self) -> None:
        default = self.services == _default_services()
        for name, make in (
            ("databases", _default_databases),
            ("topics", _default_topics),
            ("queues", _default_queues),
            ("upstreams", _default_upstreams),
        ):
            if getattr(self, name) is _DEFAULT:
                object.__setattr__(self, name, make() if default else ())


@dataclass(frozen=True)
class TrafficSettings:
    """External traffic into the entry services: base x daily x weekly x noise (x surges)."""

    base_rps: float = 300.0
    """Mean external request rate, split between the entry services by their shares."""
    daily_amplitude: float = 0.5
    """Relative daily swing: the daily curve goes from 1-a to 1+a."""
    daily_peak_hour: float = 19.0
    """UTC hour of the daily peak."""
    weekly_amplitude: float = 0.1
    """Relative weekly swing (weekdays busier than weekends)."""
    weekly_peak_day: float = 2.5
    """Day of week of the weekly peak (0 = Monday 00:00)."""
    noise_sigma: float = 0.04
    """Standard deviation of the multiplicative log-normal noise (one draw per minute)."""


@dataclass(frozen=True)
class ServiceModelSettings:
    """How load turns into latency, CPU and errors."""

    workers_per_pod: int = 4
    """Concurrent workers per pod (the c of the M/M/c queue)."""
    latency_sigma: float = 0.5
    """Shape of the log-normal request latency (p95 = median x e^(1.645 sigma))."""
    latency_jitter: float = 0.03
    """Relative jitter of the median latency from one 15 s tick to the next."""
    shed_utilisation: float = 0.95
    """Utilisation above which a service sheds the excess load with 503s."""
    error_propagation: float = 0.7
    """Fraction of failed downstream calls that fail the calling request (500)."""
    idle_cpu: float = 0.05
    """CPU use of an idle ready pod, as a fraction of its request."""
    startup_cpu: float = 0.5
    """CPU use of a pod that started but is not Ready yet (warm-up), fraction of request."""
    pending_s: float = 10.0
    """Seconds from pod creation until its container runs (scheduling, image pull)."""
    startup_s: float = 60.0
    """Seconds from container start until the pod is Ready and receives traffic."""
    crash_run_s: float = 20.0
    """Seconds a crash-looping container runs (and fails its requests) before it dies."""
    crash_backoff_s: float = 10.0
    """First CrashLoopBackOff delay; it doubles per restart."""
    crash_backoff_max_s: float = 300.0
    """Cap of the CrashLoopBackOff delay (kubelet: 5 minutes)."""


@dataclass(frozen=True)
class HpaSettings:
    """The reactive HorizontalPodAutoscaler (autoscaling/v2, CPU utilisation target)."""

    target_cpu_utilisation: int = 60
    """Target average CPU utilisation, percent of the request."""
    sync_period_s: float = 15.0
    """Seconds between two HPA evaluations (--horizontal-pod-autoscaler-sync-period)."""
    tolerance: float = 0.1
    """No scaling while |utilisation / target - 1| stays within this."""
    metrics_window_s: float = 60.0
    """Window of the CPU rate the HPA sees (metrics-server resolution)."""
    scale_down_stabilisation_s: float = 300.0
    """Scale down only to the highest recommendation of this trailing window."""
    scale_up_pods: int = 4
    """behavior.scaleUp policy: add at most this many pods per period (Kubernetes default 4) ..."""
    scale_up_percent: int = 100
    """... or this percent of the replicas, whichever is more (selectPolicy Max; default 100)."""
    scale_up_period_s: float = 15.0
    """periodSeconds of the scale-up policies (default 15)."""


@dataclass(frozen=True)
class ScrapeSettings:
    """How the lab's Prometheus scrapes the exporters."""

    interval_s: float = 15.0
    """Scrape interval; also the simulation sub-step of ``Lab.step``."""
    drop_probability: float = 0.0
    """Probability that a scrape is lost (its samples are missing, queries give NaN)."""
    latency_buckets_s: tuple[float, ...] = (
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    )  # fmt: skip
    """Upper bounds (le) of the request-duration histogram, +Inf is implied."""


@dataclass(frozen=True)
class IncidentSettings:
    """Random incidents injected by ``Lab.generate_history``."""

    per_day: float = 2.0
    """Mean number of incidents per simulated day (half crash loops, half surges)."""
    crash_heal_min_s: float = 600.0
    """Shortest time before the operator deletes a crash-looping pod."""
    crash_heal_max_s: float = 1200.0
    """Longest time before the operator deletes a crash-looping pod."""
    surge_factor_range: tuple[float, float] = (2.0, 3.5)
    """Range of the traffic multiplier of a random surge."""
    surge_minutes_range: tuple[float, float] = (20.0, 60.0)
    """Range of the duration of a random surge, minutes."""
    scenarios: tuple[ScenarioId, ...] = (ScenarioId.POD_CRASHLOOP, ScenarioId.TRAFFIC_SURGE)
    """Scenarios the history draws from, evenly; each draws its own instances (so the two
    surge ranges above no longer shape the history: ``traffic_surge`` draws x2.5-3.5 for
    30-45 minutes). A fault that does not end by itself is cleared by the operator after
    ``crash_heal_min_s`` to ``crash_heal_max_s``."""


@dataclass(frozen=True)
class BackgroundSettings:
    """Ordinary events of a chaos run (``Lab.background``) that the loop must not act on."""

    rollouts_per_hour: float = 0.5
    """Mean number of benign rollouts (a new image tag, same behaviour) per hour."""
    waves_per_hour: float = 0.5
    """Mean number of mild traffic waves per hour."""
    wave_factor_range: tuple[float, float] = (1.2, 1.4)
    """Range of the traffic multiplier at the crest of a wave."""
    wave_minutes_range: tuple[float, float] = (10.0, 20.0)
    """Range of the length of a wave (it rises over the first half, falls over the second)."""
    config_edits_per_hour: float = 0.2
    """Mean number of harmless ConfigMap edits (a feature flag flipped) per hour."""


@dataclass(frozen=True)
class LabSettings:
    """All lab settings, grouped."""

    topology: TopologySettings = field(default_factory=TopologySettings)
    """Region, namespace, nodes and services."""
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    """External traffic shape."""
    model: ServiceModelSettings = field(default_factory=ServiceModelSettings)
    """Latency, CPU and error model of the services, pod lifecycle timings."""
    hpa: HpaSettings = field(default_factory=HpaSettings)
    """Reactive autoscaler behaviour (same for every service)."""
    scrape: ScrapeSettings = field(default_factory=ScrapeSettings)
    """Metric scraping."""
    incidents: IncidentSettings = field(default_factory=IncidentSettings)
    """Random incidents of the generated history."""
    seed: int = 7
    """Seed of every random draw; same seed and same calls give the same estate."""
    background: BackgroundSettings = field(default_factory=BackgroundSettings)
    """Benign rollouts and traffic waves of ``Lab.background``."""

    def __post_init__(self) -> None:
        names = [s.name for s in self.topology.services]
        if not names or len(set(names)) != len(names):
            raise SettingsError(f"service names must be non-empty and unique, got {names}")
        position = {name: i for i, name in enumerate(names)}
        for i, svc in enumerate(self.topology.services):
            called = [name for name, _ in svc.downstream]
            for name, fanout in svc.downstream:
                if position.get(name, -1) <= i:
                    raise SettingsError(
                        f"service {svc.name!r} calls {name!r}, which is not a later service"
                    )
                if not fanout >= 0:
                    raise SettingsError(f"service {svc.name!r}: fanout to {name!r} is {fanout}")
            if len(set(called)) != len(called):
                raise SettingsError(f"service {svc.name!r} calls a service twice: {called}")
            if not svc.external_share >= 0:
                raise SettingsError(
                    f"service {svc.name!r}: external_share must be >= 0, got {svc.external_share}"
                )
            if not 1 <= svc.min_replicas <= svc.max_replicas:
                raise SettingsError(
                    f"service {svc.name!r}: need 1 <= min_replicas ({svc.min_replicas})"
                    f" <= max_replicas ({svc.max_replicas})"
                )
        self._check_dependencies(position)
        if not self.incidents.scenarios:
            raise SettingsError("incidents.scenarios must name at least one scenario")
        if self.scrape.interval_s <= 0:
            raise SettingsError(f"scrape interval must be positive, got {self.scrape.interval_s}")

    def _check_dependencies(self, position: dict[str, int]) -> None:
        """Every database, topic, queue and upstream names services the estate runs, and its
        own name once."""
        topo = self.topology
        kinds: list[tuple[str, tuple[_Dependency, ...], tuple[str, ...]]] = [
            ("database", topo.databases, ("service",)),
            ("topic", topo.topics, ("service", "producer")),
            ("queue", topo.queues, ("service", "producer")),
            ("upstream", topo.upstreams, ("service",)),
        ]
        for kind, entries, roles in kinds:
            names = [entry.name for entry in entries]
            if len(set(names)) != len(names):
                raise SettingsError(f"{kind} names must be unique, got {names}")
            for entry in entries:
                for role in roles:
                    service = getattr(entry, role)
                    if service not in position:
                        raise SettingsError(
                            f"{kind} {entry.name!r}: {role} {service!r} is not a"
                            f" service of the estate"
                        )
        for topic in topo.topics:
            if topic.partitions < 1 or not topic.consumer_rate > 0:
                raise SettingsError(
                    f"topic {topic.name!r}: need partitions >= 1 and consumer_rate > 0, got"
                    f" {topic.partitions}, {topic.consumer_rate}"
                )
            if not (topic.rebalance_s >= 0 and topic.commit_interval_s >= 0):
                raise SettingsError(
                    f"topic {topic.name!r}: need rebalance_s >= 0 and commit_interval_s >= 0,"
                    f" got {topic.rebalance_s}, {topic.commit_interval_s}"
                )
        for queue in topo.queues:
            if (
                not queue.worker_rate > 0
                or queue.max_receive_count < 1
                or queue.worker_threads < 1
                or not queue.poison_timeout_s > 0
            ):
                raise SettingsError(
                    f"queue {queue.name!r}: need worker_rate > 0, max_receive_count >= 1,"
                    f" worker_threads >= 1 and poison_timeout_s > 0, got {queue.worker_rate},"
                    f" {queue.max_receive_count}, {queue.worker_threads}, {queue.poison_timeout_s}"
                )
        for upstream in topo.upstreams:
            if not upstream.quota_rps > 0:
                raise SettingsError(f"upstream {upstream.name!r}: quota_rps must be > 0")
